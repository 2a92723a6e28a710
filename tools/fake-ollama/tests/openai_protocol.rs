//! The fake speaks the OpenAI-compatible API as llama.cpp and vLLM do: stream shapes, usage,
//! timings, progress, reasoning, errors, chunking.

mod common;

use std::time::Duration;

use common::{completion_body, deltas, fast, get, parse_sse, post, sse, start};
use fake_ollama::{Failure, FakeConfig, Flavor, RequestRecord, RUNNER_ERROR_MESSAGE};
use serde_json::{json, Value};

fn vllm() -> FakeConfig {
    FakeConfig {
        openai_flavor: Flavor::Vllm,
        ..fast()
    }
}

fn with_usage(prompt: &str) -> Value {
    let mut body = completion_body(prompt);
    body["stream_options"] = json!({"include_usage": true});
    body
}

fn finish_reasons(events: &[Value]) -> Vec<(usize, String)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((i, e["choices"][0]["finish_reason"].as_str()?.to_string())))
        .collect()
}

#[tokio::test]
async fn llamacpp_streams_sse_chunks_with_usage_timings_and_done() {
    let fake = start(fast()).await;
    let response = post(
        &fake,
        "/v1/chat/completions",
        &with_usage("Write about cats"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("data: {") && text.ends_with("}\n\ndata: [DONE]\n\n"));
    let sse = parse_sse(text.as_bytes()).await;
    assert!(sse.done);
    // role, 12 tokens, finish, usage
    assert_eq!(sse.events.len(), 15);
    let id = sse.events[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for event in &sse.events {
        assert_eq!(event["object"], "chat.completion.chunk");
        assert_eq!(event["id"], id, "one id per reply");
        assert_eq!(event["model"], "llama3.2:1b");
        assert!(event["created"].is_u64());
    }
    assert_eq!(
        sse.events[0]["choices"][0],
        json!({"index": 0, "delta": {"role": "assistant", "content": null}, "finish_reason": null})
    );
    assert_eq!(deltas(&sse.events, "content"), fast().text());
    let finish = &sse.events[13];
    assert_eq!(
        finish["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "stop"})
    );
    let usage = &sse.events[14];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 12, "total_tokens": 15})
    );
    let timings = &usage["timings"];
    assert_eq!(timings["prompt_n"], 3);
    assert_eq!(timings["predicted_n"], 12);
    assert_eq!(timings["cache_n"], 0);
    for field in [
        "prompt_ms",
        "prompt_per_token_ms",
        "prompt_per_second",
        "predicted_ms",
        "predicted_per_token_ms",
        "predicted_per_second",
    ] {
        assert!(timings[field].is_f64(), "{field} in {timings}");
    }
    assert!(
        sse.events[..14].iter().all(|e| e.get("timings").is_none()),
        "timings only on the last chunk"
    );
    assert!(sse
        .events
        .iter()
        .all(|e| e.get("prompt_progress").is_none()));
    let recorded = fake.final_chunks();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0]["usage"], usage["usage"],
        "the ledger has the usage chunk"
    );
    assert_eq!(recorded[0]["id"], usage["id"]);
    let stats = fake.stats();
    assert_eq!((stats.openai_chat_requests, stats.completed), (1, 1));
    assert_eq!(
        fake.requests(),
        [RequestRecord {
            endpoint: "/v1/chat/completions".into(),
            model: "llama3.2:1b".into(),
            stream: true,
            include_usage: true,
            ..RequestRecord::default()
        }]
    );
    fake.stop().await;
}

