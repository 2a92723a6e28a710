//! The HTTP edge over real HTTP: every request the router or an extractor refuses answers the
//! documented JSON error, and every response carries the security headers.

use app::types::{ErrorBody, ErrorCode};
use reqwest::{header, Method};

use crate::test_app::spawn_app;

/// A refused request: method, path under /api/v1, status, code, and words the message says.
type Refusal = (Method, &'static str, u16, ErrorCode, &'static str);

#[tokio::test]
async fn a_bad_id_query_or_method_answers_the_documented_json_error() {
    let app = spawn_app().await;
    let cases: [Refusal; 12] = [
        (Method::GET, "/posts/abc", 404, ErrorCode::NotFound, "`abc`"),
        (
            Method::DELETE,
            "/posts/abc",
            404,
            ErrorCode::NotFound,
            "`abc`",
        ),
        (
            Method::GET,
            "/posts/99999999999999999999",
            404,
            ErrorCode::NotFound,
            "not an id",
        ),
        (
            Method::GET,
            "/ai/generation/x",
            404,
            ErrorCode::NotFound,
            "`x`",
        ),
        (
            Method::GET,
            "/ai/generation/x/progress",
            404,
            ErrorCode::NotFound,
            "`x`",
        ),
        (
            Method::POST,
            "/ai/generation/x/cancel",
            404,
            ErrorCode::NotFound,
            "`x`",
        ),
        (
            Method::GET,
            "/posts?before=xyz",
            400,
            ErrorCode::Malformed,
            "before",
        ),
        (
            Method::GET,
            "/posts?limit=-1",
            400,
            ErrorCode::Malformed,
            "limit",
        ),
        (Method::PUT, "/posts", 405, ErrorCode::Malformed, "method"),
        (
            Method::PATCH,
            "/posts/1",
            405,
            ErrorCode::Malformed,
            "method",
        ),
        (
            Method::GET,
            "/ai/posts",
            405,
            ErrorCode::Malformed,
            "method",
        ),
        (
            Method::GET,
            "/ai/generation/1/cancel",
            405,
            ErrorCode::Malformed,
            "method",
        ),
    ];
    for (method, path, status, code, says) in cases {
        let response = app
            .client
            .request(method.clone(), app.api(path))
            .send()
            .await
            .unwrap();
        let what = format!("{method} {path}");
        assert_eq!(response.status(), status, "{what}");
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{what}"
        );
        if status == 405 {
            let allow = response.headers().get(header::ALLOW).cloned();
            assert!(
                allow.is_some_and(|v| !v.is_empty()),
                "{what}: an Allow header"
            );
        }
        let body = response.text().await.unwrap();
        let ErrorBody { error } = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: not the documented error ({e}): {body:?}"));
        assert_eq!(error.code, code, "{what}");
        assert!(error.message.contains(says), "{what}: {:?}", error.message);
    }
}
