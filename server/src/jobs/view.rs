//! A job's stored row as a card draws it: the mapping from the data layer's rows to the
//! [`JobView`] the browser reads.
use app::types::{JobStatus, JobView};

use crate::db::JobRow;

/// The job as a card draws it. The queue position is the queue's to know; it is shown only
/// while the job waits.
pub fn job_view(row: &JobRow, queue_position: Option<u32>) -> JobView {
    JobView {
        id: row.id,
        post_id: row.post_id,
        status: row.status,
        model: row.model.clone(),
        max_tokens: row.max_tokens,
        queue_position: queue_position.filter(|_| row.status == JobStatus::Queued),
        progress: row.progress(),
        text: row.partial_text.clone(),
        stats: row.stats(),
        error: row.error.clone(),
        attempt: row.attempt,
        run: row.runs,
        retry_at: row.retry_at,
        model_loaded: None,
        seq: first_seq(row),
    }
}

/// A stored state's sequence number: newer than anything published while the job ran, since
/// the hub numbers a job's changes from the time it started tracking it, in microseconds.
fn first_seq(row: &JobRow) -> u64 {
    u64::try_from(row.last_update_at)
        .unwrap_or_default()
        .saturating_mul(1000)
}
