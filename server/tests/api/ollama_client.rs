//! The Ollama client against a fake Ollama over real HTTP: streams, chunking, errors, timeouts.

use std::time::Duration;

use fake_ollama::{Failure, FakeConfig, FakeOllama, BUSY_MESSAGE, RUNNER_ERROR_MESSAGE};
use futures::StreamExt;
use server::backend::{
    BackendError, ChatEvent, ChatRequest, ChatStream, ClientOptions, OllamaClient, ReplyStats,
};

const WAIT: Duration = Duration::from_secs(5);

fn fast() -> FakeConfig {
    FakeConfig {
        tokens_per_second: 5000.0,
        length: 40,
        ..FakeConfig::default()
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
    }
}

fn client(fake: &FakeOllama) -> OllamaClient {
    OllamaClient::new(&fake.url(), options()).expect("valid URL")
}

fn ask(prompt: &str) -> ChatRequest {
    ChatRequest {
        model: "llama3.2:1b".into(),
        prompt: prompt.into(),
        num_predict: None,
        think: false,
    }
}

/// Everything a stream yields until it ends.
async fn drain(mut stream: ChatStream) -> Vec<Result<ChatEvent, BackendError>> {
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the stream keeps moving")
    {
        events.push(event);
    }
    events
}

fn text_of(events: &[Result<ChatEvent, BackendError>]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(ChatEvent::Token(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn done_of(events: &[Result<ChatEvent, BackendError>]) -> Option<&ReplyStats> {
    match events.last() {
        Some(Ok(ChatEvent::Done(stats))) => Some(stats),
        _ => None,
    }
}

fn stats_from_chunk(chunk: &serde_json::Value) -> ReplyStats {
    // Ollama leaves out a zero; the client reports every one of these as measured.
    let number = |field: &str| Some(chunk[field].as_u64().unwrap_or(0));
    ReplyStats {
        done_reason: chunk["done_reason"].as_str().map(str::to_string),
        total_duration_ns: number("total_duration"),
        load_duration_ns: number("load_duration"),
        input_tokens: number("prompt_eval_count"),
        prompt_eval_duration_ns: number("prompt_eval_duration"),
        output_tokens: number("eval_count"),
        eval_duration_ns: number("eval_duration"),
    }
}

async fn chat_error(client: &OllamaClient, request: &ChatRequest) -> BackendError {
    client
        .chat_stream(request)
        .await
        .expect_err("the request fails")
}

#[tokio::test]
async fn tokens_concatenate_to_the_reply_and_done_carries_ollamas_statistics() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let stream = client(&fake)
        .chat_stream(&ask("Write about the sea"))
        .await
        .unwrap();
    let events = drain(stream).await;
    assert_eq!(text_of(&events), fast().text());
    assert_eq!(events.len(), 41, "40 tokens, then Done, then the end");
    let done = done_of(&events).expect("the stream ends with Done");
    assert_eq!(done, &stats_from_chunk(&fake.final_chunks()[0]));
    assert_eq!(done.done_reason.as_deref(), Some("stop"));
    assert_eq!(done.output_tokens, Some(40));
    assert_eq!(done.input_tokens, Some(4));
    assert!(done.eval_duration_ns > Some(0) && done.total_duration_ns >= done.eval_duration_ns);
    fake.stop().await;
}

#[tokio::test]
async fn lines_split_anywhere_or_coalesced_decode_to_the_same_reply() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let client = client(&fake);
    let mut prompts: Vec<String> = (1..=7).map(|n| format!("#fake:split-bytes={n}")).collect();
    prompts.push("#fake:coalesce".into());
    prompts.push("#fake:coalesce #fake:split-bytes=5".into());
    for prompt in prompts {
        let events = drain(client.chat_stream(&ask(&prompt)).await.unwrap()).await;
        assert_eq!(text_of(&events), fast().text(), "{prompt}");
        assert_eq!(
            done_of(&events).and_then(|d| d.output_tokens),
            Some(40),
            "{prompt}"
        );
    }
    assert_eq!(fake.stats().completed, 9);
    fake.stop().await;
}

#[tokio::test]
async fn thinking_arrives_before_the_answer() {
    // A thinking model thinks when `think` is not sent, as Ollama's do.
    let fake = FakeOllama::start(FakeConfig {
        thinking_models: vec!["llama3.2:1b".into()],
        ..fast()
    })
    .await
    .unwrap();
    let stream = client(&fake)
        .chat_stream(&ask("#fake:think=3 #fake:tokens=2"))
        .await
        .unwrap();
    let events = drain(stream).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| match event {
            Ok(ChatEvent::Thinking(_)) => "thinking",
            Ok(ChatEvent::Token(_)) => "token",
            Ok(ChatEvent::PromptProgress { .. }) => "prompt progress",
            Ok(ChatEvent::Done(_)) => "done",
            Err(_) => "error",
        })
        .collect();
    assert_eq!(
        kinds,
        ["thinking", "thinking", "thinking", "token", "token", "done"]
    );
    fake.stop().await;
}

