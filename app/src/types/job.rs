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
    /// 0.0 to 100.0; reaches 100 only when the job is completed and never goes back.
    pub percent: f64,
    /// Unix time in milliseconds of the last change.
    pub last_update_at: i64,
}

/// The statistics of a finished generation. Counts and durations are Ollama's own, from its
/// final chunk (durations in nanoseconds, as Ollama reports them); time to first token is ours.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalStats {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    /// From sending the request to the first token, in milliseconds.
    pub time_to_first_token_ms: u64,
    pub load_duration_ns: u64,
    pub prompt_eval_duration_ns: u64,
    pub eval_duration_ns: u64,
    pub total_duration_ns: u64,
    /// `stop`, or `length` when the max length was hit.
    pub done_reason: String,
    /// Set when the answer reached the most bytes a post keeps and was cut there (then
    /// `done_reason` is `length` too): the cap, in bytes.
    #[serde(default)]
    pub cut_at_bytes: Option<u32>,
}

impl FinalStats {
    /// Decoding speed as Ollama measured it: `eval_count / eval_duration`.
    #[allow(clippy::cast_precision_loss)] // exact below 2^53 ns, i.e. 104 days
    pub fn tokens_per_second(&self) -> f64 {
        if self.eval_duration_ns == 0 {
            0.0
        } else {
            f64::from(self.output_tokens) * 1e9 / self.eval_duration_ns as f64
        }
    }
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
        }
    }
}
