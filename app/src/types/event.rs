//! The events of the SSE streams, one struct each, written by the server and read by the browser.
use serde::{Deserialize, Serialize};

use super::job::{FinalStats, JobStatus, JobView, Progress, PromptProgress, Reasoning, WaitingFor};
use super::post::Post;
use super::{Failure, ProgressDelta};

/// `event: progress` — a job moved on. `text_delta` is the text appended after `text_offset`
/// bytes; a client whose text is not exactly `text_offset` bytes long must take a snapshot.
/// `html`, when the rendered answer changed, patches its blocks ([`JobView::blocks`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub job_id: i64,
    pub post_id: i64,
    pub status: JobStatus,
    pub queue_position: Option<u32>,
    /// While queued: when (Unix ms) it is expected to start (see `JobView`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_start_at: Option<i64>,
    #[serde(flatten)]
    pub progress: Progress,
    pub text_offset: usize,
    pub text_delta: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<BlocksPatch>,
    pub attempt: u32,
    pub retry_at: Option<i64>,
    /// While waiting to retry: why the last attempt failed (technical detail, and its class).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// While the job waits for an unreachable model server: since when (Unix ms).
    #[serde(default)]
    pub unreachable_since: Option<i64>,
    #[serde(default)]
    pub model_loaded: Option<bool>,
    #[serde(default)]
    pub run: u32,
    pub seq: u64,
    /// Reasoning appended after `thinking_offset` bytes of it, as `text_delta` is for the
    /// answer (a client whose reasoning is not that long takes a snapshot).
    #[serde(default)]
    pub thinking_offset: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking_delta: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_progress: Option<PromptProgress>,
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<WaitingFor>,
}

/// A change to a live answer's rendered blocks: keep the first `from` blocks, then these. It
/// starts at the first block that changed, so each settled block is sent once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksPatch {
    pub from: u32,
    pub blocks: Vec<String>,
}

impl BlocksPatch {
    /// The patch that turns `old` into `new`; `None` when they are the same.
    pub fn between(old: &[String], new: &[String]) -> Option<Self> {
        if old == new {
            return None;
        }
        let same = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        Some(Self {
            from: u32::try_from(same).unwrap_or(u32::MAX),
            blocks: new.get(same..).unwrap_or_default().to_vec(),
        })
    }

    /// Applies the patch to `blocks`; false (and nothing changed) when it does not fit, i.e.
    /// it starts after the blocks there are.
    pub fn apply(&self, blocks: &mut Vec<String>) -> bool {
        match usize::try_from(self.from) {
            Ok(from) if from <= blocks.len() => {
                blocks.truncate(from);
                blocks.extend_from_slice(&self.blocks);
                true
            }
            _ => false,
        }
    }
}

/// `event: done` — the job completed; the full text and Ollama's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoneEvent {
    pub job_id: i64,
    pub post_id: i64,
    pub text: String,
    /// `text` as safe HTML (see [`super::Post::html`]).
    pub html: String,
    /// `html` split into its top-level blocks, as [`JobView::blocks`].
    #[serde(default)]
    pub blocks: Vec<String>,
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
    /// The technical detail.
    pub message: String,
    /// `message` as a class, for a sentence in plain words.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The text produced before it stopped.
    pub text: String,
    /// `text` as safe HTML blocks, as [`JobView::blocks`].
    #[serde(default)]
    pub blocks: Vec<String>,
    pub seq: u64,
}

/// `event: post_deleted` — a post (and its job) left the wall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostDeletedEvent {
    pub post_id: i64,
}

/// `event: snapshot` — sent first on every wall connection, and again whenever the client may
/// have missed something: the newest page of posts and the full state of every unfinished job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEvent {
    pub posts: Vec<Post>,
    pub jobs: Vec<JobView>,
}

/// Every SSE `event:` name of both streams: the one place they are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventName {
    Snapshot,
    Post,
    PostDeleted,
    Job,
    Progress,
    Done,
    /// A job's failure on the wall stream. Not `error`: EventSource fires its own `error` on
    /// connection trouble, and one page listens to many jobs there.
    JobError,
    /// A job's failure on its own stream (the seed's name).
    Error,
    /// The short progress event of `/api/v2/wall/events` ([`ProgressDelta`]).
    Delta,
}

impl EventName {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventName::Snapshot => "snapshot",
            EventName::Post => "post",
            EventName::PostDeleted => "post_deleted",
            EventName::Job => "job",
            EventName::Progress => "progress",
            EventName::Done => "done",
            EventName::JobError => "job_error",
            EventName::Error => "error",
            EventName::Delta => "delta",
        }
    }

    /// The names the wall stream sends (`/api/v1/wall/events`), for a client that subscribes
    /// to each.
    pub const WALL: [EventName; 7] = [
        EventName::Snapshot,
        EventName::Post,
        EventName::PostDeleted,
        EventName::Job,
        EventName::Progress,
        EventName::Done,
        EventName::JobError,
    ];

    /// The names `/api/v2/wall/events` sends: v1's and the short progress event.
    pub const WALL_V2: [EventName; 8] = [
        EventName::Snapshot,
        EventName::Post,
        EventName::PostDeleted,
        EventName::Job,
        EventName::Progress,
        EventName::Delta,
        EventName::Done,
        EventName::JobError,
    ];

    /// The names a job's own stream sends.
    pub const JOB: [EventName; 3] = [EventName::Progress, EventName::Done, EventName::Error];

    pub fn parse(name: &str) -> Option<Self> {
        [EventName::Error]
            .into_iter()
            .chain(Self::WALL_V2)
            .find(|n| n.as_str() == name)
    }
}

