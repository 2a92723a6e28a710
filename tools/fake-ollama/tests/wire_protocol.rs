//! The fake speaks Ollama's wire protocol: shapes, errors, pacing, chunking and disconnects.

use std::time::{Duration, Instant};

use fake_ollama::{Failure, FakeConfig, FakeOllama, Stats, BUSY_MESSAGE, RUNNER_ERROR_MESSAGE};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

fn fast() -> FakeConfig {
    FakeConfig {
        tokens_per_second: 5000.0,
        length: 12,
        ..FakeConfig::default()
    }
}

async fn start(config: FakeConfig) -> FakeOllama {
    FakeOllama::start(config).await.expect("fake starts")
}

fn chat_body(prompt: &str) -> Value {
    json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": prompt}]})
}

async fn post(fake: &FakeOllama, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", fake.url()))
        .json(body)
        .send()
        .await
        .expect("request is sent")
}

async fn get(fake: &FakeOllama, path: &str) -> Value {
    reqwest::get(format!("{}{path}", fake.url()))
        .await
        .expect("request is sent")
        .json()
        .await
        .expect("body is JSON")
}

/// Every NDJSON line of a response, parsed.
async fn lines(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.expect("body arrives");
    assert!(text.ends_with('\n'), "every line ends with a newline");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

fn chat_content(lines: &[Value]) -> String {
    lines
        .iter()
        .filter_map(|line| line["message"]["content"].as_str())
        .collect()
}

fn is_rfc3339_nanos(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 30
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && text.ends_with('Z')
}

#[tokio::test]
async fn chat_streams_ndjson_in_ollamas_shape() {
    let fake = start(fast()).await;
    let response = post(&fake, "/api/chat", &chat_body("Write a post about cats")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "Ollama's stream content type"
    );
    let lines = lines(response).await;
    assert_eq!(lines.len(), 13, "12 tokens and the final chunk");
    for line in &lines[..12] {
        assert_eq!(line["model"], "llama3.2:1b");
        assert!(is_rfc3339_nanos(line["created_at"].as_str().unwrap()));
        assert_eq!(line["message"]["role"], "assistant");
        assert_eq!(line["done"], false);
        assert!(line.get("done_reason").is_none());
    }
    assert_eq!(chat_content(&lines), fast().text());
    let last = &lines[12];
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(last["eval_count"], 12);
    assert_eq!(last["prompt_eval_count"], 5, "words of the prompt");
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[field].is_u64(), "{field} is a number of nanoseconds");
    }
    assert!(last["total_duration"].as_u64() >= last["eval_duration"].as_u64());
    assert_eq!(fake.final_chunks(), vec![last.clone()]);
    let stats = fake.stats();
    assert_eq!((stats.chat_requests, stats.completed), (1, 1));
    assert_eq!(stats.per_model["llama3.2:1b"], 1);
    fake.stop().await;
}

#[tokio::test]
async fn default_output_has_multibyte_utf8() {
    let text = FakeConfig::default().text();
    for sample in ["café", "日本語", "🤖"] {
        assert!(text.contains(sample), "{sample} in {text}");
    }
}

#[tokio::test]
async fn generate_streams_response_and_ends_with_context() {
    let fake = start(fast()).await;
    let body = json!({"model": "qwen2.5:0.5b", "prompt": "Say hi"});
    let lines = lines(post(&fake, "/api/generate", &body).await).await;
    let text: String = lines
        .iter()
        .map(|line| line["response"].as_str().unwrap())
        .collect();
    assert_eq!(text, fast().text());
    assert!(lines[0].get("message").is_none());
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["model"], "qwen2.5:0.5b");
    let context = last["context"].as_array().expect("context is an int array");
    assert_eq!(context.len(), 2 + 12);
    assert!(context.iter().all(Value::is_u64));
    assert_eq!(fake.stats().generate_requests, 1);
    fake.stop().await;
}

#[tokio::test]
async fn stream_false_answers_with_one_object() {
    let fake = start(fast()).await;
    let mut body = chat_body("hello");
    body["stream"] = json!(false);
    let response = post(&fake, "/api/chat", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["message"]["content"], fast().text());
    assert_eq!(reply["done"], true);
    assert_eq!(reply["eval_count"], 12);
    assert_eq!(fake.final_chunks(), vec![reply]);
    fake.stop().await;
}

