//! The OpenAI-compatible JSON shapes as the fake reads and writes them (chat completions, as
//! llama.cpp's `llama-server` and vLLM send them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` body (fields the fake does not use are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub messages: Vec<RequestMessage>,
    pub stream: Option<bool>,
    pub max_tokens: Option<i64>,
    /// The newer name of `max_tokens`; it wins when both are sent.
    pub max_completion_tokens: Option<i64>,
    pub stream_options: Option<StreamOptions>,
    /// llama.cpp: send `prompt_progress` chunks while the prompt is evaluated.
    #[serde(default)]
    pub return_progress: bool,
    /// llama.cpp: put `timings` on every chunk.
    #[serde(default)]
    pub timings_per_token: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content: a string, or an array of parts of which the text ones count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct Part {
    #[serde(default)]
    pub text: Option<String>,
}

impl RequestMessage {
    /// The message's text (text parts joined by newlines).
    pub(crate) fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One `chat.completion.chunk`, the `data:` of one server-sent event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Chunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<&'static str>,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_progress: Option<PromptProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChunkChoice {
    pub index: u32,
    /// `{}`, `{"role": ...}`, `{"content": ...}` or `{"reasoning_content" | "reasoning": ...}`.
    pub delta: Map<String, Value>,
    /// `null` until the reply ends: then `stop` or `length`.
    pub finish_reason: Option<&'static str>,
}

/// Token counts, on the last chunk when `stream_options.include_usage` asked for them.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// llama.cpp's `timings`: prompt evaluation and generation, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Timings {
    pub cache_n: u64,
    pub prompt_n: u64,
    pub prompt_ms: f64,
    pub prompt_per_token_ms: f64,
    pub prompt_per_second: f64,
    pub predicted_n: u64,
    pub predicted_ms: f64,
    pub predicted_per_token_ms: f64,
    pub predicted_per_second: f64,
}

/// llama.cpp's `prompt_progress` (with `return_progress`): prompt tokens evaluated so far.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct PromptProgress {
    pub total: u64,
    pub cache: u64,
    pub processed: u64,
    pub time_ms: u64,
}

/// `{"error": {...}}`, the body of an HTTP error and the event of a stream that failed.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The HTTP status, as both llama.cpp and vLLM put it.
    pub code: u16,
}
