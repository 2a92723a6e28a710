//! One reply to a generation request: its steps, its pacing, and how Ollama's NDJSON leaves
//! the fake (the OpenAI-compatible stream is in `openai::stream`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::{Failure, FakeConfig, RUNNER_ERROR_MESSAGE};
use crate::frames::FrameBody;
use crate::ledger::{DisconnectGuard, Ledger};
use crate::wire::{now_rfc3339, ChatChunk, ErrorBody, GenerateChunk, Metrics, ResponseMessage};

/// Which endpoint the reply answers; it decides the shape of every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Generate,
    /// `POST /v1/chat/completions`, with what the request asked of the stream.
    OpenAiChat(OpenAiOptions),
}

/// The stream options of an OpenAI-compatible request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OpenAiOptions {
    /// `stream_options.include_usage`: a last chunk with `usage` and no choices.
    pub include_usage: bool,
    /// llama.cpp's `return_progress`: `prompt_progress` chunks during prompt evaluation.
    pub return_progress: bool,
    /// llama.cpp's `timings_per_token`: `timings` on every chunk.
    pub timings_per_token: bool,
}

/// A request that passed validation, with its configuration after directives.
#[derive(Debug)]
pub(crate) struct Reply {
    pub endpoint: Endpoint,
    pub model: String,
    pub config: FakeConfig,
    pub num_predict: Option<i64>,
    pub prompt_eval_count: u64,
    pub started: Instant,
    pub stream: bool,
}

/// Measured before the first token: what the final chunk reports as load and prompt evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WarmUp {
    pub load: Duration,
    pub prompt_eval: Duration,
    pub eval_start: Instant,
}

/// How a stream or a collected reply ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The final chunk or the error line went out.
    Finished,
    /// The client went away.
    Gone,
    /// The fake is shutting down.
    Shutdown,
}

#[derive(Debug)]
pub(crate) enum Step {
    Thinking(String),
    Content(String),
    Done(&'static str),
    Error(String),
    Stall,
}

/// Lines grouped into one body frame when `coalesce_lines` is on.
const COALESCED_LINES: usize = 3;
/// Frames the reply task may run ahead of the client; Ollama, too, blocks on a slow reader.
const FRAMES_IN_FLIGHT: usize = 8;

impl Reply {
    /// Waits out the simulated model load and, unless the stream reports its progress itself,
    /// the prompt evaluation; `None` on shutdown.
    pub(crate) async fn warm_up(&self, shutdown: &CancellationToken) -> Option<WarmUp> {
        let load_start = Instant::now();
        sleep_unless_shutdown(self.config.load_delay_ms, shutdown).await?;
        let prompt_start = Instant::now();
        if !self.streams_progress() {
            sleep_unless_shutdown(self.config.prompt_eval_ms, shutdown).await?;
        }
        let eval_start = Instant::now();
        Some(WarmUp {
            load: prompt_start - load_start,
            prompt_eval: eval_start - prompt_start,
            eval_start,
        })
    }

    /// Whether the prompt evaluation happens in the stream, reported as `prompt_progress`.
    pub(crate) fn streams_progress(&self) -> bool {
        self.stream
            && self.config.openai_flavor == crate::config::Flavor::Llamacpp
            && matches!(self.endpoint, Endpoint::OpenAiChat(o) if o.return_progress)
    }

    pub(crate) fn steps(&self) -> Vec<Step> {
        let mut steps: Vec<Step> = self
            .config
            .thinking()
            .into_iter()
            .map(Step::Thinking)
            .chain(self.config.tokens().into_iter().map(Step::Content))
            .collect();
        let cap = self
            .num_predict
            .filter(|_| !self.config.ignore_num_predict)
            .and_then(|n| usize::try_from(n).ok());
        let done_reason = match cap {
            Some(cap) if cap < steps.len() => {
                steps.truncate(cap);
                "length"
            }
            _ => "stop",
        };
        match self.config.failure {
            Failure::ErrorAfter { tokens } => {
                steps.truncate(tokens as usize);
                steps.push(Step::Error(RUNNER_ERROR_MESSAGE.to_string()));
            }
            Failure::StallAfter { tokens } => {
                steps.truncate(tokens as usize);
                steps.push(Step::Stall);
            }
            Failure::None | Failure::HttpStatus { .. } => steps.push(Step::Done(done_reason)),
        }
        steps
    }

    /// Streams the reply (NDJSON, or SSE on the OpenAI API) from a task of its own; the
    /// returned body is the response.
    pub(crate) fn stream(
        self,
        warm_up: WarmUp,
        ledger: Arc<Ledger>,
        guard: DisconnectGuard,
        shutdown: CancellationToken,
    ) -> Body {
        let (frames, receiver) = mpsc::channel(FRAMES_IN_FLIGHT);
        let body = FrameBody::new(receiver, self.config.split_bytes);
        tokio::spawn(async move {
            let ending = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Ending::Shutdown,
                _ = frames.closed() => Ending::Gone,
                ending = self.write_body(warm_up, &frames, &ledger) => ending,
            };
            if ending != Ending::Gone {
                guard.finish();
            }
        });
        Body::from_stream(body)
    }