#[tokio::test]
async fn thinking_comes_before_content() {
    let fake = start(FakeConfig {
        thinking_models: vec!["llama3.2:1b".into()],
        ..fast()
    })
    .await;
    let mut body = chat_body("#fake:think=3 #fake:tokens=2");
    body["think"] = json!(true);
    let lines = lines(post(&fake, "/api/chat", &body).await).await;
    let thinking: Vec<_> = lines
        .iter()
        .map(|l| l["message"].get("thinking").is_some())
        .collect();
    assert_eq!(thinking, [true, true, true, false, false, false]);
    assert_eq!(lines.last().unwrap()["eval_count"], 5);
    fake.stop().await;
}

#[tokio::test]
async fn tags_ps_version_and_show_answer_like_ollama() {
    let fake = start(fast()).await;
    assert_eq!(
        get(&fake, "/api/version").await,
        json!({"version": "0.12.0"})
    );

    let tags = get(&fake, "/api/tags").await;
    let models = tags["models"].as_array().unwrap();
    let names: Vec<_> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["llama3.2:1b", "qwen2.5:0.5b"]);
    let llama = &models[0];
    assert_eq!(llama["model"], "llama3.2:1b");
    assert!(is_rfc3339_nanos(llama["modified_at"].as_str().unwrap()));
    assert!(llama["size"].as_u64().unwrap() > 0);
    assert_eq!(llama["digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        llama["details"],
        json!({"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
               "parameter_size": "1.2B", "quantization_level": "Q8_0"})
    );

    assert_eq!(get(&fake, "/api/ps").await, json!({"models": []}));
    lines(post(&fake, "/api/chat", &chat_body("hi")).await).await;
    let ps = get(&fake, "/api/ps").await;
    assert_eq!(ps["models"][0]["name"], "llama3.2:1b");
    assert!(ps["models"][0]["expires_at"].is_string());

    let show = post(&fake, "/api/show", &json!({"model": "llama3.2:1b"})).await;
    assert_eq!(show.status(), 200);
    let show: Value = show.json().await.unwrap();
    assert_eq!(show["details"]["family"], "llama");
    assert!(show["capabilities"].is_array());
    let missing = post(&fake, "/api/show", &json!({"model": "nope"})).await;
    assert_eq!(missing.status(), 404);
    fake.stop().await;
}

#[tokio::test]
async fn a_model_that_is_not_installed_gets_ollamas_404() {
    let fake = start(fast()).await;
    let body = json!({"model": "mistral:7b", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&fake, "/api/chat", &body).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": "model \"mistral:7b\" not found, try pulling it first"})
    );
    assert_eq!(fake.stats().http_errors, 1);
    fake.stop().await;
}

#[tokio::test]
async fn a_malformed_body_gets_400_with_an_error() {
    let fake = start(fast()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/chat", fake.url()))
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));

    let response = post(&fake, "/api/chat", &json!({"messages": []})).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "model is required");
    fake.stop().await;
}

#[tokio::test]
async fn num_predict_cuts_the_reply_with_done_reason_length() {
    let fake = start(fast()).await;
    let mut body = chat_body("hi");
    body["options"] = json!({"num_predict": 4});
    let lines = lines(post(&fake, "/api/chat", &body).await).await;
    assert_eq!(lines.len(), 5);
    let last = lines.last().unwrap();
    assert_eq!(last["done_reason"], "length");
    assert_eq!(last["eval_count"], 4);
    assert_eq!(chat_content(&lines), fast().tokens()[..4].concat());
    fake.stop().await;
}

#[tokio::test]
async fn error_after_ends_the_stream_with_an_error_line_under_200() {
    let fake = start(FakeConfig {
        failure: Failure::ErrorAfter { tokens: 5 },
        ..fast()
    })
    .await;
    let response = post(&fake, "/api/chat", &chat_body("hi")).await;
    assert_eq!(response.status(), 200);
    let lines = lines(response).await;
    assert_eq!(lines.len(), 6);
    assert!(lines[..5].iter().all(|l| l["done"] == false));
    assert_eq!(lines[5], json!({"error": RUNNER_ERROR_MESSAGE}));
    let stats = fake.stats();
    assert_eq!((stats.stream_errors, stats.completed), (1, 0));
    assert!(fake.final_chunks().is_empty());
    fake.stop().await;
}

