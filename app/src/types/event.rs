//! The events of the SSE streams, one struct each, written by the server and read by the browser.
use serde::{Deserialize, Serialize};

use super::job::{FinalStats, JobStatus, JobView, Progress};
use super::post::Post;

/// `event: progress` — a job moved on. `text_delta` is the text appended after `text_offset`
/// bytes; a client whose text is not exactly `text_offset` bytes long must take a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub job_id: i64,
    pub post_id: i64,
    pub status: JobStatus,
    pub queue_position: Option<u32>,
    #[serde(flatten)]
    pub progress: Progress,
    pub text_offset: usize,
    pub text_delta: String,
    pub attempt: u32,
    pub retry_at: Option<i64>,
    #[serde(default)]
    pub model_loaded: Option<bool>,
    #[serde(default)]
    pub run: u32,
    pub seq: u64,
}

/// `event: done` — the job completed; the full text and Ollama's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoneEvent {
    pub job_id: i64,
    pub post_id: i64,
    pub text: String,
    /// `text` as safe HTML (see [`super::Post::html`]).
    pub html: String,
    pub stats: FinalStats,
    pub progress: Progress,
    pub seq: u64,
}

/// `event: error` — the job failed or was cancelled, with the reason in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub job_id: i64,
    pub post_id: i64,
    pub status: JobStatus,
    pub message: String,
    /// The text produced before it stopped.
    pub text: String,
    pub seq: u64,
}

/// One event of the wall's multiplexed stream (`/api/v1/wall/events`): the SSE event name is
/// [`WallEvent::name`] and the data is the variant's payload as JSON (`post_deleted` sends
/// `{"post_id": N}`, `snapshot` sends `{"posts": [...], "jobs": [...]}`).
#[derive(Clone, Debug, PartialEq)]
pub enum WallEvent {
    /// Sent first, and again whenever the client may have missed something: the newest page of
    /// posts and the full state of every unfinished job.
    Snapshot {
        posts: Vec<Post>,
        jobs: Vec<JobView>,
    },
    Post(Post),
    PostDeleted(i64),
    /// A job restarted (retry, or recovery after a crash): replace its state wholesale.
    Job(JobView),
    Progress(ProgressEvent),
    Done(DoneEvent),
    Error(ErrorEvent),
}

impl WallEvent {
    pub fn name(&self) -> &'static str {
        match self {
            WallEvent::Snapshot { .. } => "snapshot",
            WallEvent::Post(_) => "post",
            WallEvent::PostDeleted(_) => "post_deleted",
            WallEvent::Job(_) => "job",
            WallEvent::Progress(_) => "progress",
            WallEvent::Done(_) => "done",
            // Not `error`: EventSource fires its own `error` on connection trouble.
            WallEvent::Error(_) => "job_error",
        }
    }
}