    async fn write_body(
        &self,
        warm_up: WarmUp,
        frames: &mpsc::Sender<Bytes>,
        ledger: &Ledger,
    ) -> Ending {
        let mut framer = Framer::new(frames, self.config.coalesce_lines);
        match self.endpoint {
            Endpoint::OpenAiChat(options) => {
                self.send_events(options, warm_up, &mut framer, ledger)
                    .await
            }
            Endpoint::Chat | Endpoint::Generate => {
                self.send_lines(warm_up, &mut framer, ledger).await
            }
        }
    }

    async fn send_lines(
        &self,
        warm_up: WarmUp,
        framer: &mut Framer<'_>,
        ledger: &Ledger,
    ) -> Ending {
        let mut pace = Pace::new(self.config.tokens_per_second, warm_up.eval_start);
        for (sent, step) in self.steps().into_iter().enumerate() {
            let mut line = Vec::new();
            match step {
                Step::Thinking(text) => {
                    pace.tick().await;
                    push_line(&mut line, &self.chunk(String::new(), Some(text)));
                }
                Step::Content(text) => {
                    pace.tick().await;
                    push_line(&mut line, &self.chunk(self.stamped(text), None));
                }
                Step::Done(done_reason) => {
                    let last = self.final_chunk(done_reason, sent as u64, &warm_up);
                    push_line(&mut line, &last);
                    // Recorded before it leaves, so a test that has seen it can also read it here.
                    ledger.completed(serde_json::to_value(&last).unwrap_or(Value::Null));
                    return framer.finish(line).await;
                }
                Step::Error(error) => {
                    push_line(&mut line, &ErrorBody { error });
                    ledger.stream_error();
                    return framer.finish(line).await;
                }
                Step::Stall => return framer.stall().await,
            }
            if framer.push(line).await == Ending::Gone {
                return Ending::Gone;
            }
        }
        Ending::Finished
    }

    /// The token's text, or a departure stamp with `stamp_tokens`.
    pub(crate) fn stamped(&self, text: String) -> String {
        if self.config.stamp_tokens {
            format!(" t{}", unix_micros())
        } else {
            text
        }
    }

    /// Generates the whole reply at the configured pace for `"stream": false`: the one JSON
    /// object to answer with, or the error to answer with HTTP 500. A stall never returns.
    pub(crate) async fn collect(&self, warm_up: WarmUp, ledger: &Ledger) -> Result<Chunk, String> {
        let mut pace = Pace::new(self.config.tokens_per_second, warm_up.eval_start);
        let (mut content, mut thinking) = (String::new(), String::new());
        let mut sent = 0;
        for step in self.steps() {
            match step {
                Step::Thinking(text) => {
                    pace.tick().await;
                    thinking.push_str(&text);
                    sent += 1;
                }
                Step::Content(text) => {
                    pace.tick().await;
                    content.push_str(&self.stamped(text));
                    sent += 1;
                }
                Step::Done(done_reason) => {
                    let mut last = self.final_chunk(done_reason, sent, &warm_up);
                    let thinking = (!thinking.is_empty()).then_some(thinking);
                    match &mut last {
                        Chunk::Chat(chunk) => {
                            chunk.message.content = content;
                            chunk.message.thinking = thinking;
                        }
                        Chunk::Generate(chunk) => {
                            chunk.response = content;
                            chunk.thinking = thinking;
                        }
                    }
                    ledger.completed(serde_json::to_value(&last).unwrap_or(Value::Null));
                    return Ok(last);
                }
                Step::Error(error) => {
                    ledger.stream_error();
                    return Err(error);
                }
                Step::Stall => std::future::pending::<()>().await,
            }
        }
        Err("reply ended without a final chunk".to_string())
    }

    fn chunk(&self, content: String, thinking: Option<String>) -> Chunk {
        let (model, created_at) = (self.model.clone(), now_rfc3339());
        match self.endpoint {
            Endpoint::Chat | Endpoint::OpenAiChat(_) => Chunk::Chat(ChatChunk {
                model,
                created_at,
                message: ResponseMessage {
                    role: "assistant",
                    content,
                    thinking,
                },
                done: false,
                done_reason: None,
                metrics: None,
            }),
            Endpoint::Generate => Chunk::Generate(GenerateChunk {
                model,
                created_at,
                response: content,
                thinking,
                done: false,
                done_reason: None,
                context: None,
                metrics: None,
            }),
        }
    }

