//! The OpenAI-compatible client over real HTTP against a scripted server: recorded llama.cpp
//! and vLLM replies written one byte per chunk, error bodies, `Retry-After`, stalls, deadlines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use server::backend::{
    Backend, BackendError, ChatEvent, ChatRequest, ChatStream, ClientOptions, Fault, OpenAiClient,
    ReplyStats,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "sk-test-0123456789";

/// What the scripted server answers to a chat request.
#[derive(Clone)]
enum Answer {
    /// 200 with this SSE body, one byte per HTTP chunk (each flushed), then the body's end.
    Sse(String),
    /// As `Sse`, then the connection is dropped without the body's end.
    SseThenDrop(String),
    /// As `Sse`, then nothing more, the connection held open.
    SseThenSilence(String),
    /// 200, then one event every `every` forever.
    Trickle { every: Duration },
    /// A status with headers and a body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Reads the request and never answers.
    Silence,
    /// A 500 whose body never ends (a chunk of 64 KB after another, as fast as it goes).
    EndlessError,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A model server that speaks just enough HTTP/1.1: `GET …/models` lists `models` owned by
/// `owned_by`; a POST gets `answer`.
struct Scripted {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    async fn start(owned_by: &'static str, answer: Answer) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let log = Arc::clone(&log);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, owned_by, answer, log).await;
                });
            }
        });
        Scripted { url, received }
    }

    fn chats(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect()
    }
}

async fn serve(
    mut socket: TcpStream,
    owned_by: &str,
    answer: Answer,
    log: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let request = read_request(&mut socket).await?;
    let is_chat = request.method == "POST";
    log.lock().unwrap().push(request);
    if !is_chat {
        let models = serde_json::json!({
            "object": "list",
            "data": [
                {"id": "qwen3-0.6b", "object": "model", "owned_by": owned_by},
                {"id": "llama-3.2-1b", "object": "model", "owned_by": owned_by},
            ]
        });
        return write_status(&mut socket, 200, &[], &models.to_string()).await;
    }
    match answer {
        Answer::Sse(body) => {
            write_sse_head(&mut socket).await?;
            write_bytewise(&mut socket, &body).await?;
            socket.write_all(b"0\r\n\r\n").await?;
            socket.flush().await
        }
        Answer::SseThenDrop(body) => {
            write_sse_head(&mut socket).await?;
            write_bytewise(&mut socket, &body).await
        }
        Answer::SseThenSilence(body) => {
            write_sse_head(&mut socket).await?;
            write_bytewise(&mut socket, &body).await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        Answer::Trickle { every } => {
            write_sse_head(&mut socket).await?;
            loop {
                write_chunk(&mut socket, &content("x")).await?;
                tokio::time::sleep(every).await;
            }
        }
        Answer::Status {
            status,
            headers,
            body,
        } => write_status(&mut socket, status, &headers, &body).await,
        Answer::Silence => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        Answer::EndlessError => {
            socket
                .write_all(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let piece = "x".repeat(64 * 1024);
            loop {
                write_chunk(&mut socket, &piece).await?;
            }
        }
    }
}

async fn read_request(socket: &mut TcpStream) -> std::io::Result<Received> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    while !buffer.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buffer).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let mut length = 0;
    let mut authorization = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    socket.read_exact(&mut body).await?;
    Ok(Received {
        method,
        path,
        authorization,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    })
}

async fn write_sse_head(socket: &mut TcpStream) -> std::io::Result<()> {
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await?;
    socket.flush().await
}

async fn write_chunk(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    socket
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await?;
    socket.flush().await
}

/// The body one byte per HTTP chunk, each flushed on its own: SSE lines and multi-byte
/// characters reach the client split at every byte.
async fn write_bytewise(socket: &mut TcpStream, body: &str) -> std::io::Result<()> {
    for byte in body.as_bytes() {
        socket.write_all(b"1\r\n").await?;
        socket.write_all(&[*byte]).await?;
        socket.write_all(b"\r\n").await?;
        socket.flush().await?;
    }
    Ok(())
}

async fn write_status(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.flush().await
}

