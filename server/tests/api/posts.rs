//! The wall's JSON API and page over real HTTP, against a real SQLite file.

use crate::test_app::{browser, spawn_app};
use fake_ollama::FakeConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn a_text_post_is_stored_and_listed_newest_first_in_pages() {
    let app = spawn_app().await;
    for i in 0..25 {
        let response = app
            .post_json(
                "/posts",
                json!({ "author_name": "Ann", "text": format!("post {i}") }),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let page: Value = app.get_json("/posts").await;
    let posts = page["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 20, "the default page size");
    assert_eq!(posts[0]["text"], "post 24");
    assert_eq!(posts[0]["kind"], "text");
    assert_eq!(posts[0]["author_name"], "Ann");
    let before = page["next_before"].as_i64().expect("a next page");
    let older: Value = app.get_json(&format!("/posts?before={before}")).await;
    let texts: Vec<_> = older["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["post 4", "post 3", "post 2", "post 1", "post 0"]);
    assert!(older["next_before"].is_null());
}

/// The body of a request that must be refused, and what the refusal must say.
enum Body {
    Json(Value),
    Raw(&'static str, &'static str),
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_stores_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            "/posts",
            Body::Json(json!({ "author_name": "A", "text": "   " })),
            400,
            "validation",
            "empty",
        ),
        (
            "/posts",
            Body::Json(json!({ "author_name": "A", "text": "x".repeat(2001) })),
            400,
            "validation",
            "limit is 2000",
        ),
        (
            "/posts",
            Body::Json(json!({ "author_name": "A".repeat(41), "text": "hi" })),
            400,
            "validation",
            "limit is 40",
        ),
        (
            "/posts",
            Body::Json(json!({ "author_name": "A", "text": "x".repeat(70_000) })),
            413,
            "too_large",
            "64 KiB",
        ),
        (
            "/posts",
            Body::Raw("application/json", "{\"text\": "),
            400,
            "malformed",
            "not valid JSON",
        ),
        (
            "/posts",
            Body::Json(json!({ "author_name": "A", "text": 5 })),
            400,
            "malformed",
            "wrong type",
        ),
        (
            "/posts",
            Body::Raw("text/plain", "text=hi"),
            415,
            "malformed",
            "JSON",
        ),
        (
            "/ai/posts",
            Body::Json(json!({ "author_name": "A", "prompt": "" })),
            400,
            "validation",
            "empty",
        ),
        (
            "/ai/posts",
            Body::Json(json!({ "author_name": "A", "prompt": "x".repeat(4001) })),
            400,
            "validation",
            "limit is 4000",
        ),
        (
            "/ai/posts",
            Body::Json(json!({ "author_name": "A", "prompt": "hi", "max_tokens": 0 })),
            400,
            "validation",
            "at least 1",
        ),
    ];
    for (path, body, status, code, says) in cases {
        let request = app.client.post(app.api(path));
        let request = match body {
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, text) => {
                request.header("content-type", content_type).body(text)
            }
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path} {says}");
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
    let page = app.get_json("/posts").await;
    assert!(
        page["posts"].as_array().unwrap().is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn unknown_things_are_404_with_a_json_error() {
    let app = spawn_app().await;
    for path in ["/posts/999", "/ai/generation/999", "/nothing/here"] {
        let response = app.client.get(app.api(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    let response = app
        .client
        .get(app.api("/ai/generation/999/progress"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_page_is_server_rendered_with_posts_escaped() {
    let app = spawn_app().await;
    app.post_json(
        "/posts",
        json!({ "author_name": "Eve", "text": "<script>alert(1)</script>" }),
    )
    .await;
    let html = app
        .client
        .get(&app.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped text in the HTML"
    );
    assert!(!html.contains("<script>alert(1)"), "never as markup");
    assert!(
        html.contains("/pkg/aiwall"),
        "the hydration scripts are referenced"
    );
    assert!(html.contains("data-testid=\"composer\""));
}

#[tokio::test]
async fn only_the_author_may_delete_and_cross_site_posts_are_refused() {
    let app = spawn_app().await;
    let post: Value = app
        .post_json("/posts", json!({ "author_name": "Ann", "text": "mine" }))
        .await
        .json()
        .await
        .unwrap();
    let id = post["id"].as_i64().unwrap();
    let url = app.api(&format!("/posts/{id}"));

    let stranger = browser();
    let response = stranger.delete(&url).send().await.unwrap();
    assert_eq!(response.status(), 403);

    let forged = app
        .client
        .delete(&url)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "a cross-site request is refused even with the author's cookie"
    );
    let forged = app
        .client
        .delete(&url)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let response = app
        .client
        .delete(&url)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_author_cookie_is_signed_httponly_and_samesite_lax() {
    let app = spawn_app().await;
    let response = app
        .post_json("/posts", json!({ "author_name": "Ann", "text": "hi" }))
        .await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("a cookie on the first post")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("aiwall_author="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let second = app
        .post_json("/posts", json!({ "author_name": "Ann", "text": "again" }))
        .await;
    assert!(
        second.headers().get("set-cookie").is_none(),
        "the identity stays"
    );
    let page: Value = app.get_json("/posts").await;
    assert_eq!(
        page["posts"][0]["author_tag"],
        page["posts"][1]["author_tag"]
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["ollama"]["ok"], true);

    let no_ollama = crate::test_app::spawn_app_with(None, |_| {}).await;
    let response = no_ollama
        .client
        .get(format!("{}/readyz", no_ollama.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "Ollama is reported, not required");
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["ollama"]["ok"], false);
    assert!(ready["ollama"]["error"]
        .as_str()
        .unwrap()
        .contains("not reachable"));
    let models = no_ollama
        .client
        .get(no_ollama.api("/ai/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 503);
    let body: Value = models.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Ollama is not reachable"),
        "{body}"
    );
}

#[tokio::test]
async fn every_limit_answers_429_with_retry_after_and_others_keep_being_served() {
    let app = crate::test_app::spawn_app_with(
        Some(FakeConfig {
            tokens_per_second: 5.0,
            length: 50,
            ..FakeConfig::default()
        }),
        |c| {
            c.limits.ai_posts_per_minute = 4;
            c.limits.queued_per_author = 2;
            c.limits.queue_max = 3;
            c.limits.sse_per_client = 3;
            c.jobs.concurrency = 1;
        },
    )
    .await;
    let ask = |client: &reqwest::Client| {
        client
            .post(app.api("/ai/posts"))
            .json(&json!({ "author_name": "A", "prompt": "slow" }))
            .send()
    };

    // Queued jobs per author.
    assert_eq!(ask(&app.client).await.unwrap().status(), 201);
    assert_eq!(ask(&app.client).await.unwrap().status(), 201);
    let refused = ask(&app.client).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 2"),
        "{body}"
    );

    // The total queue.
    let other = browser();
    assert_eq!(ask(&other).await.unwrap().status(), 201);
    let third = browser();
    let refused = ask(&third).await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("busy"),
        "{body}"
    );

    // Text posts and reading go on.
    assert_eq!(
        third
            .post(app.api("/posts"))
            .json(&json!({ "author_name": "C", "text": "still here" }))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );

    // Live streams per client address.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.sse("/wall/events", None).await);
    }
    let refused = app
        .client
        .get(app.api("/wall/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    drop(open.pop());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        app.client
            .get(app.api("/wall/events"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a closed stream frees its place"
    );
}

#[tokio::test]
async fn ai_posts_per_minute_are_limited_per_author() {
    let app = crate::test_app::spawn_app_with(Some(crate::test_app::fast_fake()), |c| {
        c.limits.ai_posts_per_minute = 2
    })
    .await;
    for _ in 0..2 {
        app.ai_post("quick").await;
    }
    let refused = app
        .post_json(
            "/ai/posts",
            json!({ "author_name": "A", "prompt": "one more" }),
        )
        .await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 AI posts per minute"),
        "{body}"
    );
    let other = browser();
    let response = other
        .post(app.api("/ai/posts"))
        .json(&json!({ "author_name": "B", "prompt": "mine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "another author is not affected");
}