#[tokio::test]
async fn vllm_ends_on_the_last_tokens_chunk_without_timings() {
    let fake = start(vllm()).await;
    let sse = sse(post(&fake, "/v1/chat/completions", &with_usage("hi")).await).await;
    assert!(sse.done);
    assert_eq!(sse.events.len(), 14, "role, 12 tokens, usage");
    assert_eq!(
        sse.events[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(finish_reasons(&sse.events), [(12, "stop".to_string())]);
    assert_eq!(
        sse.events[12]["choices"][0]["delta"]["content"],
        fast().tokens()[11]
    );
    assert_eq!(deltas(&sse.events, "content"), fast().text());
    assert_eq!(sse.events[13]["choices"], json!([]));
    assert_eq!(sse.events[13]["usage"]["completion_tokens"], 12);
    assert!(sse.events.iter().all(|e| e.get("timings").is_none()));
    assert!(sse
        .events
        .iter()
        .all(|e| e.get("system_fingerprint").is_none()));
    fake.stop().await;
}

#[tokio::test]
async fn without_include_usage_there_is_no_usage_chunk() {
    let fake = start(fast()).await;
    let sse = sse(post(&fake, "/v1/chat/completions", &completion_body("hi")).await).await;
    assert!(sse.done);
    assert_eq!(sse.events.len(), 14, "role, 12 tokens, finish");
    assert!(sse.events.iter().all(|e| e.get("usage").is_none()));
    let last = sse.events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        last["timings"]["predicted_n"], 12,
        "llama.cpp: timings on the last chunk"
    );
    fake.stop().await;
}

#[tokio::test]
async fn max_tokens_cuts_the_reply_with_finish_reason_length() {
    let fake = start(fast()).await;
    for (flavor, field) in [
        ("llamacpp", "max_tokens"),
        ("vllm", "max_completion_tokens"),
    ] {
        let mut body = with_usage(&format!("#fake:flavor={flavor}"));
        body[field] = json!(4);
        let sse = sse(post(&fake, "/v1/chat/completions", &body).await).await;
        assert_eq!(
            deltas(&sse.events, "content"),
            fast().tokens()[..4].concat()
        );
        let reasons = finish_reasons(&sse.events);
        assert_eq!(reasons.len(), 1, "{flavor}");
        assert_eq!(reasons[0].1, "length", "{flavor}");
        assert_eq!(sse.events.last().unwrap()["usage"]["completion_tokens"], 4);
    }
    let mut both = completion_body("hi");
    both["max_tokens"] = json!(9);
    both["max_completion_tokens"] = json!(2);
    let sse = sse(post(&fake, "/v1/chat/completions", &both).await).await;
    assert_eq!(
        deltas(&sse.events, "content"),
        fast().tokens()[..2].concat()
    );
    let asked: Vec<_> = fake.requests().iter().map(|r| r.max_tokens).collect();
    assert_eq!(asked, [Some(4), Some(4), Some(2)]);
    fake.stop().await;
}

#[tokio::test]
async fn reasoning_streams_first_in_the_flavors_field() {
    let fake = start(fast()).await;
    let cases = [
        ("#fake:think=3 #fake:tokens=2", "reasoning_content"),
        ("#fake:think=3 #fake:tokens=2 #fake:flavor=vllm", "reasoning"),
        (
            "#fake:think=3 #fake:tokens=2 #fake:flavor=vllm #fake:reasoning-field=reasoning_content",
            "reasoning_content",
        ),
    ];
    for (prompt, field) in cases {
        let sse = sse(post(&fake, "/v1/chat/completions", &with_usage(prompt)).await).await;
        let kinds: Vec<&str> = sse.events[1..]
            .iter()
            .filter_map(|e| {
                let delta = e["choices"].get(0)?["delta"].as_object()?;
                delta.keys().next().map(String::as_str)
            })
            .collect();
        assert_eq!(
            kinds,
            [field, field, field, "content", "content"],
            "{prompt}"
        );
        assert_eq!(
            deltas(&sse.events, field),
            FakeConfig {
                thinking_tokens: 3,
                ..fast()
            }
            .thinking()
            .concat()
        );
        assert_eq!(sse.events.last().unwrap()["usage"]["completion_tokens"], 5);
    }
    fake.stop().await;
}

#[tokio::test]
async fn prompt_progress_comes_only_when_asked_and_only_from_llamacpp() {
    let fake = start(fast()).await;
    let prompt =
        "one two three four five six seven eight nine ten eleven twelve #fake:prompt-eval-ms=100";
    let mut body = with_usage(prompt);
    body["return_progress"] = json!(true);
    let sse_events = sse(post(&fake, "/v1/chat/completions", &body).await)
        .await
        .events;
    let progress: Vec<&Value> = sse_events
        .iter()
        .filter_map(|e| e.get("prompt_progress"))
        .collect();
    assert_eq!(progress.len(), 10, "ten steps over the prompt evaluation");
    assert!(progress.iter().all(|p| p["total"] == 12 && p["cache"] == 0));
    let processed: Vec<u64> = progress
        .iter()
        .map(|p| p["processed"].as_u64().unwrap())
        .collect();
    assert!(processed.windows(2).all(|w| w[0] < w[1]), "{processed:?}");
    assert_eq!(processed.last(), Some(&12));
    let times: Vec<u64> = progress
        .iter()
        .map(|p| p["time_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(*times.last().unwrap() >= 100, "{times:?}");
    let first_progress = sse_events
        .iter()
        .position(|e| e.get("prompt_progress").is_some());
    let first_content = sse_events.iter().position(|e| {
        e["choices"][0]["delta"]
            .get("content")
            .is_some_and(Value::is_string)
    });
    assert_eq!(first_progress, Some(1), "right after the role chunk");
    assert!(first_content > Some(10), "progress before the first token");
    for event in sse_events
        .iter()
        .filter(|e| e.get("prompt_progress").is_some())
    {
        assert_eq!(event["choices"][0]["delta"], json!({}));
        assert_eq!(event["choices"][0]["finish_reason"], Value::Null);
    }
    let last = sse_events.last().unwrap();
    assert!(last["timings"]["prompt_ms"].as_f64().unwrap() >= 100.0);
    assert!(fake.requests()[0].return_progress);

    let unasked = sse(post(&fake, "/v1/chat/completions", &with_usage(prompt)).await).await;
    assert!(unasked
        .events
        .iter()
        .all(|e| e.get("prompt_progress").is_none()));
    let mut vllm_body = with_usage(&format!("{prompt} #fake:flavor=vllm"));
    vllm_body["return_progress"] = json!(true);
    let vllm = sse(post(&fake, "/v1/chat/completions", &vllm_body).await).await;
    assert!(vllm
        .events
        .iter()
        .all(|e| e.get("prompt_progress").is_none()));
    fake.stop().await;
}

#[tokio::test]
async fn timings_per_token_puts_timings_on_every_token() {
    let fake = start(fast()).await;
    let mut body = completion_body("hi");
    body["timings_per_token"] = json!(true);
    let events = sse(post(&fake, "/v1/chat/completions", &body).await)
        .await
        .events;
    let predicted: Vec<u64> = events[1..13]
        .iter()
        .map(|e| e["timings"]["predicted_n"].as_u64().unwrap())
        .collect();
    assert_eq!(predicted, (1..=12).collect::<Vec<_>>());
    fake.stop().await;
}

#[tokio::test]
async fn stream_false_answers_with_one_chat_completion() {
    let fake = start(fast()).await;
    let body = json!({"model": "qwen2.5:0.5b", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello #fake:think=2"}]},
    ]});
    let response = post(&fake, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "qwen2.5:0.5b");
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], fast().text());
    assert!(choice["message"]["reasoning_content"].is_string());
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 14, "total_tokens": 17})
    );
    assert_eq!(completion["timings"]["predicted_n"], 14);
    assert_eq!(fake.final_chunks()[0]["usage"], completion["usage"]);
    assert!(!fake.requests()[0].stream, "stream defaults to false");
    fake.stop().await;
}

