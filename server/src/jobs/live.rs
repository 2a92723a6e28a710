//! The state of one running job between publications: its text so far, its phase and the
//! estimator behind its progress numbers.
use std::time::Instant;

use app::types::{Failure, JobStatus, Progress};

use super::estimate::Estimator;
use crate::db::now_ms;

pub struct Live {
    pub id: i64,
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
}

impl Live {
    pub fn new(id: i64, attempt: u32, estimator: Estimator) -> Self {
        Self {
            id,
            attempt,
            model_loaded: None,
            status: JobStatus::Loading,
            text: String::new(),
            cut_at_bytes: None,
            estimator,
            request_started: Instant::now(),
            retry_at: None,
            error: None,
        }
    }

    /// The seed's progress fields at `now`.
    pub fn progress(&mut self, now: Instant) -> Progress {
        Progress {
            current_tokens: self.estimator.tokens(),
            tokens_per_second: self.estimator.rate(now),
            elapsed_time: self.estimator.elapsed_ms(now),
            estimated_time_remaining: self.estimator.remaining_ms(now),
            percent: self.estimator.percent(),
            last_update_at: now_ms(),
        }
    }

    /// Starts the answer over for another attempt (the elapsed time keeps running). The
    /// caller tells its publisher, so that watchers drop the old text too.
    pub fn restart(&mut self, retry_at: Option<i64>, error: Option<(String, Failure)>) {
        self.status = JobStatus::Loading;
        self.text.clear();
        self.cut_at_bytes = None;
        self.estimator.restart();
        self.retry_at = retry_at;
        self.error = error;
    }
}
