//! Helpers the OpenAI and thinking tests share: starting fakes, posting, reading SSE and NDJSON.
#![allow(dead_code)] // each test binary uses a different subset

use eventsource_stream::Eventsource;
use fake_ollama::{FakeConfig, FakeOllama};
use futures::StreamExt;
use serde_json::{json, Value};

pub fn fast() -> FakeConfig {
    FakeConfig {
        tokens_per_second: 5000.0,
        length: 12,
        ..FakeConfig::default()
    }
}

pub async fn start(config: FakeConfig) -> FakeOllama {
    FakeOllama::start(config).await.expect("fake starts")
}

pub async fn post(fake: &FakeOllama, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .json(body)
        .send()
        .await
        .expect("request is sent")
}

pub async fn get(fake: &FakeOllama, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", fake.url()))
        .await
        .expect("request is sent")
}

/// A streaming chat-completions body for `prompt`.
pub fn completion_body(prompt: &str) -> Value {
    json!({
        "model": "llama3.2:1b",
        "stream": true,
        "messages": [{"role": "user", "content": prompt}],
    })
}

/// What an SSE stream carried: the JSON events and whether `[DONE]` ended it.
#[derive(Debug)]
pub struct Sse {
    pub events: Vec<Value>,
    pub done: bool,
}

/// Reads a whole SSE body as an SSE client would (see [`parse_sse`]).
pub async fn sse(response: reqwest::Response) -> Sse {
    parse_sse(&response.bytes().await.expect("body arrives")).await
}

/// Parses SSE bytes with an SSE parser. Every event is `data:` JSON, and only the last may be
/// `[DONE]`.
pub async fn parse_sse(bytes: &[u8]) -> Sse {
    let pieces = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes.to_vec())]);
    let mut stream = pieces.eventsource();
    let (mut events, mut done) = (Vec::new(), false);
    while let Some(event) = stream.next().await {
        let event = event.expect("well-formed SSE");
        assert!(!done, "nothing follows [DONE]");
        assert_eq!(event.event, "message", "events are unnamed");
        if event.data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(&event.data).expect("each event is one JSON object"));
        }
    }
    Sse { events, done }
}

/// The concatenated `delta[field]` of the chunks.
pub fn deltas(events: &[Value], field: &str) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"][field].as_str())
        .collect()
}

/// Every NDJSON line of a response, parsed.
pub async fn lines(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.expect("body arrives");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}
