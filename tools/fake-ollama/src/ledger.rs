//! What the fake has seen and sent (counters, requests, final chunks, per-prompt failures), for
//! tests to read.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

/// Counters of what the fake has served since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `POST /api/chat` requests, including rejected ones.
    pub chat_requests: u64,
    /// `POST /api/generate` requests, including rejected ones.
    pub generate_requests: u64,
    /// `POST /v1/chat/completions` requests, including rejected ones.
    pub openai_chat_requests: u64,
    /// Replies that reached their final `"done": true` chunk (or, on the OpenAI API, their
    /// finish reason and usage).
    pub completed: u64,
    /// Replies whose client went away before the end (while loading, streaming or stalled).
    pub disconnected: u64,
    /// Streams that ended with an `{"error": ...}` line or event.
    pub stream_errors: u64,
    /// Requests answered with an HTTP error status (400, 404, injected 5xx, ...).
    pub http_errors: u64,
    /// Chat and generate requests per model name, as requested.
    pub per_model: BTreeMap<String, u64>,
    /// Model lists served: `GET /api/tags` and `GET /v1/models`.
    pub model_listings: u64,
}

/// What one generation request asked for, as the fake read it (recorded once its body parsed,
/// before any check), so a test can assert what the client under test sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The path: `/api/chat`, `/api/generate` or `/v1/chat/completions`.
    pub endpoint: String,
    /// The model, as requested.
    pub model: String,
    /// Whether the reply was asked to stream (each API's default applied).
    pub stream: bool,
    /// `options.num_predict` (Ollama), or `max_completion_tokens` else `max_tokens` (OpenAI).
    pub max_tokens: Option<i64>,
    /// OpenAI's `stream_options.include_usage`.
    pub include_usage: bool,
    /// llama.cpp's `return_progress`.
    pub return_progress: bool,
    /// llama.cpp's `timings_per_token`.
    pub timings_per_token: bool,
    /// Ollama's `think` as sent (`true`, `false`, `"high"`, ...); `None` when absent.
    pub think: Option<Value>,
}

/// The fake's shared record. Every change wakes the tasks waiting in [`Ledger::wait_for`].
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<Inner>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    stats: Stats,
    final_chunks: Vec<Value>,
    requests: Vec<RequestRecord>,
    failures_by_prompt: HashMap<String, u32>,
    loaded_models: Vec<String>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, change: impl FnOnce(&mut Inner) -> T) -> T {
        let result = change(&mut self.lock());
        self.changed.notify_waiters();
        result
    }

    pub(crate) fn chat_request(&self) {
        self.update(|inner| inner.stats.chat_requests += 1);
    }

    pub(crate) fn generate_request(&self) {
        self.update(|inner| inner.stats.generate_requests += 1);
    }

    pub(crate) fn openai_chat_request(&self) {
        self.update(|inner| inner.stats.openai_chat_requests += 1);
    }

    pub(crate) fn request(&self, record: RequestRecord) {
        self.update(|inner| inner.requests.push(record));
    }

    pub(crate) fn model_list_served(&self) {
        self.update(|inner| inner.stats.model_listings += 1);
    }

    pub(crate) fn model_requested(&self, model: &str) {
        self.update(|inner| *inner.stats.per_model.entry(model.to_string()).or_default() += 1);
    }

    pub(crate) fn model_loaded(&self, model: &str) {
        self.update(|inner| {
            if !inner.loaded_models.iter().any(|m| m == model) {
                inner.loaded_models.push(model.to_string());
            }
        });
    }

    pub(crate) fn completed(&self, final_chunk: Value) {
        self.update(|inner| {
            inner.stats.completed += 1;
            inner.final_chunks.push(final_chunk);
        });
    }

    pub(crate) fn stream_error(&self) {
        self.update(|inner| inner.stats.stream_errors += 1);
    }

    pub(crate) fn http_error(&self) {
        self.update(|inner| inner.stats.http_errors += 1);
    }

    pub(crate) fn disconnected(&self) {
        self.update(|inner| inner.stats.disconnected += 1);
    }

    /// Whether this request is one of the first `fail_first` with this prompt text.
    pub(crate) fn take_planned_failure(&self, prompt: &str, fail_first: u32) -> bool {
        if fail_first == 0 {
            return false;
        }
        self.update(|inner| {
            let failed = inner
                .failures_by_prompt
                .entry(prompt.to_string())
                .or_default();
            let fail = *failed < fail_first;
            if fail {
                *failed += 1;
            }
            fail
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub(crate) fn final_chunks(&self) -> Vec<Value> {
        self.lock().final_chunks.clone()
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    pub(crate) fn loaded_models(&self) -> Vec<String> {
        self.lock().loaded_models.clone()
    }

    /// Waits until `condition` holds for the stats, for at most `timeout`; the stats either way.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, Stats> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a change between the check and the wait still wakes us.
            let changed = self.changed.notified();
            let stats = self.stats();
            if condition(&stats) {
                return Ok(stats);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(self.stats());
            }
        }
    }
}

/// Counts a disconnect when dropped before [`DisconnectGuard::finish`]: the handler or the
/// stream holding it was dropped because the client went away.
#[derive(Debug)]
pub(crate) struct DisconnectGuard {
    ledger: Arc<Ledger>,
    armed: bool,
}

impl DisconnectGuard {
    pub(crate) fn new(ledger: Arc<Ledger>) -> Self {
        DisconnectGuard {
            ledger,
            armed: true,
        }
    }

    /// The reply ended on the fake's terms (done, error line, or shutdown).
    pub(crate) fn finish(mut self) {
        self.armed = false;
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if self.armed {
            self.ledger.disconnected();
        }
    }
}