#[tokio::test]
async fn stall_after_keeps_the_connection_open_and_silent() {
    let fake = start(fast()).await;
    let mut response = post(&fake, "/api/chat", &chat_body("hi #fake:stall-after=3")).await;
    let mut received = Vec::new();
    let silence = loop {
        match tokio::time::timeout(Duration::from_millis(300), response.chunk()).await {
            Ok(Ok(Some(bytes))) => received.extend_from_slice(&bytes),
            Ok(other) => panic!("stream ended instead of stalling: {other:?}"),
            Err(_) => break true,
        }
    };
    assert!(silence);
    let text = String::from_utf8(received).unwrap();
    assert_eq!(text.lines().count(), 3, "three tokens, then nothing");
    drop(response);
    let stats = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
    assert!(
        stats.is_ok(),
        "leaving a stalled stream is a disconnect: {stats:?}"
    );
    fake.stop().await;
}

#[tokio::test]
async fn split_bytes_pieces_reassemble_into_valid_lines() {
    let fake = start(fast()).await;
    for split in 1..=7 {
        let prompt = format!("#fake:split-bytes={split} #fake:tokens=30");
        let mut response = post(&fake, "/api/chat", &chat_body(&prompt)).await;
        let (mut bytes, mut chunks, mut chunks_mid_line) = (Vec::new(), 0, 0);
        while let Some(chunk) = response.chunk().await.unwrap() {
            chunks += 1;
            bytes.extend_from_slice(&chunk);
            chunks_mid_line += usize::from(!bytes.ends_with(b"\n"));
        }
        let text = String::from_utf8(bytes).expect("pieces reassemble into UTF-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("pieces reassemble into lines"))
            .collect();
        assert_eq!(lines.len(), 31);
        assert_eq!(
            chat_content(&lines),
            FakeConfig {
                length: 30,
                ..fast()
            }
            .text()
        );
        assert!(
            chunks > lines.len() && chunks_mid_line > 0,
            "split {split}: {chunks} chunks for {} lines",
            lines.len()
        );
    }
    fake.stop().await;
}

#[tokio::test]
async fn coalesced_lines_are_still_valid_ndjson() {
    let fake = start(FakeConfig {
        coalesce_lines: true,
        ..fast()
    })
    .await;
    let lines = lines(post(&fake, "/api/chat", &chat_body("hi")).await).await;
    assert_eq!(lines.len(), 13);
    assert_eq!(chat_content(&lines), fast().text());
    fake.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_counted_as_disconnected() {
    let fake = start(FakeConfig {
        tokens_per_second: 200.0,
        length: 10_000,
        ..fast()
    })
    .await;
    let mut response = post(&fake, "/api/chat", &chat_body("hi")).await;
    response.chunk().await.unwrap().expect("first token");
    drop(response);
    let stats = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
    assert!(stats.is_ok(), "{stats:?}");
    assert_eq!(fake.stats().completed, 0);
    fake.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_during_the_model_load_is_counted_as_disconnected() {
    let fake = start(fast()).await;
    let url = format!("{}/api/chat", fake.url());
    let request = reqwest::Client::new()
        .post(url)
        .json(&chat_body("hi #fake:load-ms=5000"))
        .send();
    assert!(tokio::time::timeout(Duration::from_millis(200), request)
        .await
        .is_err());
    let stats = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
    assert!(stats.is_ok(), "{stats:?}");
    fake.stop().await;
}

#[tokio::test]
async fn tokens_leave_on_a_steady_schedule() {
    let fake = start(FakeConfig {
        tokens_per_second: 100.0,
        length: 20,
        ..fast()
    })
    .await;
    let started = Instant::now();
    let lines = lines(post(&fake, "/api/chat", &chat_body("hi")).await).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(195) && elapsed < Duration::from_millis(1000),
        "20 tokens at 100/s took {elapsed:?}"
    );
    let eval = lines.last().unwrap()["eval_duration"].as_u64().unwrap();
    assert!(
        (195_000_000..1_000_000_000).contains(&eval),
        "eval_duration {eval}"
    );
    fake.stop().await;
}

#[tokio::test]
async fn load_and_prompt_evaluation_are_reported_in_nanoseconds() {
    let fake = start(FakeConfig {
        load_delay_ms: 120,
        prompt_eval_ms: 40,
        ..fast()
    })
    .await;
    let started = Instant::now();
    let response = post(&fake, "/api/chat", &chat_body("hi")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(160),
        "like Ollama, headers wait for the first token"
    );
    let lines = lines(response).await;
    let last = lines.last().unwrap();
    let load = last["load_duration"].as_u64().unwrap();
    let prompt_eval = last["prompt_eval_duration"].as_u64().unwrap();
    assert!((120_000_000..400_000_000).contains(&load), "load {load}");
    assert!(
        (40_000_000..300_000_000).contains(&prompt_eval),
        "prompt eval {prompt_eval}"
    );
    assert!(last["total_duration"].as_u64().unwrap() >= load + prompt_eval);
    fake.stop().await;
}

#[tokio::test]
async fn stamped_tokens_carry_their_departure_time() {
    let fake = start(fast()).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let lines = lines(post(&fake, "/api/chat", &chat_body("#fake:stamp")).await).await;
    let stamps: Vec<u128> = lines[..12]
        .iter()
        .map(|l| {
            let content = l["message"]["content"].as_str().unwrap();
            content.strip_prefix(" t").unwrap().parse().unwrap()
        })
        .collect();
    assert!(stamps[0] >= before);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    fake.stop().await;
}

#[tokio::test]
async fn directives_override_the_config_and_are_not_echoed() {
    let fake = start(fast()).await;
    let prompt = "Say something #fake:tokens=3\n#fake:output=alpha beta%0Agamma delta";
    let lines = lines(post(&fake, "/api/chat", &chat_body(prompt)).await).await;
    assert_eq!(chat_content(&lines), "alpha beta\ngamma");
    assert_eq!(lines.last().unwrap()["prompt_eval_count"], 2);

    let response = post(&fake, "/api/chat", &chat_body("#fake:nonsense=1")).await;
    assert_eq!(response.status(), 400);
    fake.stop().await;
}

#[tokio::test]
async fn injected_http_errors_carry_ollamas_error_body() {
    let fake = start(fast()).await;
    let response = post(
        &fake,
        "/api/chat",
        &chat_body("#fake:status=500\n#fake:message=boom, it broke"),
    )
    .await;
    assert_eq!(response.status(), 500);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error, json!({"error": "boom, it broke"}));

    fake.set_config(FakeConfig {
        failure: Failure::http(503),
        ..fast()
    });
    let response = post(&fake, "/api/chat", &chat_body("hi")).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], BUSY_MESSAGE);
    fake.stop().await;
}

