//! The wall's JSON API and page over real HTTP, against a real SQLite file.

use std::time::Duration;

use app::types::{
    ErrorBody, ErrorCode, ModelList, NewAiPost, NewPost, Post, PostKind, PostPage, Readiness,
};
use fake_ollama::FakeConfig;
use serde_json::json;

use crate::{
    deadline::eventually,
    test_app::{browser, fast_fake, on_each_engine, read, spawn_app_on},
};

fn text_post(author_name: &str, text: &str) -> NewPost {
    NewPost {
        author_name: author_name.into(),
        text: text.into(),
    }
}

fn ai_post(author_name: &str, prompt: &str) -> NewAiPost {
    NewAiPost {
        author_name: author_name.into(),
        prompt: prompt.into(),
        ..NewAiPost::default()
    }
}

on_each_engine! {
    async fn a_text_post_is_stored_and_listed_newest_first_in_pages(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        for i in 0..25 {
            let response = app
                .post_json("/posts", &text_post("Ann", &format!("post {i}")))
                .await;
            assert_eq!(response.status(), 201);
        }
        let page: PostPage = app.get("/posts").await;
        let posts = &page.posts;
        assert_eq!(posts.len(), 20, "the default page size");
        assert_eq!(posts[0].text, "post 24");
        assert_eq!(posts[0].kind, PostKind::Text);
        assert_eq!(posts[0].author_name, "Ann");
        let before = page.next_before.expect("a next page");
        let older: PostPage = app.get(&format!("/posts?before={before}")).await;
        let texts: Vec<_> = older.posts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["post 4", "post 3", "post 2", "post 1", "post 0"]);
        assert_eq!(older.next_before, None);
    }
}

/// The body of a request that must be refused: well-formed but against the rules, or not the
/// JSON the endpoint takes at all.
enum Body {
    Post(NewPost),
    AiPost(NewAiPost),
    Json(serde_json::Value),
    Raw(&'static str, &'static str),
}

