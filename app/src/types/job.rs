//! A generation job's state: its status, live progress, text so far and final statistics.
use serde::{Deserialize, Serialize};

use super::Failure;

/// Where a job is in its life. The last three are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "ssr",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "lowercase")
)]
pub enum JobStatus {
    Queued,
    Loading,
    Generating,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order of a job's life.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Loading,
        JobStatus::Generating,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Loading => "loading",
            JobStatus::Generating => "generating",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Claimed and at work: loading the model, or writing.
    pub fn is_running(self) -> bool {
        matches!(self, JobStatus::Loading | JobStatus::Generating)
    }

    /// Ended without an answer being finished: failed, or stopped (it can be retried).
    pub fn ended_early(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Cancelled)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// The seed's live progress fields, plus the percent derived from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Chunks received so far (a live estimate of tokens; the final count comes from Ollama).
    pub current_tokens: u32,
    /// Measured over a short sliding window, so it reacts to slow-downs.
    pub tokens_per_second: f64,
    /// Milliseconds since the job started running (0 while queued).
    pub elapsed_time: u64,
    /// Milliseconds still expected; `None` when there is no honest estimate yet.
    pub estimated_time_remaining: Option<u64>,
    /// The range the time still to wait falls in, 8 times out of 10 (from the 10th to the 90th
    /// percentile of the model's comparable answers), in milliseconds; with
    /// `estimated_time_remaining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_time_remaining_low: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_time_remaining_high: Option<u64>,
    /// 0.0 to 100.0; reaches 100 only when the job is completed and never goes back.
    pub percent: f64,
    /// Unix time in milliseconds of the last change.
    pub last_update_at: i64,
}

impl Progress {
    /// When (Unix ms) the job is expected to end, by the time left as last told.
    pub fn ends_at(&self) -> Option<i64> {
        let left = i64::try_from(self.estimated_time_remaining?).ok()?;
        Some(self.last_update_at.saturating_add(left))
    }
}

/// The statistics of a finished generation, as far as the model server reported them: each
/// one it did not report is `None` (shown as "—", never as 0). Counts and durations are the
/// server's own (durations in nanoseconds, as Ollama reports them; llama.cpp's milliseconds
/// converted); time to first token is ours. Rows stored before these were optional read as
/// they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalStats {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: Option<u32>,
    /// Answer tokens (a thinking model's reasoning is counted in [`Reasoning::tokens`]).
    #[serde(default)]
    pub output_tokens: Option<u32>,
    /// Everything the model read and wrote: input, reasoning and answer.
    #[serde(default)]
    pub total_tokens: Option<u32>,
    /// From sending the request to the first token (of reasoning or answer), in milliseconds.
    #[serde(default)]
    pub time_to_first_token_ms: Option<u64>,
    #[serde(default)]
    pub load_duration_ns: Option<u64>,
    #[serde(default)]
    pub prompt_eval_duration_ns: Option<u64>,
    /// Time spent writing (reasoning and answer).
    #[serde(default)]
    pub eval_duration_ns: Option<u64>,
    #[serde(default)]
    pub total_duration_ns: Option<u64>,
    /// `stop`, or `length` when the max length was hit.
    pub done_reason: String,
    /// Set when the answer reached the most bytes a post keeps and was cut there (then
    /// `done_reason` is `length` too): the cap, in bytes.
    #[serde(default)]
    pub cut_at_bytes: Option<u32>,
}

impl FinalStats {
    /// Decoding speed as the model server measured it: tokens written (reasoning and answer)
    /// per second of writing; `None` when it did not report both.
    #[allow(clippy::cast_precision_loss)] // exact below 2^53 ns, i.e. 104 days
    pub fn tokens_per_second(&self, reasoning_tokens: u32) -> Option<f64> {
        let written = self.output_tokens?.saturating_add(reasoning_tokens);
        match self.eval_duration_ns? {
            0 => None,
            ns => Some(f64::from(written) * 1e9 / ns as f64),
        }
    }
}

/// A reasoning model's thinking, streamed before its answer and kept apart from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    /// Chunks of reasoning received (about one token each).
    pub tokens: u32,
    /// How long it thought, in milliseconds: from its first chunk to the answer's first token
    /// (while it still thinks: up to `last_update_at`, and the card keeps counting).
    pub duration_ms: u64,
    /// The answer has begun, or the job ended: the reasoning is complete.
    pub finished: bool,
}

