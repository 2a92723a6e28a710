//! Ollama's thinking as real Ollama does it: the "thinking" capability, the request's `think`
//! field, and the 400 for a model that cannot think.

mod common;

use common::{fast, lines, post, start};
use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{json, Value};

fn thinking_fake() -> FakeConfig {
    FakeConfig {
        models: vec![
            "llama3.2:1b".into(),
            "qwen3:latest".into(),
            "qwen3:4b".into(),
        ],
        thinking_models: vec!["qwen3".into()],
        ..fast()
    }
}

fn chat(model: &str, think: Option<Value>) -> Value {
    let mut body = json!({"model": model, "messages": [
        {"role": "user", "content": "hi #fake:think=3 #fake:tokens=2"}
    ]});
    if let Some(think) = think {
        body["think"] = think;
    }
    body
}

/// How many chunks carried `message.thinking`, and whether it all came before the content.
async fn thinking_chunks(fake: &FakeOllama, body: &Value) -> usize {
    let lines = lines(post(fake, "/api/chat", body).await).await;
    let thinking: Vec<bool> = lines
        .iter()
        .map(|l| l["message"].get("thinking").is_some())
        .collect();
    let count = thinking.iter().filter(|t| **t).count();
    assert!(thinking[..count].iter().all(|t| *t), "thinking comes first");
    assert_eq!(lines.last().unwrap()["eval_count"], count + 2);
    count
}

#[tokio::test]
async fn show_lists_the_thinking_capability_only_for_thinking_models() {
    let fake = start(thinking_fake()).await;
    for (model, capabilities) in [
        ("qwen3:4b", json!(["completion", "thinking"])),
        ("llama3.2:1b", json!(["completion"])),
    ] {
        let show: Value = post(&fake, "/api/show", &json!({"model": model}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(show["capabilities"], capabilities, "{model}");
    }
    fake.stop().await;
}

#[tokio::test]
async fn a_thinking_model_thinks_unless_told_not_to() {
    let fake = start(thinking_fake()).await;
    assert_eq!(
        thinking_chunks(&fake, &chat("qwen3:4b", Some(json!(true)))).await,
        3
    );
    assert_eq!(
        thinking_chunks(&fake, &chat("qwen3:4b", Some(json!("high")))).await,
        3
    );
    assert_eq!(
        thinking_chunks(&fake, &chat("qwen3:4b", None)).await,
        3,
        "absent = on"
    );
    assert_eq!(
        thinking_chunks(&fake, &chat("qwen3:4b", Some(json!(false)))).await,
        0
    );
    let recorded: Vec<Option<Value>> = fake.requests().into_iter().map(|r| r.think).collect();
    assert_eq!(
        recorded,
        [
            Some(json!(true)),
            Some(json!("high")),
            None,
            Some(json!(false))
        ]
    );
    fake.stop().await;
}

#[tokio::test]
async fn other_models_never_think_and_reject_think_true() {
    let fake = start(thinking_fake()).await;
    assert_eq!(thinking_chunks(&fake, &chat("llama3.2:1b", None)).await, 0);
    assert_eq!(
        thinking_chunks(&fake, &chat("llama3.2:1b", Some(json!(false)))).await,
        0
    );
    let response = post(&fake, "/api/chat", &chat("llama3.2:1b", Some(json!(true)))).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": "\"llama3.2:1b\" does not support thinking"})
    );

    let generate = json!({"model": "llama3.2:1b", "prompt": "hi", "think": true});
    assert_eq!(post(&fake, "/api/generate", &generate).await.status(), 400);
    let bad = post(&fake, "/api/chat", &chat("qwen3:4b", Some(json!("maybe")))).await;
    assert_eq!(bad.status(), 400);
    fake.stop().await;
}

#[tokio::test]
async fn generate_streams_thinking_for_a_thinking_model() {
    let fake = start(thinking_fake()).await;
    let body = json!({"model": "qwen3", "prompt": "hi #fake:think=2 #fake:tokens=1"});
    let lines = lines(post(&fake, "/api/generate", &body).await).await;
    assert_eq!(lines.len(), 4);
    assert!(lines[..2].iter().all(|l| l["thinking"].is_string()));
    assert!(lines[2].get("thinking").is_none());
    fake.stop().await;
}
