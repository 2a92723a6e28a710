//! The data both the server and the browser speak: posts, jobs, progress events and API errors.
mod error;
mod event;
mod input;
mod job;
mod post;

pub use error::{ApiError, ErrorBody};
pub use event::{DoneEvent, ErrorEvent, ProgressEvent, WallEvent};
pub use input::InputLimits;
pub use job::{FinalStats, JobStatus, JobView, Progress};
pub use post::{NewAiPost, NewPost, Post, PostKind, PostPage, WallSnapshot};
