//! How a reply leaves on `/v1/chat/completions`: server-sent `chat.completion.chunk` events in
//! the configured flavor's habits, or one `chat.completion` object.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::wire::{Chunk, ChunkChoice, ErrorEnvelope, ErrorObject, PromptProgress, Timings, Usage};
use crate::config::{Flavor, RUNNER_ERROR_MESSAGE};
use crate::ledger::Ledger;
use crate::reply::{Ending, Framer, OpenAiOptions, Pace, Reply, Step, WarmUp};

/// `prompt_progress` chunks a prompt evaluation is reported in (fewer for a shorter prompt).
const PROGRESS_STEPS: u64 = 10;
/// What llama.cpp's `system_fingerprint` looks like (`b<build>-<commit>`).
const LLAMACPP_FINGERPRINT: &str = "b6500-fake";
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// The parts every chunk of one reply shares.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    flavor: Flavor,
    reasoning_field: &'static str,
}

impl Chunks {
    fn new(reply: &Reply) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Chunks {
            id: format!("chatcmpl-fake{:x}", now.as_nanos()),
            created: now.as_secs(),
            model: reply.model.clone(),
            flavor: reply.config.openai_flavor,
            reasoning_field: reply.config.reasoning_field().name(),
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> Chunk {
        Chunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: (self.flavor == Flavor::Llamacpp).then_some(LLAMACPP_FINGERPRINT),
            choices,
            usage: None,
            timings: None,
            prompt_progress: None,
        }
    }

    fn delta(&self, delta: Map<String, Value>) -> Chunk {
        self.chunk(vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: None,
        }])
    }

    /// The first chunk: the role, with `content` null (llama.cpp) or empty (vLLM).
    fn role(&self) -> Chunk {
        let content = match self.flavor {
            Flavor::Llamacpp => Value::Null,
            Flavor::Vllm => json!(""),
        };
        self.delta(delta([("role", json!("assistant")), ("content", content)]))
    }

    fn text(&self, field: &str, text: String) -> Chunk {
        self.delta(delta([(field, Value::String(text))]))
    }

    fn progress(&self, progress: PromptProgress) -> Chunk {
        let mut chunk = self.delta(Map::new());
        chunk.prompt_progress = Some(progress);
        chunk
    }

    fn finish(&self, finish_reason: &'static str) -> Chunk {
        self.chunk(vec![ChunkChoice {
            index: 0,
            delta: Map::new(),
            finish_reason: Some(finish_reason),
        }])
    }

    fn usage(&self, usage: Usage) -> Chunk {
        let mut chunk = self.chunk(Vec::new());
        chunk.usage = Some(usage);
        chunk
    }
}

fn delta<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// One server-sent event: `data: <json>` and a blank line.
fn event(data: &impl Serialize) -> Vec<u8> {
    let mut bytes = b"data: ".to_vec();
    // Serialising these plain structs cannot fail.
    if serde_json::to_writer(&mut bytes, data).is_ok() {
        bytes.extend_from_slice(b"\n\n");
    }
    bytes
}