#[tokio::test]
async fn num_predict_is_sent_and_a_cut_reply_says_length() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let request = ChatRequest {
        num_predict: Some(7),
        ..ask("hi")
    };
    let events = drain(client(&fake).chat_stream(&request).await.unwrap()).await;
    let done = done_of(&events).unwrap();
    assert_eq!(done.done_reason.as_deref(), Some("length"));
    assert_eq!(done.output_tokens, Some(7));
    assert_eq!(text_of(&events), fast().tokens()[..7].concat());
    fake.stop().await;
}

#[tokio::test]
async fn an_error_line_mid_stream_ends_the_stream_with_ollamas_message() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let stream = client(&fake)
        .chat_stream(&ask("#fake:error-after=5"))
        .await
        .unwrap();
    let events = drain(stream).await;
    assert_eq!(events.len(), 6);
    assert_eq!(text_of(&events), fast().tokens()[..5].concat());
    let error = events.last().unwrap().clone().unwrap_err();
    assert_eq!(error, BackendError::Stream(RUNNER_ERROR_MESSAGE.into()));
    assert!(!error.is_transient());
    assert_eq!(error.class(), app::types::Failure::BrokeOff);
    fake.stop().await;
}

#[tokio::test]
async fn a_model_that_is_not_installed_is_a_class_of_its_own() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let request = ChatRequest {
        model: "mistral:7b".into(),
        ..ask("hi")
    };
    let error = chat_error(&client(&fake), &request).await;
    assert_eq!(
        error,
        BackendError::ModelNotInstalled {
            model: "mistral:7b".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "model mistral:7b is not installed on the model server"
    );
    assert!(!error.is_transient());
    assert_eq!(
        error.class(),
        app::types::Failure::ModelMissing,
        "the card tells the author how to install it"
    );
    fake.stop().await;
}

#[tokio::test]
async fn http_errors_carry_ollamas_message() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let client = client(&fake);
    let error = chat_error(
        &client,
        &ask("#fake:status=500\n#fake:message=llama runner process has terminated"),
    )
    .await;
    assert_eq!(
        error,
        BackendError::Http {
            status: 500,
            message: "llama runner process has terminated".into()
        }
    );
    assert!(error.is_transient());

    let busy = chat_error(&client, &ask("#fake:status=503")).await;
    assert_eq!(
        busy,
        BackendError::Http {
            status: 503,
            message: BUSY_MESSAGE.into()
        }
    );
    assert!(busy.is_transient());

    let bad = chat_error(&client, &ask("#fake:status=400\n#fake:message=bad")).await;
    assert!(!bad.is_transient());
    fake.stop().await;
}

#[tokio::test]
async fn a_stream_that_goes_silent_fails_as_stalled_and_hangs_up() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let stall = Duration::from_millis(300);
    let client = OllamaClient::new(
        &fake.url(),
        ClientOptions {
            stall_timeout: stall,
            ..options()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let events = drain(
        client
            .chat_stream(&ask("#fake:stall-after=2"))
            .await
            .unwrap(),
    )
    .await;
    assert!(started.elapsed() >= stall);
    assert_eq!(text_of(&events), fast().tokens()[..2].concat());
    let error = events.last().unwrap().clone().unwrap_err();
    assert_eq!(error, BackendError::Stalled { after: stall });
    assert!(error.is_transient());
    let seen = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
    assert!(
        seen.is_ok(),
        "the client hung up on the stalled stream: {seen:?}"
    );
    fake.stop().await;
}

#[tokio::test]
async fn silence_before_the_first_token_is_bounded_by_the_stall_timeout_only() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let client = OllamaClient::new(
        &fake.url(),
        ClientOptions {
            stall_timeout: Duration::from_millis(250),
            ..options()
        },
    )
    .unwrap();
    let error = chat_error(&client, &ask("#fake:load-ms=3000")).await;
    assert_eq!(
        error,
        BackendError::Stalled {
            after: Duration::from_millis(250)
        }
    );

    // A slow model load within the stall timeout is fine: no short read timeout interferes.
    let patient = OllamaClient::new(
        &fake.url(),
        ClientOptions {
            stall_timeout: Duration::from_secs(3),
            ..options()
        },
    )
    .unwrap();
    let events = drain(
        patient
            .chat_stream(&ask("#fake:load-ms=600 #fake:tokens=3"))
            .await
            .unwrap(),
    )
    .await;
    let done = done_of(&events).expect("the reply completes");
    assert!(done.load_duration_ns >= Some(600_000_000));
    fake.stop().await;
}

