//! A stand-in model server speaking Ollama's wire protocol and the OpenAI-compatible one (in
//! the dialects of llama.cpp's `llama-server` and vLLM), for tests, demos and benchmarks.
//!
//! No GPU and no model: replies are a configured text cut into word tokens, sent at a steady
//! pace as Ollama's NDJSON (`POST /api/chat`, `POST /api/generate`), with the same final
//! statistics, the same error bodies and the same habits (the response head leaves with the
//! first chunk, a mid-stream failure is one more `{"error": ...}` line under status 200).
//! `GET /api/tags`, `GET /api/ps`, `GET /api/version` and `POST /api/show` answer too.
//!
//! The same replies leave as server-sent events on `POST /v1/chat/completions` (see
//! [OpenAI-compatible API](#openai-compatible-api)), with `GET /v1/models` and `GET /health`.
//! [`FakeConfig::api`] (`--api ollama|openai|both`) decides which API answers; the other's
//! paths get a plain 404, like a server without those routes.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fake_ollama::{FakeConfig, FakeOllama};
//!
//! let fake = FakeOllama::start(FakeConfig { tokens_per_second: 1000.0, ..FakeConfig::default() }).await?;
//! // Point the client under test at fake.url(), then check what the fake saw and sent:
//! assert_eq!(fake.stats().completed, 0);
//! fake.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Per-request directives
//!
//! One running fake serves many tests and a browser demo: a prompt can override the
//! configuration for its own request with `#fake:key=value` directives, which are never
//! echoed. Values end at whitespace, except `output` and `message`, which take the rest of
//! the line and are percent-decoded (`%0A` is a newline, `%23` a `#`).
//!
//! | directive | effect |
//! |---|---|
//! | `#fake:tokens=N` | reply length in tokens ([`FakeConfig::length`]) |
//! | `#fake:rate=F` | tokens per second, 0 = unpaced |
//! | `#fake:load-ms=N` | model load delay before the first chunk |
//! | `#fake:prompt-eval-ms=N` | prompt evaluation delay before the first chunk |
//! | `#fake:think=N` | thinking tokens before the content (Ollama: only when the request's `think` allows it, see below) |
//! | `#fake:error-after=N` | an `{"error"}` line ends the stream after N chunks |
//! | `#fake:stall-after=N` | silence after N chunks, connection kept open |
//! | `#fake:status=CODE` | answer at once with this HTTP error (503 says "server busy") |
//! | `#fake:message=TEXT` | the error text for `status` |
//! | `#fake:failure=SPEC` | any [`Failure`] in its text form, e.g. `none` |
//! | `#fake:fail-first=N` | the first N requests with this prompt text get 503, later ones succeed |
//! | `#fake:output=TEXT` | the text to emit |
//! | `#fake:split-bytes=N` | lines (or SSE events) leave in N-byte pieces, one HTTP chunk each (0 = off) |
//! | `#fake:coalesce[=BOOL]` | three lines (or SSE events) per HTTP chunk |
//! | `#fake:stamp[=BOOL]` | every token is ` t<unix microseconds>` as it leaves |
//! | `#fake:ignore-num-predict[=BOOL]` | stream the whole reply whatever `num_predict` / `max_tokens` says |
//! | `#fake:token-bytes=N` | every content token at least N bytes (giant chunks) |
//! | `#fake:retry-after=N` | a `Retry-After: N` header on the `status` (or `fail-first`) answer |
//! | `#fake:flavor=NAME` | `/v1/chat/completions` dialect: `llamacpp` or `vllm` |
//! | `#fake:reasoning-field=F` | reasoning delta field: `reasoning_content` or `reasoning` |
//!
//! Example: `"Tell a story #fake:tokens=20 #fake:rate=50 #fake:error-after=5"`. An unknown key
//! or a bad value is answered with HTTP 400 and an `{"error"}` saying which. On the OpenAI API
//! directives are read from the last user message (string content, or its text parts).
//!
//! # Behaviour details
//!
//! - A reply has `thinking_tokens + length` tokens; `options.num_predict` below that cuts it
//!   (unless `ignore_num_predict`, a broken upstream),
//!   and the final chunk says `done_reason: "length"`, otherwise `"stop"`.
//! - Token `i` leaves at `start + (i + 1) / tokens_per_second` (no drift), where `start` is
//!   the end of the simulated load and prompt evaluation. With `coalesce_lines`, a frame
//!   leaves when its third line is due.
//! - Durations in the final chunk are measured; `prompt_eval_count` counts the words of the
//!   messages (at least 1); `eval_count` counts the chunks actually sent.
//! - `load_delay_ms` applies to every request (the fake never keeps a model "warm").
//! - An empty prompt (no messages) is answered like Ollama: one object, `done_reason: "load"`.
//! - `error-after=N` and `stall-after=N` with N beyond the reply's length fail in place of
//!   the final chunk.
//! - `fail_first` counts per exact prompt text (directives included), across all endpoints.
//!
//! # Ollama's thinking
//!
//! As in Ollama's `server/routes.go`: a model listed in [`FakeConfig::thinking_models`] has the
//! `thinking` capability (`/api/show` lists `["completion", "thinking"]`, others
//! `["completion"]`). On `/api/chat` and `/api/generate` the request's `think` (`true`, `false`,
//! or a level `"high"`/`"medium"`/`"low"`, which means on) decides:
//!
//! - `think: true` (or a level) for a model without the capability is HTTP 400
//!   `{"error": "\"MODEL\" does not support thinking"}`; `think: false` is accepted by any model.
//! - A thinking model thinks when `think` is absent (Ollama turns it on by default for them)
//!   and not when `think: false`. Other models never think.
//! - `thinking_tokens` / `#fake:think=N` is how many `message.thinking` chunks a reply that
//!   thinks has; a reply that does not think has none, whatever N says.
//!
//! # OpenAI-compatible API
//!
//! `POST /v1/chat/completions` reads `model`, `messages`, `stream` (default false),
//! `max_completion_tokens` (else `max_tokens`; it cuts the reply like `num_predict`),
//! `stream_options.include_usage`, and llama.cpp's `return_progress` and `timings_per_token`.
//! A streamed reply is `Content-Type: text/event-stream`, each event `data: <json>\n\n`:
//!
//! 1. the role chunk, `delta: {"role": "assistant", "content": null}` (vLLM: `""`);
//! 2. llama.cpp with `return_progress`: `prompt_progress` chunks (`{total, cache, processed,
//!    time_ms}`, empty delta) in up to 10 even steps while the prompt is evaluated
//!    (`prompt_eval_ms`; `total` is the prompt's token count) — the head leaves before them;
//! 3. one chunk per token: `delta: {"<reasoning field>": ...}` for thinking tokens (all of
//!    `thinking_tokens`; this API has no `think` switch), then `delta: {"content": ...}`;
//! 4. the finish reason, `stop` or `length`: llama.cpp sends it on a chunk of its own with an
//!    empty delta, vLLM on the last token's chunk;
//! 5. with `include_usage`, a chunk with `"choices": []` and `usage {prompt_tokens,
//!    completion_tokens, total_tokens}`;
//! 6. llama.cpp only: `timings` on the last of these chunks (every token chunk too with
//!    `timings_per_token`), as llama.cpp's server does;
//! 7. `data: [DONE]`.
//!
//! Failures keep their meaning. Errors before the stream are `{"error": {"message", "type",
//! "code"}}` with the HTTP status as `code` (unknown model: 404 "The model `X` does not
//! exist."); `retry_after` adds a `Retry-After` header to injected ones. `error-after=N` sends
//! `data: {"error": {"message", "type": "server_error", "code": 500}}` after N tokens, then
//! llama.cpp ends the stream and vLLM sends `[DONE]` first. `stall-after`, `split-bytes` and
//! `coalesce` work on events as they do on NDJSON lines. Without `stream` the answer is one
//! `chat.completion` object (`choices[0].message`, `usage`, llama.cpp's `timings`).