on_each_engine! {
    async fn bad_input_gets_a_clear_json_error_and_stores_nothing(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let cases = [
            (
                "/posts",
                Body::Post(text_post("A", "   ")),
                400,
                ErrorCode::Validation,
                "empty",
            ),
            (
                "/posts",
                Body::Post(text_post("A", &"x".repeat(2001))),
                400,
                ErrorCode::Validation,
                "limit is 2000",
            ),
            (
                "/posts",
                Body::Post(text_post(&"A".repeat(41), "hi")),
                400,
                ErrorCode::Validation,
                "limit is 40",
            ),
            (
                "/posts",
                Body::Post(text_post("A", &"x".repeat(70_000))),
                413,
                ErrorCode::TooLarge,
                "64 KiB",
            ),
            (
                "/posts",
                Body::Raw("application/json", "{\"text\": "),
                400,
                ErrorCode::Malformed,
                "not valid JSON",
            ),
            (
                "/posts",
                Body::Json(json!({ "author_name": "A", "text": 5 })),
                400,
                ErrorCode::Malformed,
                "wrong type",
            ),
            (
                "/posts",
                Body::Raw("text/plain", "text=hi"),
                415,
                ErrorCode::Malformed,
                "JSON",
            ),
            (
                "/ai/posts",
                Body::AiPost(ai_post("A", "")),
                400,
                ErrorCode::Validation,
                "empty",
            ),
            (
                "/ai/posts",
                Body::AiPost(ai_post("A", &"x".repeat(4001))),
                400,
                ErrorCode::Validation,
                "limit is 4000",
            ),
            (
                "/ai/posts",
                Body::AiPost(NewAiPost {
                    max_tokens: Some(0),
                    ..ai_post("A", "hi")
                }),
                400,
                ErrorCode::Validation,
                "at least 1",
            ),
            (
                "/posts",
                Body::Post(text_post("A", "null\0byte")),
                400,
                ErrorCode::Validation,
                "contains a control character (U+0000)",
            ),
            (
                "/posts",
                Body::Post(text_post("Ada\u{202E}nimdA", "hi")),
                400,
                ErrorCode::Validation,
                "reverses the direction of the text (U+202E)",
            ),
            (
                "/posts",
                Body::Post(text_post("Ada\nLovelace", "hi")),
                400,
                ErrorCode::Validation,
                "The name contains a control character (U+000A)",
            ),
            (
                "/ai/posts",
                Body::AiPost(ai_post("A", "hide \u{2066}this\u{2069}")),
                400,
                ErrorCode::Validation,
                "The prompt contains a character that reverses",
            ),
            (
                "/ai/posts",
                Body::AiPost(NewAiPost {
                    model: Some("qwen2.5:0.5b".into()),
                    ..ai_post("A", "hi")
                }),
                400,
                ErrorCode::Validation,
                "The model qwen2.5:0.5b is not offered here. This wall offers only llama3.2:1b.",
            ),
        ];
        for (path, body, status, code, says) in cases {
            let request = app.client.post(app.api(path));
            let request = match body {
                Body::Post(post) => request.json(&post),
                Body::AiPost(post) => request.json(&post),
                Body::Json(value) => request.json(&value),
                Body::Raw(content_type, text) => {
                    request.header("content-type", content_type).body(text)
                }
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status, "{path} {says}");
            let ErrorBody { error } = read(response).await;
            assert_eq!(error.code, code, "{error:?}");
            let message = error.message;
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
        let page: PostPage = app.get("/posts").await;
        assert!(page.posts.is_empty(), "nothing was stored");
    }
}

on_each_engine! {
    async fn unknown_things_are_404_with_a_json_error(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        for path in ["/posts/999", "/ai/generation/999", "/nothing/here"] {
            let response = app.client.get(app.api(path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            let ErrorBody { error } = read(response).await;
            assert_eq!(error.code, ErrorCode::NotFound);
        }
        let response = app
            .client
            .get(app.api("/ai/generation/999/progress"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
}

on_each_engine! {
    async fn the_page_is_server_rendered_with_posts_escaped(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let response = app
            .post_json("/posts", &text_post("Eve", "<script>alert(1)</script>"))
            .await;
        assert_eq!(response.status(), 201);
        let html = app.page().await;
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
}

on_each_engine! {
    async fn only_the_author_may_delete_and_cross_site_posts_are_refused(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let post: Post = read(app.post_json("/posts", &text_post("Ann", "mine")).await).await;
        let id = post.id;
        let url = app.api(&format!("/posts/{id}"));

        let stranger = browser();
        let response = stranger.delete(&url).send().await.unwrap();
        assert_eq!(response.status(), 403);
        let ErrorBody { error } = read(response).await;
        assert_eq!(error.code, ErrorCode::Forbidden);

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
}

on_each_engine! {
    async fn the_author_cookie_is_signed_httponly_and_samesite_lax(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let response = app.post_json("/posts", &text_post("Ann", "hi")).await;
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
        let second = app.post_json("/posts", &text_post("Ann", "again")).await;
        assert!(
            second.headers().get("set-cookie").is_none(),
            "the identity stays"
        );
        let page: PostPage = app.get("/posts").await;
        assert_eq!(page.posts.len(), 2);
        assert_eq!(page.posts[0].author_tag, page.posts[1].author_tag);
    }
}

on_each_engine! {
    async fn health_and_readiness(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
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
        let ready: Readiness = read(
            app.client
                .get(format!("{}/readyz", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(ready.ready);
        assert!(ready.ollama.ok);
        let models: ModelList = app.get("/ai/models").await;
        assert_eq!(
            models.models,
            ["llama3.2:1b"],
            "only the default model is offered, although the model server has two"
        );
        assert_eq!(models.default_model, "llama3.2:1b");

        let no_ollama = spawn_app_on(engine, None, |_| {}).await;
        let response = no_ollama
            .client
            .get(format!("{}/readyz", no_ollama.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "Ollama is reported, not required");
        let ready: Readiness = read(response).await;
        assert!(!ready.ollama.ok);
        assert!(ready
            .ollama
            .error
            .as_deref()
            .unwrap()
            .contains("not reachable"));
        let models = no_ollama
            .client
            .get(no_ollama.api("/ai/models"))
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 503);
        let ErrorBody { error } = read(models).await;
        assert_eq!(error.code, ErrorCode::OllamaUnavailable);
        assert!(
            error.message.contains("the model server is not reachable"),
            "{error:?}"
        );
    }
}

on_each_engine! {
    async fn every_limit_answers_429_with_retry_after_and_others_keep_being_served(engine) {
        let app = spawn_app_on(
            engine,
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
                .json(&ai_post("A", "slow"))
                .send()
        };

        // Queued jobs per author.
        assert_eq!(ask(&app.client).await.unwrap().status(), 201);
        assert_eq!(ask(&app.client).await.unwrap().status(), 201);
        let refused = ask(&app.client).await.unwrap();
        assert_eq!(refused.status(), 429);
        assert!(refused.headers().contains_key("retry-after"));
        let ErrorBody { error } = read(refused).await;
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert!(error.message.contains("the limit is 2"), "{error:?}");

        // The total queue.
        let other = browser();
        assert_eq!(ask(&other).await.unwrap().status(), 201);
        let third = browser();
        let refused = ask(&third).await.unwrap();
        assert_eq!(refused.status(), 429);
        let ErrorBody { error } = read(refused).await;
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert!(error.message.contains("busy"), "{error:?}");

        // Text posts and reading go on.
        assert_eq!(
            third
                .post(app.api("/posts"))
                .json(&text_post("C", "still here"))
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
        let ErrorBody { error } = read(refused).await;
        assert_eq!(error.code, ErrorCode::RateLimited);
        drop(open.pop());
        // The server frees the place once it notices the client has gone, which only a new
        // request can tell: 429 until then.
        eventually(
            Duration::from_secs(5),
            "a closed stream frees its place",
            || async {
                let response = app
                    .client
                    .get(app.api("/wall/events"))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => Some(()),
                    429 => None,
                    other => panic!("a stream is either served or refused, not {other}"),
                }
            },
        )
        .await;
    }
}

on_each_engine! {
    async fn ai_posts_per_minute_are_limited_per_author(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |c| {
            c.limits.ai_posts_per_minute = 2
        })
        .await;
        for _ in 0..2 {
            app.ai_post("quick").await;
        }
        let refused = app.post_json("/ai/posts", &ai_post("A", "one more")).await;
        assert_eq!(refused.status(), 429);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&wait), "{wait}");
        let ErrorBody { error } = read(refused).await;
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert!(error.message.contains("2 AI posts per minute"), "{error:?}");
        let other = browser();
        let response = other
            .post(app.api("/ai/posts"))
            .json(&ai_post("B", "mine"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "another author is not affected");
    }
}
