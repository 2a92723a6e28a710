//! Posts on the wall, the requests that create them, and a page of the feed.
use serde::{Deserialize, Serialize};

use super::job::JobView;

/// What a post is: written by a person, or by the model from a person's prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ssr",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "lowercase")
)]
pub enum PostKind {
    Text,
    Ai,
}

/// One post as the wall shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub id: i64,
    pub author_name: String,
    pub kind: PostKind,
    /// The text of a text post; the generated content of a finished AI post (empty until then).
    pub text: String,
    /// The text as safe HTML, rendered on the server: a finished AI post's Markdown (raw HTML
    /// shown as text), a text post's text escaped with its web addresses as links.
    #[serde(default)]
    pub html: Option<String>,
    /// The prompt of an AI post.
    pub prompt: Option<String>,
    /// Unix time in milliseconds.
    pub created_at: i64,
    /// The generation behind an AI post.
    pub job: Option<JobView>,
    /// A short public tag of the author's anonymous identity: the same for all posts from one
    /// browser, so a page can tell which posts are its own (and offer Stop, Retry, Delete).
    pub author_tag: String,
}

/// A page of the wall, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostPage {
    pub posts: Vec<Post>,
    /// Pass as `before` to get the next (older) page; `None` at the end of the wall.
    pub next_before: Option<i64>,
}

/// What the wall page starts from: the first page (with the live state of its jobs), the
/// input limits, and who is looking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WallSnapshot {
    pub page: PostPage,
    /// The viewer's own author tag, once their browser has posted.
    pub viewer_tag: Option<String>,
    pub limits: super::InputLimits,
    pub default_model: String,
    /// How many posts the page keeps as new ones arrive live (`limits.live_posts_max`).
    pub live_posts_max: u32,
    /// When the server rendered the page (Unix ms): the page's times read relative to it until
    /// the browser's clock takes over, so the hydrated page starts from the server's text.
    pub rendered_at: i64,
}

/// The body of `POST /api/v1/posts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NewPost {
    pub author_name: String,
    pub text: String,
}

/// The body of `POST /api/v1/ai/posts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NewAiPost {
    pub author_name: String,
    pub prompt: String,
    /// Empty or absent means the server's default model.
    #[serde(default)]
    pub model: Option<String>,
    /// The most tokens the answer may have (Ollama's `num_predict`).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// The body of `GET /api/v1/ai/models`: the models a post may name (the server's
/// `generation.allowed_models`) that the model server has, for the composer to offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<String>,
    pub default_model: String,
    /// Every allowed model with where it is available now: the composer's picker.
    #[serde(default)]
    pub offered: Vec<OfferedModel>,
}

/// An allowed model and the model servers (by name) that can run it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedModel {
    pub name: String,
    /// Reachable model servers that have it; empty: none can run it now (posts for it wait).
    pub backends: Vec<String>,
    /// Those of `backends` that have it loaded in memory (no load before the first token).
    #[serde(default)]
    pub loaded_on: Vec<String>,
}
