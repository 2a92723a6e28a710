//! The HTTP edge over real HTTP: every request the router or an extractor refuses answers the
//! documented JSON error, and every response carries the security headers.

use std::time::Duration;

use app::types::{ErrorBody, ErrorCode, JobStatus, NewAiPost};
use fake_ollama::FakeConfig;
use reqwest::{header, Method};

use crate::{
    deadline::eventually,
    test_app::{spawn_app, spawn_app_with},
};

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

/// The page's policy, as the issue specifies it, around this response's nonce.
fn expected_directives(nonce: &str) -> [String; 5] {
    [
        "default-src 'self'".into(),
        format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'"),
        "connect-src 'self'".into(),
        "object-src 'none'".into(),
        "frame-ancestors 'none'".into(),
    ]
}

fn header_of(response: &reqwest::Response, name: header::HeaderName) -> String {
    let value = response.headers().get(&name);
    let value = value.unwrap_or_else(|| panic!("{} has no {name}", response.url()));
    value.to_str().unwrap().to_owned()
}

/// The nonce in a policy's `script-src`.
fn policy_nonce(policy: &str) -> String {
    let start = policy.find("'nonce-").expect("a nonce in the policy") + "'nonce-".len();
    let end = start + policy[start..].find('\'').unwrap();
    policy[start..end].to_owned()
}

/// The `nonce` attribute of every `<script>` in `html` (None for a script without one).
fn script_nonces(html: &str) -> Vec<Option<String>> {
    html.match_indices("<script")
        .map(|(at, _)| {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            let start = tag.find(" nonce=\"")? + " nonce=\"".len();
            let end = start + tag[start..].find('"')?;
            Some(tag[start..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_page_allows_only_its_own_scripts_by_a_nonce_fresh_for_every_response() {
    // A running job with a max length, so that the page draws its determinate progress bar.
    let fake = FakeConfig {
        tokens_per_second: 5.0,
        length: 1000,
        ..FakeConfig::default()
    };
    let app = spawn_app_with(Some(fake), |_| {}).await;
    let (_, job_id) = app
        .ai_post_with(NewAiPost {
            author_name: "Ann".into(),
            prompt: "Write at length".into(),
            model: Some("llama3.2:1b".into()),
            max_tokens: Some(500),
        })
        .await;
    eventually(Duration::from_secs(10), "the job writes", || async {
        (app.job(job_id).await.status == JobStatus::Generating).then_some(())
    })
    .await;

    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = app.client.get(&app.url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert_eq!(header_of(&response, header::REFERRER_POLICY), "same-origin");
        let policy = header_of(&response, header::CONTENT_SECURITY_POLICY);
        let nonce = policy_nonce(&policy);
        assert!(nonce.len() >= 22, "128 bits of nonce: {nonce:?}");
        let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
        for directive in expected_directives(&nonce) {
            assert!(
                directives.contains(&directive.as_str()),
                "{directive:?} in {policy:?}"
            );
        }
        let html = response.text().await.unwrap();
        let scripts = script_nonces(&html);
        assert!(
            html.contains("data-job-id") && html.contains("bar-fill"),
            "the running card and its bar are on the page"
        );
        assert!(!scripts.is_empty(), "the hydration script is on the page");
        for script in scripts {
            assert_eq!(
                script.as_deref(),
                Some(nonce.as_str()),
                "every script carries the nonce"
            );
        }
        // The policy blocks inline styles, so the page must not have any.
        assert!(
            !html.contains(" style="),
            "an inline style attribute in the page"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce for every response");
}

#[tokio::test]
async fn every_other_response_carries_a_policy_that_allows_nothing_and_nosniff() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/posts",
        "/api/v1/posts/abc",
        "/api/v1/nothing/here",
        "/api/v1/wall/events",
        "/healthz",
        "/favicon.svg",
        "/no/such/file",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        let policy = header_of(&response, header::CONTENT_SECURITY_POLICY);
        assert!(
            policy.starts_with("default-src 'none'"),
            "{path}: {policy:?}"
        );
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy:?}"
        );
        assert!(!policy.contains("script-src"), "{path}: {policy:?}");
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
        assert_eq!(
            header_of(&response, header::REFERRER_POLICY),
            "same-origin",
            "{path}"
        );
    }
}
