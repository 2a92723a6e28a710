//! The data both the server and the browser speak: posts, jobs, progress events and API errors.
mod delta;
mod error;
mod event;
mod failure;
mod health;
mod input;
mod job;
mod post;

pub use delta::{HtmlPatch, ProgressDelta};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use event::{
    BlocksPatch, DecodeError, DoneEvent, ErrorEvent, EventName, JobEvent, PostDeletedEvent,
    ProgressEvent, SnapshotEvent, WallEvent, CONNECTION_TROUBLE,
};
pub use failure::Failure;
pub use health::{BackendHealth, BackendKind, Check, Readiness};
pub use input::InputLimits;
pub use job::{FinalStats, JobStatus, JobView, Progress, PromptProgress, Reasoning, WaitingFor};
pub use post::{
    ModelList, NewAiPost, NewPost, OfferedModel, Post, PostKind, PostPage, WallSnapshot,
};
