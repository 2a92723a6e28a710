//! `/api/v1/posts` and `/api/v1/ai/posts`: reading the wall, writing posts, deleting them.
use app::types::{NewAiPost, NewPost, Post, PostKind, PostPage};

use axum::{extract::State, http::StatusCode, Json};
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use super::{
    address::{ApiPath, ApiQuery},
    json::ApiJson,
};
use crate::{
    allowed_models::AllowedModels,
    client_addr::ClientAddr,
    db::{NewAiPostRow, PostWithJob, ADDRESS_KEY},
    error::{HttpError, HttpResult},
    identity::{self, tag_of},
    jobs::fold::fold,
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// A post as the API shows it, with its job's live state.
pub fn to_post(state: &AppState, row: PostWithJob) -> Post {
    let PostWithJob { post, job } = row;
    let job = job.map(|j| state.jobs.view(&j));
    let html = match post.kind {
        // A finished answer is its job's text, whose blocks the view has rendered already.
        PostKind::Ai => (!post.text.is_empty()).then(|| match &job {
            Some(view) if view.text == post.text => view.blocks.concat(),
            _ => crate::markdown::to_safe_html(&post.text),
        }),
        PostKind::Text => Some(crate::markdown::text_post_html(&post.text)),
    };
    Post {
        html,
        id: post.id,
        kind: post.kind,
        author_tag: tag_of(&post.author_id),
        author_name: post.author_name,
        text: post.text,
        prompt: post.prompt,
        created_at: post.created_at,
        job,
    }
}

/// A page of the wall, newest first, long answers folded.
pub async fn load_page(
    state: &AppState,
    before: Option<i64>,
    limit: Option<u32>,
) -> HttpResult<PostPage> {
    let page_size = state.config.limits.page_size;
    let limit = limit.unwrap_or(page_size).clamp(1, page_size.max(1) * 5);
    // One more than asked tells whether there is a next page.
    let mut rows = state.db.list_posts(before, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_before = more.then(|| rows.last().map(|r| r.post.id)).flatten();
    let posts = rows
        .into_iter()
        .map(|r| {
            let mut post = to_post(state, r);
            fold(&mut post);
            post
        })
        .collect();
    Ok(PostPage { posts, next_before })
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> HttpResult<Json<PostPage>> {
    Ok(Json(load_page(&state, q.before, q.limit).await?))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> HttpResult<Json<Post>> {
    let row = state
        .db
        .post(id)
        .await?
        .ok_or_else(|| HttpError::not_found("post"))?;
    Ok(Json(to_post(&state, row)))
}

pub async fn create_text(
    State(state): State<AppState>,
    client: ClientAddr,
    jar: SignedCookieJar,
    ApiJson(new): ApiJson<NewPost>,
) -> HttpResult<(StatusCode, SignedCookieJar, Json<Post>)> {
    let limits = state.input_limits();
    let name = limits
        .author_name(&new.author_name)
        .map_err(HttpError::invalid)?;
    let text = limits.post_text(&new.text).map_err(HttpError::invalid)?;
    let (jar, author) = identity::author_or_new(jar, state.config.server.serves_https());
    state.limits.admit_text_post(&author.id, client.key())?;
    let row = state.db.insert_text_post(&author.id, &name, &text).await?;
    let post = to_post(
        &state,
        PostWithJob {
            post: row,
            job: None,
        },
    );
    state.hub.post_created(post.clone());
    Ok((StatusCode::CREATED, jar, Json(post)))
}

pub async fn create_ai(
    State(state): State<AppState>,
    client: ClientAddr,
    jar: SignedCookieJar,
    ApiJson(new): ApiJson<NewAiPost>,
) -> HttpResult<(StatusCode, SignedCookieJar, Json<Post>)> {
    let limits = state.input_limits();
    let name = limits
        .author_name(&new.author_name)
        .map_err(HttpError::invalid)?;
    let prompt = limits.prompt(&new.prompt).map_err(HttpError::invalid)?;
    let max_tokens = limits
        .max_tokens(new.max_tokens)
        .map_err(HttpError::invalid)?;
    let model = limits
        .model(new.model.as_deref(), &state.config.generation.default_model)
        .and_then(|model| AllowedModels::of(&state.config.generation).check(model))
        .map_err(HttpError::invalid)?;
    // A client without the cookie waits in its address group's turn: dropping the cookie
    // (and so becoming a new author) must not buy a turn of its own in the fair queue.
    let queue_key = match identity::author(&jar) {
        Some(author) => author.id,
        None => format!("{ADDRESS_KEY}{}", client.key()),
    };
    let (jar, author) = identity::author_or_new(jar, state.config.server.serves_https());
    let _admitted = state.jobs.admit(&author.id, client.key()).await?;
    let created = state
        .db
        .insert_ai_post(NewAiPostRow {
            author_id: &author.id,
            author_name: &name,
            prompt: &prompt,
            model: &model,
            max_tokens,
            client_key: Some(&client.key().to_string()),
            queue_key: &queue_key,
        })
        .await?;
    if let Some(job) = &created.job {
        state.jobs.submit(job);
    }
    let post = to_post(&state, created);
    state.hub.post_created(post.clone());
    Ok((StatusCode::CREATED, jar, Json(post)))
}

pub async fn delete(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    ApiPath(id): ApiPath<i64>,
) -> HttpResult<StatusCode> {
    let row = state
        .db
        .post(id)
        .await?
        .ok_or_else(|| HttpError::not_found("post"))?;
    super::require_author(&jar, &row.post.author_id, "delete this post")?;
    if let Some(job) = &row.job {
        state.jobs.forget(job.id).await?;
    }
    state.db.delete_post(id).await?;
    state.hub.post_deleted(id, row.job.map(|job| job.id));
    Ok(StatusCode::NO_CONTENT)
}