#[tokio::test]
async fn a_reply_that_outlives_the_deadline_fails() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let deadline = Duration::from_millis(400);
    let client = OllamaClient::new(
        &fake.url(),
        ClientOptions {
            deadline,
            ..options()
        },
    )
    .unwrap();
    let events = drain(
        client
            .chat_stream(&ask("#fake:rate=50 #fake:tokens=1000"))
            .await
            .unwrap(),
    )
    .await;
    assert!(!text_of(&events).is_empty(), "some tokens came first");
    let error = events.last().unwrap().clone().unwrap_err();
    assert_eq!(error, BackendError::DeadlineExceeded { after: deadline });
    assert!(!error.is_transient());

    let error = chat_error(&client, &ask("#fake:load-ms=3000")).await;
    assert_eq!(
        error,
        BackendError::DeadlineExceeded { after: deadline },
        "the deadline also bounds the wait for the first token"
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = OllamaClient::new(&url, options()).unwrap();
    let expected = BackendError::Unreachable { url: url.clone() };
    assert_eq!(chat_error(&client, &ask("hi")).await, expected);
    assert_eq!(client.tags().await.unwrap_err(), expected);
    assert_eq!(client.version().await.unwrap_err(), expected);
    assert_eq!(
        expected.to_string(),
        "the model server is not reachable",
        "public: the address is for the log only"
    );
    assert!(expected.is_transient());
}

#[tokio::test]
async fn tags_and_version_describe_the_installation() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let client = client(&fake);
    assert_eq!(client.version().await.unwrap(), "0.12.0");
    let models = client.tags().await.unwrap();
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["llama3.2:1b", "qwen2.5:0.5b"]);
    assert_eq!(models[0].parameter_size.as_deref(), Some("1.2B"));
    assert_eq!(models[0].quantization_level.as_deref(), Some("Q8_0"));
    assert_eq!(models[0].family.as_deref(), Some("llama"));
    assert!(models[0].size > 0);
    fake.stop().await;
}

#[tokio::test]
async fn dropping_the_stream_hangs_up_on_ollama() {
    let fake = FakeOllama::start(FakeConfig {
        tokens_per_second: 200.0,
        length: 10_000,
        ..fast()
    })
    .await
    .unwrap();
    let mut stream = client(&fake).chat_stream(&ask("hi")).await.unwrap();
    for _ in 0..3 {
        let event = stream.next().await.expect("an event").expect("a token");
        assert!(matches!(event, ChatEvent::Token(_)));
    }
    drop(stream);
    let seen = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
    assert!(seen.is_ok(), "the fake saw the client leave: {seen:?}");
    assert_eq!(fake.stats().completed, 0);
    fake.stop().await;
}

#[tokio::test]
async fn a_url_without_ollama_behind_it_is_not_mistaken_for_a_missing_model() {
    let fake = FakeOllama::start(fast()).await.unwrap();
    let client = OllamaClient::new(&format!("{}/not-here", fake.url()), options()).unwrap();
    match chat_error(&client, &ask("hi")).await {
        BackendError::Http {
            status: 404,
            message,
        } => {
            assert!(message.contains("an Ollama server"), "{message}")
        }
        other => panic!("expected a plain 404, got {other:?}"),
    }
    fake.stop().await;
}

#[tokio::test]
async fn unusable_urls_are_rejected_up_front() {
    for url in ["https://gpu:11434", "ftp://gpu", "http://"] {
        let error = OllamaClient::new(url, options()).unwrap_err();
        assert!(
            matches!(error, BackendError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }
}

#[tokio::test]
async fn transient_failures_clear_on_retry() {
    let fake = FakeOllama::start(FakeConfig {
        failure: Failure::None,
        fail_first: 2,
        ..fast()
    })
    .await
    .unwrap();
    let client = client(&fake);
    for _ in 0..2 {
        let error = chat_error(&client, &ask("again")).await;
        assert!(error.is_transient(), "{error:?}");
    }
    let events = drain(client.chat_stream(&ask("again")).await.unwrap()).await;
    assert!(done_of(&events).is_some());
    fake.stop().await;
}
