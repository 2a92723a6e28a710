//! The live bus between instances on one PostgreSQL: what one instance changes (a job's
//! progress, a job's status, a new or deleted post, a Stop) reaches the others through
//! `LISTEN/NOTIFY` on one channel, so that a watcher on any instance sees every job live.
//!
//! [`note`] is what travels, [`Outbox`] where the hub hands this instance's changes, [`send`]
//! the task that notifies them (on a pooled connection, outside every write transaction: a
//! notifying commit takes a global lock, see the README's figures), and [`listen`] the task
//! that hears the others' and applies them here, resynchronising from the database whenever
//! its connection was lost.
mod listen;
mod note;
mod send;

use app::types::ProgressEvent;
use tokio::sync::mpsc;

pub use listen::listen;
pub use note::{inline_len, Note, What, MAX_INLINE_DELTA};
pub use send::send;

/// The channel every instance of a wall notifies and listens on.
pub const CHANNEL: &str = "aiwall";

/// Where this instance's changes go for the others; cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<What>,
}

impl Outbox {
    /// An outbox and the receiving end its sender task reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<What>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    fn put(&self, what: What) {
        // Closed only when the sender task has stopped, at shutdown.
        let _ = self.tx.send(what);
    }

    /// A job's progress (its text and reasoning as deltas).
    pub fn progress(&self, event: &ProgressEvent) {
        let mut event = event.clone();
        event.html = None;
        self.put(What::Progress(Box::new(event)));
    }

    /// Job `job` changed in its row (entered the queue, was claimed, ended): read the row.
    pub fn job(&self, job: i64, run: u32, seq: u64) {
        self.put(What::Job { job, run, seq });
    }

    pub fn post(&self, post: i64) {
        self.put(What::Post { post });
    }

    pub fn post_deleted(&self, post: i64, job: Option<i64>) {
        self.put(What::PostDeleted { post, job });
    }

    /// Its author stopped job `job`, which another instance runs.
    pub fn stop(&self, job: i64) {
        self.put(What::Stop { job });
    }
}