mod config;
mod directives;
mod frames;
mod ledger;
mod length_mix;
mod models;
mod openai;
mod reply;
mod routes;
mod wire;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{
    Api, Failure, FakeConfig, Flavor, ReasoningField, BUSY_MESSAGE, DEFAULT_OUTPUT,
    RUNNER_ERROR_MESSAGE, THINKING_TEXT,
};
pub use directives::DIRECTIVES_HELP;
pub use ledger::{RequestRecord, Stats};
pub use length_mix::{LengthMix, Lengths};
pub use routes::OLLAMA_VERSION;

use routes::Fake;

/// How long [`FakeOllama::stop`] waits for open connections before it drops them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running fake Ollama server. Dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct FakeOllama {
    addr: SocketAddr,
    fake: Arc<Fake>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl FakeOllama {
    /// Starts a fake on `127.0.0.1` at a free port.
    pub async fn start(config: FakeConfig) -> io::Result<FakeOllama> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a fake on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: FakeConfig) -> io::Result<FakeOllama> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Small writes must leave at once, or `split_bytes` pieces would be merged by Nagle.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let fake = Arc::new(Fake::new(config));
        let router = routes::router(fake.clone());
        let stopped = fake.shutdown.clone().cancelled_owned();
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped);
        let server = tokio::spawn(async move { server.await });
        Ok(FakeOllama {
            addr,
            fake,
            server: Some(server),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`, to give the client under test.
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the fake has served so far.
    pub fn stats(&self) -> Stats {
        self.fake.ledger.stats()
    }

    /// Every final (`"done": true`) chunk or object the fake sent, in order, so a test can
    /// compare what the client stored with what the fake reported. On the OpenAI API it is
    /// the last JSON event before `[DONE]` (the usage chunk when asked for), or the one
    /// `chat.completion` object.
    pub fn final_chunks(&self) -> Vec<Value> {
        self.fake.ledger.final_chunks()
    }

    /// Every chat, generate and chat-completions request whose body parsed, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.fake.ledger.requests()
    }

    /// Waits until the stats satisfy `condition`, for at most `timeout`. Disconnects are
    /// noticed asynchronously, so a test that drops a stream waits here rather than sleeping.
    /// `Err` carries the stats at the timeout.
    pub async fn wait_for_stats(
        &self,
        timeout: Duration,
        condition: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, Stats> {
        self.fake.ledger.wait_for(timeout, condition).await
    }

    /// The configuration new requests start from.
    pub fn config(&self) -> FakeConfig {
        self.fake.config()
    }

    /// Changes the configuration for requests that arrive from now on.
    pub fn set_config(&self, config: FakeConfig) {
        *self
            .fake
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// Stops accepting connections at once, ends open streams (stalled ones too) and waits
    /// for the server to finish. Afterwards the port refuses connections.
    pub async fn stop(mut self) {
        self.fake.shutdown.cancel();
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
                server.abort();
            }
        }
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.fake.shutdown.cancel();
    }
}