fn stream_error(message: &str) -> ErrorEnvelope {
    ErrorEnvelope {
        error: ErrorObject {
            message: message.to_string(),
            kind: "server_error",
            code: 500,
        },
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `n` per `ms`, as llama.cpp computes it, with 0 instead of infinity for an instant.
fn rates(n: u64, ms: f64) -> (f64, f64) {
    if n == 0 || ms <= 0.0 {
        return (0.0, 0.0);
    }
    (ms / n as f64, 1000.0 * n as f64 / ms)
}

impl Reply {
    fn timings(&self, predicted_n: u64, warm_up: &WarmUp) -> Timings {
        let prompt_ms = millis(warm_up.prompt_eval);
        let predicted_ms = millis(warm_up.eval_start.elapsed());
        let (prompt_per_token_ms, prompt_per_second) = rates(self.prompt_eval_count, prompt_ms);
        let (predicted_per_token_ms, predicted_per_second) = rates(predicted_n, predicted_ms);
        Timings {
            cache_n: 0,
            prompt_n: self.prompt_eval_count,
            prompt_ms,
            prompt_per_token_ms,
            prompt_per_second,
            predicted_n,
            predicted_ms,
            predicted_per_token_ms,
            predicted_per_second,
        }
    }

    fn usage(&self, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens: self.prompt_eval_count,
            completion_tokens,
            total_tokens: self.prompt_eval_count + completion_tokens,
        }
    }

    /// Streams the reply as server-sent events: the role, the prompt progress (llama.cpp, when
    /// asked), one chunk per token, the finish reason, the usage (when asked), `[DONE]`.
    pub(crate) async fn send_events(
        &self,
        options: OpenAiOptions,
        warm_up: WarmUp,
        framer: &mut Framer<'_>,
        ledger: &Ledger,
    ) -> Ending {
        let chunks = Chunks::new(self);
        let llamacpp = chunks.flavor == Flavor::Llamacpp;
        if framer.push(event(&chunks.role())).await == Ending::Gone {
            return Ending::Gone;
        }
        let warm_up = if self.streams_progress() {
            match self.report_progress(warm_up, &chunks, framer).await {
                Ok(warm_up) => warm_up,
                Err(ending) => return ending,
            }
        } else {
            warm_up
        };
        let steps = self.steps();
        let last_delta = steps
            .iter()
            .rposition(|step| matches!(step, Step::Thinking(_) | Step::Content(_)));
        let done_reason = steps.iter().find_map(|step| match step {
            Step::Done(reason) => Some(*reason),
            _ => None,
        });
        let mut pace = Pace::new(self.config.tokens_per_second, warm_up.eval_start);
        let mut sent = 0;
        for (i, step) in steps.into_iter().enumerate() {
            let mut chunk = match step {
                Step::Thinking(text) => {
                    pace.tick().await;
                    chunks.text(chunks.reasoning_field, text)
                }
                Step::Content(text) => {
                    pace.tick().await;
                    chunks.text("content", self.stamped(text))
                }
                Step::Done(reason) => {
                    let mut last = Vec::new();
                    // vLLM ends on the last token's chunk; llama.cpp sends a chunk of its own.
                    if llamacpp || last_delta.is_none() {
                        last.push(chunks.finish(reason));
                    }
                    if options.include_usage {
                        last.push(chunks.usage(self.usage(sent)));
                    }
                    if let (true, Some(final_chunk)) = (llamacpp, last.last_mut()) {
                        final_chunk.timings = Some(self.timings(sent, &warm_up));
                    }
                    if let Some(final_chunk) = last.last() {
                        // Recorded before it leaves, so a test that has seen it can read it here.
                        ledger.completed(serde_json::to_value(final_chunk).unwrap_or(Value::Null));
                    }
                    let mut bytes: Vec<u8> = last.iter().flat_map(event).collect();
                    bytes.extend_from_slice(DONE_EVENT);
                    return framer.finish(bytes).await;
                }
                Step::Error(message) => {
                    ledger.stream_error();
                    let mut bytes = event(&stream_error(&message));
                    // vLLM still ends its stream with [DONE]; llama.cpp just stops.
                    if !llamacpp {
                        bytes.extend_from_slice(DONE_EVENT);
                    }
                    return framer.finish(bytes).await;
                }
                Step::Stall => return framer.stall().await,
            };
            sent += 1;
            if !llamacpp && Some(i) == last_delta {
                if let (Some(choice), Some(reason)) = (chunk.choices.first_mut(), done_reason) {
                    choice.finish_reason = Some(reason);
                }
            }
            if llamacpp && options.timings_per_token {
                chunk.timings = Some(self.timings(sent, &warm_up));
            }
            if framer.push(event(&chunk)).await == Ending::Gone {
                return Ending::Gone;
            }
        }
        Ending::Finished
    }

    /// Evaluates the prompt in the stream, reporting `prompt_progress` in up to
    /// [`PROGRESS_STEPS`] even steps over `prompt_eval_ms`; the warm-up with its duration.
    async fn report_progress(
        &self,
        warm_up: WarmUp,
        chunks: &Chunks,
        framer: &mut Framer<'_>,
    ) -> Result<WarmUp, Ending> {
        let total = self.prompt_eval_count;
        let steps = PROGRESS_STEPS.min(total).max(1);
        let prompt_start = Instant::now();
        let eval = Duration::from_millis(self.config.prompt_eval_ms);
        for step in 1..=steps {
            tokio::time::sleep_until(prompt_start + eval.mul_f64(step as f64 / steps as f64)).await;
            let progress = PromptProgress {
                total,
                cache: 0,
                processed: total * step / steps,
                time_ms: prompt_start.elapsed().as_millis() as u64,
            };
            if framer.push(event(&chunks.progress(progress))).await == Ending::Gone {
                return Err(Ending::Gone);
            }
        }
        let eval_start = Instant::now();
        Ok(WarmUp {
            load: warm_up.load,
            prompt_eval: eval_start - prompt_start,
            eval_start,
        })
    }

    /// Generates the whole reply at the configured pace for a request without `stream`: the
    /// one `chat.completion` object, or the error to answer with HTTP 500. A stall never returns.
    pub(crate) async fn collect_openai(
        &self,
        warm_up: WarmUp,
        ledger: &Ledger,
    ) -> Result<Value, String> {
        let chunks = Chunks::new(self);
        let mut pace = Pace::new(self.config.tokens_per_second, warm_up.eval_start);
        let (mut content, mut reasoning) = (String::new(), String::new());
        let mut sent = 0;
        for step in self.steps() {
            match step {
                Step::Thinking(text) => {
                    pace.tick().await;
                    reasoning.push_str(&text);
                    sent += 1;
                }
                Step::Content(text) => {
                    pace.tick().await;
                    content.push_str(&self.stamped(text));
                    sent += 1;
                }
                Step::Done(reason) => {
                    let mut message =
                        delta([("role", json!("assistant")), ("content", json!(content))]);
                    if !reasoning.is_empty() {
                        message.insert(chunks.reasoning_field.to_string(), json!(reasoning));
                    }
                    let mut completion = json!({
                        "id": chunks.id,
                        "object": "chat.completion",
                        "created": chunks.created,
                        "model": chunks.model,
                        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
                        "usage": self.usage(sent),
                    });
                    if chunks.flavor == Flavor::Llamacpp {
                        completion["system_fingerprint"] = json!(LLAMACPP_FINGERPRINT);
                        completion["timings"] = json!(self.timings(sent, &warm_up));
                    }
                    ledger.completed(completion.clone());
                    return Ok(completion);
                }
                Step::Error(error) => {
                    ledger.stream_error();
                    return Err(error);
                }
                Step::Stall => std::future::pending::<()>().await,
            }
        }
        Err(RUNNER_ERROR_MESSAGE.to_string())
    }
}
