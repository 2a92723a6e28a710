//! How a browser folds stream events into the job state it holds: pure functions, so the
//! rules (drop what is stale, append exactly the unseen text, notice a gap) are unit-tested.
use crate::types::{DoneEvent, ErrorEvent, JobStatus, JobView, ProgressEvent};

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// Older than what we have: ignored.
    Stale,
    /// Text is missing between what we have and the event: fetch a fresh state.
    Gap,
}

pub fn progress(job: &mut JobView, ev: &ProgressEvent) -> Applied {
    if ev.seq <= job.seq || job.status.is_terminal() {
        return Applied::Stale;
    }
    if ev.text_offset > job.text.len() || !job.text.is_char_boundary(ev.text_offset) {
        return Applied::Gap;
    }
    // Truncating first makes a restart (offset 0) and an overlap both come out right.
    job.text.truncate(ev.text_offset);
    job.text.push_str(&ev.text_delta);
    job.status = ev.status;
    job.queue_position = ev.queue_position;
    job.progress = ev.progress.clone();
    job.attempt = ev.attempt;
    job.retry_at = ev.retry_at;
    job.error = ev.error.clone();
    job.failure = ev.failure;
    job.model_loaded = ev.model_loaded;
    job.seq = ev.seq;
    Applied::Updated
}

pub fn done(job: &mut JobView, ev: &DoneEvent) {
    job.status = JobStatus::Completed;
    job.text = ev.text.clone();
    job.stats = Some(ev.stats.clone());
    job.progress = ev.progress.clone();
    job.progress.percent = 100.0;
    job.progress.estimated_time_remaining = Some(0);
    job.queue_position = None;
    job.retry_at = None;
    job.error = None;
    job.failure = None;
    job.seq = job.seq.max(ev.seq);
}

pub fn error(job: &mut JobView, ev: &ErrorEvent) {
    job.status = ev.status;
    job.error = Some(ev.message.clone());
    job.failure = ev.failure;
    job.text = ev.text.clone();
    job.queue_position = None;
    job.retry_at = None;
    job.progress.estimated_time_remaining = None;
    job.seq = job.seq.max(ev.seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Progress;

    fn job() -> JobView {
        JobView {
            status: JobStatus::Generating,
            attempt: 1,
            run: 1,
            seq: 1,
            ..JobView::fresh(1, 1, "m")
        }
    }

    fn ev(seq: u64, offset: usize, delta: &str) -> ProgressEvent {
        ProgressEvent {
            job_id: 1,
            post_id: 1,
            status: JobStatus::Generating,
            queue_position: None,
            progress: Progress::default(),
            text_offset: offset,
            text_delta: delta.into(),
            attempt: 1,
            retry_at: None,
            error: None,
            failure: None,
            model_loaded: None,
            run: 1,
            seq,
        }
    }

    #[test]
    fn appends_exactly_once_and_ignores_replays() {
        let mut j = job();
        assert_eq!(progress(&mut j, &ev(2, 0, "Hel")), Applied::Updated);
        assert_eq!(progress(&mut j, &ev(3, 3, "lo")), Applied::Updated);
        assert_eq!(progress(&mut j, &ev(3, 3, "lo")), Applied::Stale);
        assert_eq!(j.text, "Hello");
    }

    #[test]
    fn a_restart_replaces_and_a_gap_is_noticed() {
        let mut j = job();
        progress(&mut j, &ev(2, 0, "Hello"));
        assert_eq!(progress(&mut j, &ev(3, 0, "Bye")), Applied::Updated);
        assert_eq!(j.text, "Bye");
        assert_eq!(progress(&mut j, &ev(4, 10, "x")), Applied::Gap);
        assert_eq!(j.text, "Bye");
    }

    #[test]
    fn multi_byte_text_never_splits_a_character() {
        let mut j = job();
        progress(&mut j, &ev(2, 0, "日本"));
        assert_eq!(progress(&mut j, &ev(3, 1, "x")), Applied::Gap);
    }
}