#[tokio::test]
async fn models_lists_the_fakes_models() {
    let fake = start(fast()).await;
    let list: Value = get(&fake, "/v1/models").await.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    let ids: Vec<_> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["llama3.2:1b", "qwen2.5:0.5b"]);
    for model in data {
        assert_eq!(model["object"], "model");
        assert!(model["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(model["owned_by"], "llamacpp");
    }
    assert_eq!(get(&fake, "/health").await.status(), 200);
    fake.stop().await;
}

#[tokio::test]
async fn errors_come_in_openais_shape() {
    let fake = start(fast()).await;
    let mut unknown = completion_body("hi");
    unknown["model"] = json!("mistral:7b");
    let response = post(&fake, "/v1/chat/completions", &unknown).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "The model `mistral:7b` does not exist.",
                         "type": "not_found_error", "code": 404}})
    );

    let response = post(
        &fake,
        "/v1/chat/completions",
        &completion_body("#fake:status=429 #fake:retry-after=7\n#fake:message=slow down"),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["message"], "slow down");
    assert_eq!(error["error"]["code"], 429);
    assert_eq!(error["error"]["type"], "rate_limit_error");

    let response = post(
        &fake,
        "/v1/chat/completions",
        &completion_body("#fake:status=500"),
    )
    .await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");

    let response = post(
        &fake,
        "/v1/chat/completions",
        &completion_body("#fake:bogus"),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(fake.stats().http_errors, 4);
    fake.stop().await;
}

