//! The browser's calls to the JSON API (`/api/v1`), every failure turned into an [`ApiError`]
//! with a sentence to show. The calls are made from the browser only; the server compiles them
//! (the components name them) without a transport.
use serde::{de::DeserializeOwned, Serialize};

use crate::types::{ApiError, ErrorBody, ErrorCode, ModelList, NewAiPost, NewPost, Post, PostPage};

const BASE: &str = "/api/v1";

pub async fn create_post(new: &NewPost) -> Result<Post, ApiError> {
    read(send(Method::Post, &format!("{BASE}/posts"), Some(json(new)?)).await?)
}

pub async fn create_ai_post(new: &NewAiPost) -> Result<Post, ApiError> {
    read(send(Method::Post, &format!("{BASE}/ai/posts"), Some(json(new)?)).await?)
}

pub async fn posts_before(before: i64) -> Result<PostPage, ApiError> {
    read(send(Method::Get, &format!("{BASE}/posts?before={before}"), None).await?)
}

pub async fn models() -> Result<ModelList, ApiError> {
    read(send(Method::Get, &format!("{BASE}/ai/models"), None).await?)
}

pub async fn post(post_id: i64) -> Result<Post, ApiError> {
    read(send(Method::Get, &format!("{BASE}/posts/{post_id}"), None).await?)
}

pub async fn stop(job_id: i64) -> Result<(), ApiError> {
    let url = format!("{BASE}/ai/generation/{job_id}/cancel");
    send(Method::Post, &url, None).await.map(drop)
}

pub async fn retry(job_id: i64) -> Result<(), ApiError> {
    let url = format!("{BASE}/ai/generation/{job_id}/retry");
    send(Method::Post, &url, None).await.map(drop)
}

pub async fn delete_post(post_id: i64) -> Result<(), ApiError> {
    send(Method::Delete, &format!("{BASE}/posts/{post_id}"), None)
        .await
        .map(drop)
}

/// Deletes a post while the page is being left (`pagehide`): the request is handed to the
/// browser before this returns, with `keepalive` so that it outlives the page; its answer is
/// never read (a refusal cannot be shown on a page that is gone).
pub fn delete_post_on_leave(post_id: i64) {
    #[cfg(feature = "hydrate")]
    {
        use futures::FutureExt;

        let init = web_sys::RequestInit::new();
        init.set_method("DELETE");
        // web-sys has no setter for `keepalive`: set the field of the init dictionary directly.
        let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &true.into());
        if let Ok(raw) =
            web_sys::Request::new_with_str_and_init(&format!("{BASE}/posts/{post_id}"), &init)
        {
            // Polling once calls `fetch`; dropping the future then does not cancel the request.
            let _ = gloo_net::http::Request::from(raw).send().now_or_never();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = post_id;
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Delete,
}

/// An answer, whatever its status.
struct Reply {
    status: u16,
    status_text: String,
    body: String,
}

fn json<B: Serialize>(body: &B) -> Result<String, ApiError> {
    crate::json::to_string(body).map_err(|e| ApiError::network(e.to_string()))
}

fn read<T: DeserializeOwned>(body: String) -> Result<T, ApiError> {
    crate::json::from_str(&body)
        .map_err(|e| ApiError::network(format!("The server's answer could not be read: {e}")))
}

/// One request; a successful answer's body.
async fn send(method: Method, url: &str, body: Option<String>) -> Result<String, ApiError> {
    let reply = exchange(method, url, body).await?;
    if (200..300).contains(&reply.status) {
        Ok(reply.body)
    } else {
        Err(refusal(&reply))
    }
}

/// A failed answer as the error it carries, or, when its body is not ours (a proxy's error
/// page, say), as its status.
fn refusal(reply: &Reply) -> ApiError {
    match crate::json::from_str::<ErrorBody>(&reply.body) {
        Ok(body) => body.error,
        Err(_) => ApiError::new(
            ErrorCode::Http,
            format!(
                "The server answered {} {}.",
                reply.status, reply.status_text
            ),
        ),
    }
}

/// One request through the browser's `fetch`, with a JSON body if given.
#[cfg(feature = "hydrate")]
async fn exchange(method: Method, url: &str, body: Option<String>) -> Result<Reply, ApiError> {
    use gloo_net::http::RequestBuilder;

    let builder = match method {
        Method::Get => RequestBuilder::new(url),
        Method::Post => RequestBuilder::new(url).method(gloo_net::http::Method::POST),
        Method::Delete => RequestBuilder::new(url).method(gloo_net::http::Method::DELETE),
    };
    let request = match body {
        Some(body) => builder
            .header("Content-Type", "application/json")
            .body(body),
        None => builder.build(),
    }
    .map_err(|e| ApiError::network(e.to_string()))?;
    let response = request.send().await.map_err(|_| {
        ApiError::network("The server cannot be reached. Check your connection and try again.")
    })?;
    Ok(Reply {
        status: response.status(),
        status_text: response.status_text(),
        // A body cut short reads as empty: an error then shows as its status, and a success
        // as an answer that could not be read.
        body: response.text().await.unwrap_or_default(),
    })
}

/// The server renders the components but never calls the API: there is no transport here.
#[cfg(not(feature = "hydrate"))]
async fn exchange(_method: Method, url: &str, _body: Option<String>) -> Result<Reply, ApiError> {
    Err(ApiError::new(
        ErrorCode::Internal,
        format!("{url} is called from the browser only."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_read_and_anything_else_shows_the_status() {
        let reply = |status, status_text: &str, body: &str| Reply {
            status,
            status_text: status_text.into(),
            body: body.into(),
        };
        let ours = r#"{"error":{"code":"not_found","message":"No such post."}}"#;
        assert_eq!(
            refusal(&reply(404, "Not Found", ours)),
            ApiError::new(ErrorCode::NotFound, "No such post.")
        );
        let proxy = refusal(&reply(502, "Bad Gateway", "<html>oops</html>"));
        assert_eq!(proxy.code, ErrorCode::Http);
        assert_eq!(proxy.message, "The server answered 502 Bad Gateway.");
    }

    #[test]
    fn an_unreadable_answer_says_so() {
        let err = read::<Post>(String::new()).unwrap_err();
        assert_eq!(err.code, ErrorCode::Network);
        assert!(err
            .message
            .starts_with("The server's answer could not be read"));
    }
}