fn content(text: &str) -> String {
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// A llama-server reply as it streams with `return_progress` and `include_usage`: prompt
/// progress, reasoning, an answer with multi-byte characters, timings, usage, `[DONE]`.
const LLAMA_CPP_REPLY: &str = concat!(
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"system_fingerprint\":\"b6500-e4912fc\",\"object\":\"chat.completion.chunk\",\"prompt_progress\":{\"total\":52,\"cache\":12,\"processed\":30,\"time_ms\":41}}\n\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\",\"prompt_progress\":{\"total\":52,\"cache\":12,\"processed\":52,\"time_ms\":77}}\n\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"reasoning_content\":\"The sea… \"}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\"}\n\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Grüße\"}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\"}\n\n",
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\" vom Meer 🌊\"}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\"}\n\n",
    "data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\",\"timings\":{\"cache_n\":12,\"prompt_n\":40,\"prompt_ms\":77.25,\"prompt_per_second\":517.8,\"predicted_n\":5,\"predicted_ms\":61.5,\"predicted_per_second\":81.3}}\n\n",
    "data: {\"choices\":[],\"created\":1758113912,\"id\":\"chatcmpl-a\",\"model\":\"qwen3-0.6b\",\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":5,\"prompt_tokens\":52,\"total_tokens\":57}}\n\n",
    "data: [DONE]\n\n",
);

/// A vLLM reply with a reasoning parser and `include_usage`: `reasoning`, a cut by
/// `max_tokens`, the usage chunk with empty choices, `[DONE]`.
const VLLM_REPLY: &str = concat!(
    "data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-0.6b\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-0.6b\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"Short.\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-0.6b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Ja\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-0.6b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"pan 日本\"},\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"qwen3-0.6b\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"total_tokens\":15,\"completion_tokens\":4}}\n\n",
    "data: [DONE]\n\n",
);

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
    }
}

fn client(server: &Scripted) -> OpenAiClient {
    OpenAiClient::new(&server.url, options(), Some(KEY.into())).expect("valid URL")
}