#[tokio::test]
async fn a_mid_stream_failure_is_an_error_event() {
    let fake = start(FakeConfig {
        failure: Failure::ErrorAfter { tokens: 5 },
        ..fast()
    })
    .await;
    let response = post(&fake, "/v1/chat/completions", &with_usage("hi")).await;
    assert_eq!(response.status(), 200);
    let llamacpp = sse(response).await;
    assert!(!llamacpp.done, "llama.cpp ends the stream after the error");
    assert_eq!(llamacpp.events.len(), 7, "role, 5 tokens, error");
    assert_eq!(
        llamacpp.events[6],
        json!({"error": {"message": RUNNER_ERROR_MESSAGE, "type": "server_error", "code": 500}})
    );
    let vllm = sse(post(
        &fake,
        "/v1/chat/completions",
        &with_usage("#fake:flavor=vllm"),
    )
    .await)
    .await;
    assert!(vllm.done, "vLLM still sends [DONE]");
    assert!(vllm.events.last().unwrap()["error"]["message"].is_string());
    let stats = fake.stats();
    assert_eq!((stats.stream_errors, stats.completed), (2, 0));
    fake.stop().await;
}

#[tokio::test]
async fn stall_after_keeps_the_stream_open_and_silent() {
    let fake = start(fast()).await;
    let mut response = post(
        &fake,
        "/v1/chat/completions",
        &completion_body("#fake:stall-after=3"),
    )
    .await;
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(300), response.chunk()).await {
            Ok(Ok(Some(bytes))) => received.extend_from_slice(&bytes),
            Ok(other) => panic!("stream ended instead of stalling: {other:?}"),
            Err(_) => break,
        }
    }
    let sse = parse_sse(&received).await;
    assert_eq!(sse.events.len(), 4, "role and three tokens, then nothing");
    assert!(!sse.done);
    drop(response);
    let stats = fake
        .wait_for_stats(Duration::from_secs(5), |s| s.disconnected == 1)
        .await;
    assert!(stats.is_ok(), "{stats:?}");
    fake.stop().await;
}

#[tokio::test]
async fn split_bytes_pieces_reassemble_into_the_same_events() {
    let fake = start(fast()).await;
    for split in [1, 2, 5] {
        let prompt = format!("#fake:split-bytes={split} #fake:think=2");
        let mut response = post(&fake, "/v1/chat/completions", &with_usage(&prompt)).await;
        let (mut bytes, mut pieces) = (Vec::new(), 0);
        while let Some(piece) = response.chunk().await.unwrap() {
            assert!(
                piece.len() <= split,
                "split {split}: a piece of {}",
                piece.len()
            );
            pieces += 1;
            bytes.extend_from_slice(&piece);
        }
        // Every frame is cut on its own, so its last piece may be shorter.
        assert!(
            pieces >= bytes.len().div_ceil(split),
            "split {split}: {pieces} pieces"
        );
        let sse = parse_sse(&bytes).await;
        assert!(sse.done);
        assert_eq!(deltas(&sse.events, "content"), fast().text());
        assert_eq!(sse.events.len(), 17, "role, 2 + 12 tokens, finish, usage");
    }
    fake.stop().await;
}

#[tokio::test]
async fn coalesced_events_are_still_valid_sse() {
    let fake = start(FakeConfig {
        coalesce_lines: true,
        ..fast()
    })
    .await;
    let mut response = post(&fake, "/v1/chat/completions", &with_usage("hi")).await;
    let mut bytes = Vec::new();
    let mut events_per_piece = Vec::new();
    while let Some(piece) = response.chunk().await.unwrap() {
        events_per_piece.push(piece.windows(6).filter(|w| w == b"data: ").count());
        bytes.extend_from_slice(&piece);
    }
    assert!(
        events_per_piece.iter().any(|n| *n >= 3),
        "{events_per_piece:?}"
    );
    let sse = parse_sse(&bytes).await;
    assert!(sse.done);
    assert_eq!(deltas(&sse.events, "content"), fast().text());
    fake.stop().await;
}
