//! The browser's calls to the JSON API (`/api/v1`), every failure turned into an [`ApiError`]
//! with a sentence to show.
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::{de::DeserializeOwned, Serialize};

use crate::types::{ApiError, ErrorBody, ErrorCode, ModelList, NewAiPost, NewPost, Post, PostPage};

const BASE: &str = "/api/v1";

pub async fn create_post(new: &NewPost) -> Result<Post, ApiError> {
    send_json(Request::post(&format!("{BASE}/posts")), new).await
}

pub async fn create_ai_post(new: &NewAiPost) -> Result<Post, ApiError> {
    send_json(Request::post(&format!("{BASE}/ai/posts")), new).await
}

pub async fn posts_before(before: i64) -> Result<PostPage, ApiError> {
    read(Request::get(&format!("{BASE}/posts?before={before}"))).await
}

pub async fn models() -> Result<ModelList, ApiError> {
    read(Request::get(&format!("{BASE}/ai/models"))).await
}

pub async fn post(post_id: i64) -> Result<Post, ApiError> {
    read(Request::get(&format!("{BASE}/posts/{post_id}"))).await
}

pub async fn stop(job_id: i64) -> Result<(), ApiError> {
    expect_ok(Request::post(&format!(
        "{BASE}/ai/generation/{job_id}/cancel"
    )))
    .await
}

pub async fn retry(job_id: i64) -> Result<(), ApiError> {
    expect_ok(Request::post(&format!(
        "{BASE}/ai/generation/{job_id}/retry"
    )))
    .await
}

pub async fn delete_post(post_id: i64) -> Result<(), ApiError> {
    expect_ok(Request::delete(&format!("{BASE}/posts/{post_id}"))).await
}

async fn send_json<B: Serialize, T: DeserializeOwned>(
    builder: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    let request = builder
        .json(body)
        .map_err(|e| ApiError::network(e.to_string()))?;
    parse(request.send().await).await
}

async fn read<T: DeserializeOwned>(builder: RequestBuilder) -> Result<T, ApiError> {
    parse(builder.send().await).await
}

async fn expect_ok(builder: RequestBuilder) -> Result<(), ApiError> {
    let response = checked(builder.send().await).await?;
    drop(response);
    Ok(())
}

async fn parse<T: DeserializeOwned>(
    sent: Result<Response, gloo_net::Error>,
) -> Result<T, ApiError> {
    let response = checked(sent).await?;
    response
        .json::<T>()
        .await
        .map_err(|e| ApiError::network(format!("The server's answer could not be read: {e}")))
}

async fn checked(sent: Result<Response, gloo_net::Error>) -> Result<Response, ApiError> {
    let response = sent.map_err(|_| {
        ApiError::network("The server cannot be reached. Check your connection and try again.")
    })?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    Err(match response.json::<ErrorBody>().await {
        Ok(body) => body.error,
        Err(_) => ApiError::new(
            ErrorCode::Http,
            format!("The server answered {status} {}.", response.status_text()),
        ),
    })
}
