//! `--api` decides which API a fake answers: the other's paths are a plain 404.

mod common;

use common::{completion_body, fast, get, lines, post, sse, start};
use fake_ollama::{Api, FakeConfig};
use serde_json::json;

fn chat_body() -> serde_json::Value {
    json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn an_ollama_only_fake_has_no_openai_routes() {
    let fake = start(FakeConfig {
        api: Api::Ollama,
        ..fast()
    })
    .await;
    for path in ["/v1/models", "/health"] {
        let response = get(&fake, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.text().await.unwrap().is_empty(), "a plain 404");
    }
    let response = post(&fake, "/v1/chat/completions", &completion_body("hi")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        fake.stats().openai_chat_requests,
        0,
        "never reached the handler"
    );
    assert_eq!(
        lines(post(&fake, "/api/chat", &chat_body()).await)
            .await
            .len(),
        13
    );
    fake.stop().await;
}

#[tokio::test]
async fn an_openai_only_fake_has_no_ollama_routes() {
    let fake = start(FakeConfig {
        api: Api::Openai,
        ..fast()
    })
    .await;
    for path in ["/", "/api/tags", "/api/version", "/api/ps"] {
        assert_eq!(get(&fake, path).await.status(), 404, "{path}");
    }
    for path in ["/api/chat", "/api/generate", "/api/show"] {
        assert_eq!(
            post(&fake, path, &chat_body()).await.status(),
            404,
            "{path}"
        );
    }
    assert_eq!(fake.stats().chat_requests, 0);
    assert_eq!(get(&fake, "/v1/models").await.status(), 200);
    fake.stop().await;
}

#[tokio::test]
async fn set_config_changes_the_api_for_later_requests() {
    let fake = start(fast()).await;
    assert_eq!(get(&fake, "/api/tags").await.status(), 200);
    assert_eq!(get(&fake, "/v1/models").await.status(), 200);
    fake.set_config(FakeConfig {
        api: Api::Openai,
        ..fast()
    });
    assert_eq!(get(&fake, "/api/tags").await.status(), 404);
    fake.stop().await;
}

#[tokio::test]
async fn a_pool_of_two_ollama_fakes_and_one_openai_fake_serve_side_by_side() {
    let ollama = |n: &str| FakeConfig {
        api: Api::Ollama,
        output: Some(format!("from ollama {n}")),
        length: 3,
        ..fast()
    };
    let first = start(ollama("one")).await;
    let second = start(ollama("two")).await;
    let openai = start(FakeConfig {
        api: Api::Openai,
        output: Some("from openai".into()),
        length: 2,
        ..fast()
    })
    .await;
    let ports = [
        first.addr().port(),
        second.addr().port(),
        openai.addr().port(),
    ];
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);

    for (fake, text) in [(&first, "from ollama one"), (&second, "from ollama two")] {
        let lines = lines(post(fake, "/api/chat", &chat_body()).await).await;
        let content: String = lines
            .iter()
            .filter_map(|l| l["message"]["content"].as_str())
            .collect();
        assert_eq!(content, text);
        assert_eq!(get(fake, "/v1/models").await.status(), 404);
    }
    let events = sse(post(&openai, "/v1/chat/completions", &completion_body("hi")).await).await;
    assert_eq!(common::deltas(&events.events, "content"), "from openai");
    assert_eq!(post(&openai, "/api/chat", &chat_body()).await.status(), 404);
    for fake in [first, second, openai] {
        fake.stop().await;
    }
}
