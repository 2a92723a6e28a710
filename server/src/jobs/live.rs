//! The state of one running job between publications: its text (and reasoning) so far, its
//! phase and the estimator behind its progress numbers.
use std::time::Instant;

use app::types::{Failure, JobStatus, Progress, PromptProgress, Reasoning};

use super::estimate::Estimator;
use crate::db::{now_ms, storable};

pub struct Live {
    pub id: i64,
    /// Which run of the job this is (its `runs` when claimed): every write is fenced by it.
    pub run: u32,
    /// The attempt in progress: requests to the model server in this job's current life,
    /// across restarts. Each attempt starts the text over.
    pub attempt: u32,
    /// While loading: whether the model was in memory already (see `JobView::model_loaded`).
    pub model_loaded: Option<bool>,
    pub status: JobStatus,
    pub text: String,
    /// Set when the answer reached the most bytes a post keeps (see `cap`): the cap, in bytes.
    pub cut_at_bytes: Option<u32>,
    pub estimator: Estimator,
    /// When the current attempt's request was sent (time to first token counts from here).
    pub request_started: Instant,
    /// When the next attempt is due, while waiting to retry.
    pub retry_at: Option<i64>,
    /// Why the last attempt failed (the detail, and its class), while waiting to retry.
    pub error: Option<(String, Failure)>,
    /// The model server running it (its configured name).
    pub backend: Option<String>,
    /// A thinking model's reasoning so far, and its chunks.
    pub thinking: String,
    pub thinking_tokens: u32,
    /// When the reasoning began, and when the answer's first token ended it.
    thinking_started: Option<Instant>,
    thinking_ended: Option<Instant>,
    /// Chunks of the answer (the estimator counts the reasoning's too).
    pub answer_tokens: u32,
    /// How far the server has read the prompt, when it says.
    pub prompt_progress: Option<PromptProgress>,
}

impl Live {
    pub fn new(id: i64, run: u32, attempt: u32, estimator: Estimator) -> Self {
        Self {
            id,
            run,
            attempt,
            model_loaded: None,
            status: JobStatus::Loading,
            text: String::new(),
            cut_at_bytes: None,
            estimator,
            request_started: Instant::now(),
            retry_at: None,
            error: None,
            backend: None,
            thinking: String::new(),
            thinking_tokens: 0,
            thinking_started: None,
            thinking_ended: None,
            answer_tokens: 0,
            prompt_progress: None,
        }
    }

    /// A chunk of reasoning arrived.
    pub fn on_reasoning(&mut self, now: Instant) {
        self.thinking_tokens = self.thinking_tokens.saturating_add(1);
        self.thinking_started.get_or_insert(now);
    }

    /// The answer began (or the reply ended): the reasoning, if any, is complete.
    pub fn end_reasoning(&mut self, now: Instant) {
        if self.thinking_started.is_some() {
            self.thinking_ended.get_or_insert(now);
        }
    }

    /// How long and how much it has reasoned, if it has.
    pub fn reasoning(&self, now: Instant) -> Option<Reasoning> {
        let started = self.thinking_started?;
        let until = self.thinking_ended.unwrap_or(now);
        Some(Reasoning {
            tokens: self.thinking_tokens,
            duration_ms: u64::try_from(until.saturating_duration_since(started).as_millis())
                .unwrap_or(u64::MAX),
            finished: self.thinking_ended.is_some(),
        })
    }

    /// The seed's progress fields at `now`. The token count and the speed are the answer's
    /// (the reasoning shows apart); elapsed time, percent and time remaining cover both.
    pub fn progress(&mut self, now: Instant) -> Progress {
        // Reasoning and answer are written at the same pace: once the answer has two tokens,
        // the measured pace is its own.
        let rate = self.estimator.rate(now);
        let eta = self.estimator.eta(now);
        Progress {
            current_tokens: self.answer_tokens,
            tokens_per_second: if self.answer_tokens >= 2 { rate } else { 0.0 },
            elapsed_time: self.estimator.elapsed_ms(now),
            estimated_time_remaining: eta.map(|eta| eta.ms),
            estimated_time_remaining_low: eta.map(|eta| eta.low_ms),
            estimated_time_remaining_high: eta.map(|eta| eta.high_ms),
            percent: self.estimator.percent(),
            last_update_at: now_ms(),
        }
    }

    /// Starts the answer over for another attempt (the elapsed time keeps running). The
    /// caller tells its publisher, so that watchers drop the old text too.
    pub fn restart(&mut self, retry_at: Option<i64>, error: Option<(String, Failure)>) {
        self.status = JobStatus::Loading;
        self.text.clear();
        self.thinking.clear();
        self.thinking_tokens = 0;
        self.thinking_started = None;
        self.thinking_ended = None;
        self.answer_tokens = 0;
        self.prompt_progress = None;
        self.cut_at_bytes = None;
        self.estimator.restart();
        self.retry_at = retry_at;
        // Stored as watchers are sent it (a model server's message may hold a NUL).
        self.error = error.map(|(detail, class)| (storable(&detail).into_owned(), class));
    }
}