#[tokio::test]
async fn fail_first_fails_the_same_prompt_then_succeeds() {
    let fake = start(FakeConfig {
        fail_first: 2,
        ..fast()
    })
    .await;
    for _ in 0..2 {
        let response = post(&fake, "/api/chat", &chat_body("retry me")).await;
        assert_eq!(response.status(), 503);
    }
    let other = post(&fake, "/api/chat", &chat_body("another prompt")).await;
    assert_eq!(other.status(), 503, "each prompt text has its own count");
    let response = post(&fake, "/api/chat", &chat_body("retry me")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines(response).await.len(), 13);
    fake.stop().await;
}

#[tokio::test]
async fn stop_ends_open_streams_and_closes_the_port() {
    let fake = start(fast()).await;
    let url = fake.url();
    let mut response = post(&fake, "/api/chat", &chat_body("#fake:stall-after=1")).await;
    response.chunk().await.unwrap().expect("first token");
    tokio::time::timeout(WAIT, fake.stop())
        .await
        .expect("stop does not wait for a stalled stream");
    let after = reqwest::get(format!("{url}/api/version")).await;
    assert!(
        after.is_err_and(|e| e.is_connect()),
        "the port refuses connections"
    );
}

#[tokio::test]
async fn stats_start_at_zero() {
    let fake = start(fast()).await;
    assert_eq!(fake.stats(), Stats::default());
    fake.stop().await;
}