fn ask(max_tokens: Option<u32>) -> ChatRequest {
    ChatRequest {
        model: "qwen3-0.6b".into(),
        prompt: "Write about the sea".into(),
        num_predict: max_tokens,
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

async fn chat_error(client: &OpenAiClient) -> BackendError {
    client
        .chat_stream(&ask(None))
        .await
        .expect_err("the request fails")
}

fn answer_status(status: u16, headers: Vec<(&'static str, String)>, body: &str) -> Answer {
    Answer::Status {
        status,
        headers,
        body: body.into(),
    }
}

#[tokio::test]
async fn a_llama_cpp_reply_split_at_every_byte_gives_progress_reasoning_tokens_and_statistics() {
    let server = Scripted::start("llamacpp", Answer::Sse(LLAMA_CPP_REPLY.into())).await;
    let client = client(&server);
    let events = drain(client.chat_stream(&ask(Some(64))).await.unwrap()).await;
    assert_eq!(
        events,
        [
            Ok(ChatEvent::PromptProgress {
                processed: 30,
                total: 52
            }),
            Ok(ChatEvent::PromptProgress {
                processed: 52,
                total: 52
            }),
            Ok(ChatEvent::Thinking("The sea… ".into())),
            Ok(ChatEvent::Token("Grüße".into())),
            Ok(ChatEvent::Token(" vom Meer 🌊".into())),
            Ok(ChatEvent::Done(ReplyStats {
                done_reason: Some("stop".into()),
                input_tokens: Some(52),
                output_tokens: Some(5),
                load_duration_ns: None,
                prompt_eval_duration_ns: Some(77_250_000),
                eval_duration_ns: Some(61_500_000),
                total_duration_ns: None,
            })),
        ]
    );
    assert!(client.is_llama_cpp(), "its models list said llamacpp");

    let chats = server.chats();
    assert_eq!(chats.len(), 1);
    let chat = &chats[0];
    assert_eq!(chat.path, "/v1/chat/completions");
    assert_eq!(
        chat.authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        chat.body,
        serde_json::json!({
            "model": "qwen3-0.6b",
            "messages": [{"role": "user", "content": "Write about the sea"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 64,
            "return_progress": true,
        })
    );
}

#[tokio::test]
async fn a_vllm_reply_split_at_every_byte_gives_reasoning_tokens_and_usage_and_no_invented_numbers()
{
    let server = Scripted::start("vllm", Answer::Sse(VLLM_REPLY.into())).await;
    let client = OpenAiClient::new(&format!("{}/v1", server.url), options(), None).unwrap();
    let events = drain(client.chat_stream(&ask(Some(4))).await.unwrap()).await;
    assert_eq!(
        events,
        [
            Ok(ChatEvent::Thinking("Short.".into())),
            Ok(ChatEvent::Token("Ja".into())),
            Ok(ChatEvent::Token("pan 日本".into())),
            Ok(ChatEvent::Done(ReplyStats {
                done_reason: Some("length".into()),
                input_tokens: Some(11),
                output_tokens: Some(4),
                ..ReplyStats::default()
            })),
        ]
    );
    let chat = &server.chats()[0];
    assert_eq!(chat.path, "/v1/chat/completions");
    assert_eq!(chat.authorization, None, "no key, no header");
    assert!(
        chat.body.get("return_progress").is_none(),
        "only llama.cpp is sent its own field: {}",
        chat.body
    );
    assert_eq!(chat.body["max_tokens"], 4);
}

#[tokio::test]
async fn a_reply_without_done_is_complete_after_its_finish_reason_and_cut_without_one() {
    let finished = LLAMA_CPP_REPLY.replace("data: [DONE]\n\n", "");
    let server = Scripted::start("llamacpp", Answer::Sse(finished)).await;
    let events = drain(client(&server).chat_stream(&ask(None)).await.unwrap()).await;
    match events.last() {
        Some(Ok(ChatEvent::Done(stats))) => {
            assert_eq!(stats.done_reason.as_deref(), Some("stop"));
            assert_eq!(stats.output_tokens, Some(5));
        }
        other => panic!("expected Done, got {other:?}"),
    }

    let cut = format!("{}{}", content("Half"), content(" a"));
    let server = Scripted::start("llamacpp", Answer::Sse(cut.clone())).await;
    let events = drain(client(&server).chat_stream(&ask(None)).await.unwrap()).await;
    assert_eq!(
        events[..2],
        [
            Ok(ChatEvent::Token("Half".into())),
            Ok(ChatEvent::Token(" a".into()))
        ]
    );
    match &events[2] {
        Err(error @ BackendError::Transport(message)) => {
            assert!(
                message.contains("before the reply was complete"),
                "{message}"
            );
            assert_eq!(error.fault(), Fault::ConnectionBroken);
        }
        other => panic!("expected a broken reply, got {other:?}"),
    }
    assert_eq!(events.len(), 3);

    let server = Scripted::start("llamacpp", Answer::SseThenDrop(cut)).await;
    let events = drain(client(&server).chat_stream(&ask(None)).await.unwrap()).await;
    assert!(
        matches!(events.last(), Some(Err(BackendError::Transport(_)))),
        "a dropped connection is a broken one: {events:?}"
    );
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_the_reply_with_the_servers_message() {
    let body = format!(
        "{}data: {{\"error\":{{\"code\":500,\"message\":\"CUDA error: out of memory\",\"type\":\"server_error\"}}}}\n\n{}",
        content("Hi"),
        content("never")
    );
    let server = Scripted::start("llamacpp", Answer::Sse(body)).await;
    let events = drain(client(&server).chat_stream(&ask(None)).await.unwrap()).await;
    assert_eq!(
        events,
        [
            Ok(ChatEvent::Token("Hi".into())),
            Err(BackendError::Stream("CUDA error: out of memory".into())),
        ]
    );
    let error = events[1].clone().unwrap_err();
    assert_eq!(error.fault(), Fault::MidStream);
    assert_eq!(error.class(), app::types::Failure::BrokeOff);
}

#[tokio::test]
async fn error_bodies_of_every_shape_carry_the_servers_message() {
    let cases = [
        (
            400,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
            "the request exceeds the available context size",
            Fault::BadRequest,
        ),
        (
            500,
            r#"{"error":"llama runner crashed"}"#,
            "llama runner crashed",
            Fault::ServerError,
        ),
        (
            422,
            r#"{"detail":[{"loc":["body","messages"],"msg":"Field required","type":"missing"}]}"#,
            "Field required",
            Fault::BadRequest,
        ),
        (
            502,
            "Bad gateway, try later",
            "Bad gateway, try later",
            Fault::ServerError,
        ),
        (
            503,
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
            "Loading model",
            Fault::Busy,
        ),
    ];
    for (status, body, message, fault) in cases {
        let server = Scripted::start("llamacpp", answer_status(status, vec![], body)).await;
        let error = chat_error(&client(&server)).await;
        assert_eq!(
            error,
            BackendError::Http {
                status,
                message: message.into(),
                retry_after: None
            },
            "{body}"
        );
        assert_eq!(error.fault(), fault, "{body}");
        assert!(
            !error.to_string().contains(&server.url),
            "public: no address"
        );
    }
}

#[tokio::test]
async fn rate_limits_and_busy_servers_say_how_long_to_wait() {
    let body = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#;
    let server = Scripted::start(
        "vllm",
        answer_status(429, vec![("Retry-After", "7".into())], body),
    )
    .await;
    let error = chat_error(&client(&server)).await;
    assert_eq!(
        error,
        BackendError::Http {
            status: 429,
            message: "Rate limit reached for requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.fault(), Fault::RateLimited);
    assert!(error.is_transient());
    assert!(!error.handling().spends_attempt);

    let in_a_minute =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    let server = Scripted::start(
        "vllm",
        answer_status(
            503,
            vec![("Retry-After", in_a_minute)],
            r#"{"error":"busy"}"#,
        ),
    )
    .await;
    let error = chat_error(&client(&server)).await;
    let wait = error.retry_after().expect("a date is a wait too");
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(error.fault(), Fault::Busy);

    let server = Scripted::start(
        "vllm",
        answer_status(400, vec![("Retry-After", "7".into())], r#"{"error":"no"}"#),
    )
    .await;
    assert_eq!(
        chat_error(&client(&server)).await.retry_after(),
        None,
        "only a 429 or 503 asks for a wait"
    );
}

#[tokio::test]
async fn an_unknown_model_is_a_class_of_its_own_and_a_wrong_url_is_not() {
    let vllm_404 = r#"{"error":{"message":"The model `qwen3-0.6b` does not exist.","type":"NotFoundError","param":null,"code":404}}"#;
    let server = Scripted::start("vllm", answer_status(404, vec![], vllm_404)).await;
    let error = chat_error(&client(&server)).await;
    assert_eq!(
        error,
        BackendError::ModelNotInstalled {
            model: "qwen3-0.6b".into()
        }
    );
    assert_eq!(error.fault(), Fault::ModelMissing);

    let server = Scripted::start("vllm", answer_status(404, vec![], "")).await;
    match chat_error(&client(&server)).await {
        BackendError::Http {
            status: 404,
            message,
            ..
        } => assert!(message.contains("OpenAI-compatible"), "{message}"),
        other => panic!("expected a plain 404, got {other:?}"),
    }
    let llama_404 = r#"{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}"#;
    let server = Scripted::start("llamacpp", answer_status(404, vec![], llama_404)).await;
    assert_eq!(
        chat_error(&client(&server)).await,
        BackendError::Http {
            status: 404,
            message: "File Not Found".into(),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn silence_is_a_stall_before_the_head_and_in_the_body() {
    let stall = Duration::from_millis(300);
    let quick = ClientOptions {
        stall_timeout: stall,
        ..options()
    };
    let server = Scripted::start("llamacpp", Answer::Silence).await;
    let client = OpenAiClient::new(&server.url, quick.clone(), None).unwrap();
    assert_eq!(
        client.chat_stream(&ask(None)).await.unwrap_err(),
        BackendError::Stalled { after: stall }
    );

    let server = Scripted::start(
        "llamacpp",
        Answer::SseThenSilence(format!("{}{}", content("a"), content("b"))),
    )
    .await;
    let client = OpenAiClient::new(&server.url, quick, None).unwrap();
    let events = drain(client.chat_stream(&ask(None)).await.unwrap()).await;
    assert_eq!(
        events,
        [
            Ok(ChatEvent::Token("a".into())),
            Ok(ChatEvent::Token("b".into())),
            Err(BackendError::Stalled { after: stall }),
        ]
    );
}

#[tokio::test]
async fn a_reply_that_outlives_the_deadline_fails() {
    let deadline = Duration::from_millis(500);
    let server = Scripted::start(
        "llamacpp",
        Answer::Trickle {
            every: Duration::from_millis(20),
        },
    )
    .await;
    let client = OpenAiClient::new(
        &server.url,
        ClientOptions {
            deadline,
            ..options()
        },
        None,
    )
    .unwrap();
    let events = drain(client.chat_stream(&ask(None)).await.unwrap()).await;
    assert!(events.len() > 2, "tokens came first: {events:?}");
    assert_eq!(
        events.last(),
        Some(&Err(BackendError::DeadlineExceeded { after: deadline }))
    );
}

#[tokio::test]
async fn the_backend_lists_models_checks_and_never_asks_to_think() {
    let server = Scripted::start("vllm", Answer::Silence).await;
    let backend = Backend::OpenAi(client(&server));
    assert_eq!(backend.kind(), app::types::BackendKind::OpenAi);
    assert_eq!(backend.url(), format!("{}/v1", server.url));
    assert_eq!(
        backend.models().await.unwrap(),
        ["qwen3-0.6b", "llama-3.2-1b"]
    );
    assert_eq!(backend.check().await.unwrap(), None);
    assert_eq!(backend.loaded_models().await.unwrap(), None);
    assert!(!backend.can_think("qwen3-0.6b").await.unwrap());
    let received = server.received.lock().unwrap().clone();
    assert!(
        received.iter().all(|r| r.path == "/v1/models"),
        "{received:?}"
    );
    assert!(received
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {KEY}"))));
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = OpenAiClient::new(&url, options(), Some(KEY.into())).unwrap();
    let expected = BackendError::Unreachable {
        url: format!("{url}/v1"),
    };
    assert_eq!(chat_error(&client).await, expected);
    assert_eq!(client.models().await.unwrap_err(), expected);
    assert_eq!(expected.fault(), Fault::Unreachable);
    assert!(expected.handling().marks_down);
}

/// Against the fake model server's OpenAI-compatible API, in both of its dialects.
mod against_the_fake {
    use fake_ollama::{Api, FakeConfig, FakeOllama, Flavor, RUNNER_ERROR_MESSAGE};

    use super::*;

    fn fake_config(flavor: Flavor) -> FakeConfig {
        FakeConfig {
            tokens_per_second: 5000.0,
            length: 30,
            thinking_tokens: 3,
            prompt_eval_ms: 40,
            api: Api::Openai,
            openai_flavor: flavor,
            ..FakeConfig::default()
        }
    }

    fn ask_fake(prompt: &str) -> ChatRequest {
        ChatRequest {
            model: "llama3.2:1b".into(),
            prompt: prompt.into(),
            num_predict: None,
            think: false,
        }
    }

    fn text_of(events: &[Result<ChatEvent, BackendError>], thinking: bool) -> String {
        events
            .iter()
            .filter_map(|event| match event {
                Ok(ChatEvent::Token(text)) if !thinking => Some(text.as_str()),
                Ok(ChatEvent::Thinking(text)) if thinking => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn done_of(events: &[Result<ChatEvent, BackendError>]) -> ReplyStats {
        match events.last() {
            Some(Ok(ChatEvent::Done(stats))) => stats.clone(),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_llama_cpp_fake_split_anywhere_gives_progress_reasoning_the_text_and_timings() {
        let config = fake_config(Flavor::Llamacpp);
        let fake = FakeOllama::start(config.clone()).await.unwrap();
        let client = OpenAiClient::new(&fake.url(), options(), None).unwrap();
        for prompt in [
            "#fake:split-bytes=1",
            "#fake:split-bytes=2",
            "#fake:split-bytes=5",
            "#fake:coalesce",
            "#fake:coalesce #fake:split-bytes=3",
        ] {
            let events = drain(client.chat_stream(&ask_fake(prompt)).await.unwrap()).await;
            assert!(
                matches!(events[0], Ok(ChatEvent::PromptProgress { .. })),
                "{prompt}: {:?}",
                events[0]
            );
            let Some(Ok(ChatEvent::PromptProgress { processed, total })) = events
                .iter()
                .rfind(|e| matches!(e, Ok(ChatEvent::PromptProgress { .. })))
            else {
                unreachable!()
            };
            assert_eq!(processed, total, "{prompt}: the prompt is read whole");
            assert_eq!(text_of(&events, false), config.text(), "{prompt}");
            assert!(!text_of(&events, true).is_empty(), "{prompt}");
            let done = done_of(&events);
            assert_eq!(done.done_reason.as_deref(), Some("stop"), "{prompt}");
            assert_eq!(done.output_tokens, Some(33), "{prompt}");
            assert!(done.input_tokens.is_some_and(|n| n > 0), "{prompt}");
            assert!(done.prompt_eval_duration_ns.is_some(), "{prompt}: timings");
            assert!(done.eval_duration_ns.is_some(), "{prompt}: timings");
            assert_eq!(done.load_duration_ns, None, "{prompt}: never invented");
        }
        let requests = fake.requests();
        assert_eq!(requests.len(), 5);
        assert!(requests
            .iter()
            .all(|r| r.return_progress && r.include_usage && r.stream));
        fake.stop().await;
    }

    #[tokio::test]
    async fn a_vllm_fake_gets_no_llama_cpp_field_and_reports_no_timings() {
        let config = fake_config(Flavor::Vllm);
        let fake = FakeOllama::start(config.clone()).await.unwrap();
        let client = OpenAiClient::new(&format!("{}/v1", fake.url()), options(), None).unwrap();
        let request = ChatRequest {
            num_predict: Some(10),
            ..ask_fake("#fake:split-bytes=1")
        };
        let events = drain(client.chat_stream(&request).await.unwrap()).await;
        assert!(!events
            .iter()
            .any(|e| matches!(e, Ok(ChatEvent::PromptProgress { .. }))));
        assert!(!text_of(&events, true).is_empty());
        let done = done_of(&events);
        assert_eq!(done.done_reason.as_deref(), Some("length"));
        assert_eq!(done.output_tokens, Some(10));
        assert_eq!(done.eval_duration_ns, None, "vLLM has no timings");
        let requests = fake.requests();
        assert!(!requests[0].return_progress);
        assert_eq!(requests[0].max_tokens, Some(10));
        fake.stop().await;
    }

    #[tokio::test]
    async fn dropping_the_stream_hangs_up_on_the_server() {
        let fake = FakeOllama::start(FakeConfig {
            tokens_per_second: 200.0,
            length: 10_000,
            thinking_tokens: 0,
            ..fake_config(Flavor::Llamacpp)
        })
        .await
        .unwrap();
        let client = OpenAiClient::new(&fake.url(), options(), None).unwrap();
        let mut stream = client.chat_stream(&ask_fake("hi")).await.unwrap();
        let mut tokens = 0;
        while tokens < 3 {
            match stream.next().await.expect("an event").expect("no error") {
                ChatEvent::Token(_) => tokens += 1,
                ChatEvent::PromptProgress { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(stream);
        let seen = fake.wait_for_stats(WAIT, |s| s.disconnected == 1).await;
        assert!(seen.is_ok(), "the fake saw the client leave: {seen:?}");
        assert_eq!(fake.stats().completed, 0);
        fake.stop().await;
    }

    #[tokio::test]
    async fn the_fakes_failures_keep_their_meaning() {
        let fake = FakeOllama::start(fake_config(Flavor::Llamacpp))
            .await
            .unwrap();
        let client = OpenAiClient::new(&fake.url(), options(), None).unwrap();

        let events = drain(
            client
                .chat_stream(&ask_fake("#fake:error-after=4 #fake:split-bytes=1"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            events.last(),
            Some(&Err(BackendError::Stream(RUNNER_ERROR_MESSAGE.into())))
        );

        let error = client
            .chat_stream(&ask_fake("#fake:status=429 #fake:retry-after=3"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackendError::Http { status: 429, retry_after: Some(wait), .. } if wait == Duration::from_secs(3)),
            "{error:?}"
        );
        assert_eq!(error.fault(), Fault::RateLimited);

        let unknown = ChatRequest {
            model: "mistral:7b".into(),
            ..ask_fake("hi")
        };
        assert_eq!(
            client.chat_stream(&unknown).await.unwrap_err(),
            BackendError::ModelNotInstalled {
                model: "mistral:7b".into()
            }
        );
        assert_eq!(
            client.models().await.unwrap(),
            ["llama3.2:1b", "qwen2.5:0.5b"]
        );
        fake.stop().await;
    }
}

#[tokio::test]
async fn a_redirect_is_the_servers_error_and_nothing_is_sent_where_it_points() {
    let elsewhere = Scripted::start("llamacpp", Answer::Sse(LLAMA_CPP_REPLY.into())).await;
    let target = format!("{}/v1/chat/completions", elsewhere.url);
    let server = Scripted::start(
        "llamacpp",
        answer_status(307, vec![("Location", target)], ""),
    )
    .await;
    let error = chat_error(&client(&server)).await;
    assert!(
        matches!(error, BackendError::Http { status: 307, .. }),
        "{error:?}"
    );
    assert!(elsewhere.chats().is_empty(), "the prompt went nowhere else");
}

#[tokio::test]
async fn a_server_that_quotes_the_api_key_back_has_it_hidden_from_the_message() {
    let body =
        format!(r#"{{"error":{{"message":"Upstream refused Bearer {KEY} for this model"}}}}"#);
    for status in [400, 500, 502] {
        let server = Scripted::start("llamacpp", answer_status(status, vec![], &body)).await;
        let error = chat_error(&client(&server)).await;
        let message = error.to_string();
        assert!(!message.contains(KEY), "{message}");
        assert!(
            message.contains("Upstream refused Bearer *** for this model"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_as_far_as_a_message_needs() {
    let server = Scripted::start("llamacpp", Answer::EndlessError).await;
    let started = std::time::Instant::now();
    let error = chat_error(&client(&server)).await;
    // Not the 5 s the body may take: it stops reading at its bound.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let BackendError::Http {
        status: 500,
        message,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert!(
        message.len() <= 200 && message.starts_with("xxx"),
        "{message}"
    );
}

#[test]
fn a_url_with_a_user_and_password_and_an_api_key_is_refused_at_start() {
    for url in [
        "http://me:s3cret@127.0.0.1:8080",
        "http://:s3cret@127.0.0.1:8080",
    ] {
        let error = OpenAiClient::new(url, options(), Some(KEY.into())).expect_err(url);
        let message = error.to_string();
        assert!(
            message.contains("both a user and password in its URL and an API key"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[tokio::test]
async fn an_error_event_that_quotes_the_api_key_has_it_hidden() {
    let sse = format!(
        "event: error\ndata: {{\"error\":{{\"message\":\"token {KEY} is over its quota\"}}}}\n\n"
    );
    let server = Scripted::start("llamacpp", Answer::Sse(sse)).await;
    let stream = client(&server).chat_stream(&ask(None)).await.unwrap();
    let events = drain(stream).await;
    let Some(Err(BackendError::Stream(message))) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(message, "token *** is over its quota");
}

#[tokio::test]
async fn a_web_page_in_place_of_a_reply_says_the_url_is_not_a_model_servers() {
    let page = "<!doctype html><html><body>Welcome to nginx!</body></html>";
    let headers = vec![("Content-Type", "text/html; charset=utf-8".to_string())];
    let server = Scripted::start("llamacpp", answer_status(200, headers, page)).await;
    let error = chat_error(&client(&server)).await;
    assert_eq!(
        error.to_string(),
        BackendError::Protocol(
            "it answered with a web page, not a reply: is the configured URL a model server's?"
                .into()
        )
        .to_string()
    );
}