    fn final_chunk(&self, done_reason: &str, eval_count: u64, warm_up: &WarmUp) -> Chunk {
        let metrics = Metrics {
            total_duration: nanos(self.started.elapsed()),
            load_duration: nanos(warm_up.load),
            prompt_eval_count: self.prompt_eval_count,
            prompt_eval_duration: nanos(warm_up.prompt_eval),
            eval_count,
            eval_duration: nanos(warm_up.eval_start.elapsed()),
        };
        let mut chunk = self.chunk(String::new(), None);
        match &mut chunk {
            Chunk::Chat(chunk) => {
                chunk.done = true;
                chunk.done_reason = Some(done_reason.to_string());
                chunk.metrics = Some(metrics);
            }
            Chunk::Generate(chunk) => {
                chunk.done = true;
                chunk.done_reason = Some(done_reason.to_string());
                chunk.context = Some(context(self.prompt_eval_count + eval_count));
                chunk.metrics = Some(metrics);
            }
        }
        chunk
    }

    /// The answer to an empty prompt: Ollama loads the model and says so with `done_reason: load`.
    pub(crate) fn load_only(&self, ledger: &Ledger) -> Chunk {
        let mut chunk = self.chunk(String::new(), None);
        match &mut chunk {
            Chunk::Chat(chunk) => {
                chunk.done = true;
                chunk.done_reason = Some("load".to_string());
            }
            Chunk::Generate(chunk) => {
                chunk.done = true;
                chunk.done_reason = Some("load".to_string());
            }
        }
        ledger.completed(serde_json::to_value(&chunk).unwrap_or(Value::Null));
        chunk
    }
}

/// One chat or generate chunk, serialised in Ollama's field order.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Chunk {
    Chat(ChatChunk),
    Generate(GenerateChunk),
}

/// Groups lines (or SSE events) into body frames: one per frame, or three with
/// `coalesce_lines`; a frame leaves when its last item is due.
pub(crate) struct Framer<'a> {
    frames: &'a mpsc::Sender<Bytes>,
    frame: Vec<u8>,
    per_frame: usize,
    in_frame: usize,
}

impl<'a> Framer<'a> {
    pub(crate) fn new(frames: &'a mpsc::Sender<Bytes>, coalesce: bool) -> Self {
        Framer {
            frames,
            frame: Vec::new(),
            per_frame: if coalesce { COALESCED_LINES } else { 1 },
            in_frame: 0,
        }
    }

    /// Adds one item; sends the frame if it is full. `Gone` if the client left.
    pub(crate) async fn push(&mut self, item: Vec<u8>) -> Ending {
        self.frame.extend_from_slice(&item);
        self.in_frame += 1;
        if self.in_frame < self.per_frame {
            return Ending::Finished;
        }
        self.in_frame = 0;
        send(self.frames, std::mem::take(&mut self.frame)).await
    }

    /// Adds the last item and sends whatever the frame holds.
    pub(crate) async fn finish(&mut self, item: Vec<u8>) -> Ending {
        self.frame.extend_from_slice(&item);
        self.in_frame = 0;
        send(self.frames, std::mem::take(&mut self.frame)).await
    }

    /// Sends what the frame holds, then never returns: the connection stays open and silent
    /// (the caller's select ends this when the client leaves or the fake stops).
    pub(crate) async fn stall(&mut self) -> Ending {
        if !self.frame.is_empty()
            && send(self.frames, std::mem::take(&mut self.frame)).await == Ending::Gone
        {
            return Ending::Gone;
        }
        std::future::pending().await
    }
}

/// Token departures on a fixed schedule: token `i` leaves at `start + (i + 1) / rate`, so a
/// slow moment is caught up rather than pushing every later token back.
pub(crate) struct Pace(Option<Interval>);

impl Pace {
    pub(crate) fn new(tokens_per_second: f64, start: Instant) -> Self {
        let period = (tokens_per_second.is_finite() && tokens_per_second > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / tokens_per_second))
            .filter(|period| !period.is_zero());
        Pace(period.map(|period| {
            let mut interval = tokio::time::interval_at(start + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
            interval
        }))
    }

    pub(crate) async fn tick(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
            }
            None => tokio::task::yield_now().await,
        }
    }
}

pub(crate) async fn sleep_unless_shutdown(ms: u64, shutdown: &CancellationToken) -> Option<()> {
    if ms == 0 {
        return Some(());
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => Some(()),
        _ = shutdown.cancelled() => None,
    }
}

fn push_line(frame: &mut Vec<u8>, line: &impl Serialize) {
    // Serialising these plain structs cannot fail.
    if serde_json::to_writer(&mut *frame, line).is_ok() {
        frame.push(b'\n');
    }
}

async fn send(frames: &mpsc::Sender<Bytes>, frame: Vec<u8>) -> Ending {
    match frames.send(Bytes::from(frame)).await {
        Ok(()) => Ending::Finished,
        Err(_) => Ending::Gone,
    }
}

pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Stand-in token ids for `/api/generate`'s `context`.
fn context(len: u64) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 1 + i.wrapping_mul(7919) % 128_000)
        .collect()
}