/// How far a model server has read the prompt, when it says (llama.cpp's `prompt_progress`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptProgress {
    /// Prompt tokens read so far (those taken from its cache included).
    pub processed: u32,
    pub total: u32,
}

impl PromptProgress {
    /// 0.0 to 100.0.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (f64::from(self.processed.min(self.total)) * 100.0 / f64::from(self.total)).min(100.0)
        }
    }
}

/// What a queued job waits for, beyond its place in the line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitingFor {
    /// Jobs ahead of it that need the same model servers go first.
    Turn,
    /// It is next, and every model server that has its model is busy: these ones.
    Slot { backends: Vec<String> },
    /// Every model server that has its model is unreachable: these ones (since
    /// [`JobView::unreachable_since`]).
    Server { backends: Vec<String> },
}

/// Everything a progress card needs to draw a job, at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub post_id: i64,
    pub status: JobStatus,
    pub model: String,
    pub max_tokens: Option<u32>,
    /// 1 for the next job to run; only while queued.
    pub queue_position: Option<u32>,
    /// While queued: when (Unix ms) it is expected to start, from the jobs ahead of it and
    /// the model's history; `None` when that cannot be told yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_start_at: Option<i64>,
    pub progress: Progress,
    /// The answer so far (all of it once completed).
    pub text: String,
    /// `text` as safe HTML, one string per top-level Markdown block (rendered by the server).
    #[serde(default)]
    pub blocks: Vec<String>,
    pub stats: Option<FinalStats>,
    /// The technical detail of why the job failed, or why it waits to try again.
    pub error: Option<String>,
    /// `error` as a class, for a sentence in plain words; `None` for a job that has not failed
    /// (and for jobs that failed before the class was recorded).
    #[serde(default)]
    pub failure: Option<Failure>,
    pub attempt: u32,
    /// Which run of the job this is (every claim counts; never reset): text from different
    /// runs never mixes.
    #[serde(default)]
    pub run: u32,
    /// Unix ms when a retry after a transient Ollama failure is due.
    pub retry_at: Option<i64>,
    /// While the job waits in the queue because the model server is unreachable: since when
    /// (Unix ms) it is. `None` once it answers again.
    #[serde(default)]
    pub unreachable_since: Option<i64>,
    /// While `loading`: whether Ollama had the model in memory already (so the wait is for
    /// reading the prompt) or must load it first; `None` when Ollama did not say.
    #[serde(default)]
    pub model_loaded: Option<bool>,
    /// Increases with every published change; events older than what a client has are dropped.
    pub seq: u64,
    /// `text` and `blocks` are only the answer's beginning (a wall folds long answers); the
    /// post's own address (`GET /api/v1/posts/{id}`) has all of it.
    #[serde(default)]
    pub folded: bool,
    /// A thinking model's reasoning so far (all of it once finished), apart from the answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// How long and how much it thought; `None` for a job that has not reasoned.
    #[serde(default)]
    pub reasoning: Option<Reasoning>,
    /// While it reads the prompt, how far, when the model server says.
    #[serde(default)]
    pub prompt_progress: Option<PromptProgress>,
    /// The model server (by its configured name) running the job, or that ran it last.
    #[serde(default)]
    pub backend: Option<String>,
    /// While queued: what it waits for.
    #[serde(default)]
    pub waiting_for: Option<WaitingFor>,
}

impl JobView {
    /// A job that has just entered the queue: nothing run, nothing written yet.
    pub fn fresh(id: i64, post_id: i64, model: impl Into<String>) -> Self {
        Self {
            id,
            post_id,
            status: JobStatus::Queued,
            model: model.into(),
            max_tokens: None,
            queue_position: None,
            expected_start_at: None,
            progress: Progress::default(),
            text: String::new(),
            blocks: Vec::new(),
            stats: None,
            error: None,
            failure: None,
            attempt: 0,
            run: 0,
            retry_at: None,
            unreachable_since: None,
            model_loaded: None,
            seq: 0,
            folded: false,
            thinking: String::new(),
            reasoning: None,
            prompt_progress: None,
            backend: None,
            waiting_for: None,
        }
    }
}