/// The name of the browser's own event on connection trouble, which EventSource fires on every
/// drop while it reconnects. The wall stream never sends an event by this name (hence
/// [`EventName::JobError`]), so a listener for it hears only the browser.
pub const CONNECTION_TROUBLE: &str = "error";

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SSE event that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("no event is called {0:?} on this stream")]
    UnknownEvent(String),
    #[error("the {name} event's data is not what it should be: {source}")]
    Data {
        name: EventName,
        source: crate::json::JsonError,
    },
}

fn decode<T: serde::de::DeserializeOwned>(name: EventName, data: &str) -> Result<T, DecodeError> {
    crate::json::from_str(data).map_err(|source| DecodeError::Data { name, source })
}

fn unknown(name: &str) -> DecodeError {
    DecodeError::UnknownEvent(name.to_owned())
}

/// One event of the wall's multiplexed stream (`/api/v2/wall/events`, and v1 without
/// [`WallEvent::Delta`]). The server writes it
/// with [`WallEvent::name`] and [`WallEvent::data`]; the browser reads it back with
/// [`WallEvent::decode`].
#[derive(Clone, Debug, PartialEq)]
pub enum WallEvent {
    Snapshot(SnapshotEvent),
    Post(Post),
    PostDeleted(PostDeletedEvent),
    /// A job restarted (retry, or recovery after a crash): replace its state wholesale.
    Job(JobView),
    Progress(ProgressEvent),
    /// Only on `/api/v2/wall/events`.
    Delta(ProgressDelta),
    Done(DoneEvent),
    Error(ErrorEvent),
}

impl WallEvent {
    pub fn name(&self) -> EventName {
        match self {
            WallEvent::Snapshot(_) => EventName::Snapshot,
            WallEvent::Post(_) => EventName::Post,
            WallEvent::PostDeleted(_) => EventName::PostDeleted,
            WallEvent::Job(_) => EventName::Job,
            WallEvent::Progress(_) => EventName::Progress,
            WallEvent::Delta(_) => EventName::Delta,
            WallEvent::Done(_) => EventName::Done,
            WallEvent::Error(_) => EventName::JobError,
        }
    }

    /// The SSE `data:` line: the payload as JSON.
    pub fn data(&self) -> Result<String, serde_json::Error> {
        match self {
            WallEvent::Snapshot(e) => serde_json::to_string(e),
            WallEvent::Post(e) => serde_json::to_string(e),
            WallEvent::PostDeleted(e) => serde_json::to_string(e),
            WallEvent::Job(e) => serde_json::to_string(e),
            WallEvent::Progress(e) => serde_json::to_string(e),
            WallEvent::Delta(e) => serde_json::to_string(e),
            WallEvent::Done(e) => serde_json::to_string(e),
            WallEvent::Error(e) => serde_json::to_string(e),
        }
    }

    /// Reads an event of the wall stream from its SSE name and data.
    pub fn decode(name: &str, data: &str) -> Result<Self, DecodeError> {
        let known = EventName::parse(name).ok_or_else(|| unknown(name))?;
        Ok(match known {
            EventName::Snapshot => WallEvent::Snapshot(decode(known, data)?),
            EventName::Post => WallEvent::Post(decode(known, data)?),
            EventName::PostDeleted => WallEvent::PostDeleted(decode(known, data)?),
            EventName::Job => WallEvent::Job(decode(known, data)?),
            EventName::Progress => WallEvent::Progress(decode(known, data)?),
            EventName::Delta => WallEvent::Delta(decode(known, data)?),
            EventName::Done => WallEvent::Done(decode(known, data)?),
            EventName::JobError => WallEvent::Error(decode(known, data)?),
            EventName::Error => return Err(unknown(name)),
        })
    }
}

/// One event of a job's own stream (`/api/v1/ai/generation/{jobId}/progress`, the seed's):
/// `progress` events, then exactly one `done` or `error`.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    Progress(ProgressEvent),
    Done(DoneEvent),
    Error(ErrorEvent),
}

impl JobEvent {
    pub fn name(&self) -> EventName {
        match self {
            JobEvent::Progress(_) => EventName::Progress,
            JobEvent::Done(_) => EventName::Done,
            JobEvent::Error(_) => EventName::Error,
        }
    }

    /// The SSE `data:` line: the payload as JSON.
    pub fn data(&self) -> Result<String, serde_json::Error> {
        match self {
            JobEvent::Progress(e) => serde_json::to_string(e),
            JobEvent::Done(e) => serde_json::to_string(e),
            JobEvent::Error(e) => serde_json::to_string(e),
        }
    }

    /// Whether the stream ends after this event.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, JobEvent::Progress(_))
    }

    /// Reads an event of a job's stream from its SSE name and data.
    pub fn decode(name: &str, data: &str) -> Result<Self, DecodeError> {
        let known = EventName::parse(name).ok_or_else(|| unknown(name))?;
        Ok(match known {
            EventName::Progress => JobEvent::Progress(decode(known, data)?),
            EventName::Done => JobEvent::Done(decode(known, data)?),
            EventName::Error => JobEvent::Error(decode(known, data)?),
            _ => return Err(unknown(name)),
        })
    }
}

impl From<JobEvent> for WallEvent {
    /// The same event, as the wall stream carries it.
    fn from(event: JobEvent) -> Self {
        match event {
            JobEvent::Progress(e) => WallEvent::Progress(e),
            JobEvent::Done(e) => WallEvent::Done(e),
            JobEvent::Error(e) => WallEvent::Error(e),
        }
    }
}
