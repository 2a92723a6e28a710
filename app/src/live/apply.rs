//! How a browser folds stream events into the job state it holds: pure functions, so the
//! rules (drop what is stale, append exactly the unseen text and patch the rendered blocks,
//! notice a gap) are unit-tested.
use crate::types::{DoneEvent, ErrorEvent, JobStatus, JobView, ProgressEvent};

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// Older than what we have: ignored.
    Stale,
    /// Text or blocks are missing between what we have and the event: fetch a fresh state.
    Gap,
}

pub fn progress(job: &mut JobView, ev: &ProgressEvent) -> Applied {
    if ev.seq <= job.seq || job.status.is_terminal() {
        return Applied::Stale;
    }
    if ev.text_offset > job.text.len() || !job.text.is_char_boundary(ev.text_offset) {
        return Applied::Gap;
    }
    if let Some(patch) = &ev.html {
        if !patch.apply(&mut job.blocks) {
            return Applied::Gap;
        }
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
    job.unreachable_since = ev.unreachable_since;
    job.model_loaded = ev.model_loaded;
    job.seq = ev.seq;
    Applied::Updated
}

pub fn done(job: &mut JobView, ev: &DoneEvent) {
    job.status = JobStatus::Completed;
    job.text = ev.text.clone();
    job.blocks = ev.blocks.clone();
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
    job.blocks = ev.blocks.clone();
    job.queue_position = None;
    job.retry_at = None;
    job.progress.estimated_time_remaining = None;
    job.seq = job.seq.max(ev.seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BlocksPatch, Progress};

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
            html: None,
            attempt: 1,
            retry_at: None,
            error: None,
            failure: None,
            unreachable_since: None,
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

    fn patch(from: u32, blocks: &[&str]) -> Option<BlocksPatch> {
        Some(BlocksPatch {
            from,
            blocks: blocks.iter().map(|b| (*b).to_owned()).collect(),
        })
    }

    fn with_html(mut e: ProgressEvent, html: Option<BlocksPatch>) -> ProgressEvent {
        e.html = html;
        e
    }

    #[test]
    fn blocks_are_patched_from_the_first_that_changed() {
        let mut j = job();
        progress(
            &mut j,
            &with_html(ev(2, 0, "# A\n\nb"), patch(0, &["<h1>A</h1>", "<p>b</p>"])),
        );
        progress(&mut j, &with_html(ev(3, 6, "c"), patch(1, &["<p>bc</p>"])));
        assert_eq!(j.blocks, ["<h1>A</h1>", "<p>bc</p>"]);
        // An event without a patch (nothing rendered changed) keeps the blocks.
        progress(&mut j, &ev(4, 7, ""));
        assert_eq!(j.blocks, ["<h1>A</h1>", "<p>bc</p>"]);
        // A restart replaces them all.
        progress(&mut j, &with_html(ev(5, 0, "x"), patch(0, &["<p>x</p>"])));
        assert_eq!((j.text.as_str(), j.blocks.len()), ("x", 1));
    }

    #[test]
    fn a_patch_beyond_the_blocks_we_have_is_a_gap_and_changes_nothing() {
        let mut j = job();
        progress(&mut j, &with_html(ev(2, 0, "a"), patch(0, &["<p>a</p>"])));
        let far = with_html(ev(3, 1, "b"), patch(3, &["<p>z</p>"]));
        assert_eq!(progress(&mut j, &far), Applied::Gap);
        assert_eq!((j.text.as_str(), j.blocks.len(), j.seq), ("a", 1, 2));
    }

    #[test]
    fn the_end_takes_the_final_blocks() {
        let mut j = job();
        progress(&mut j, &with_html(ev(2, 0, "a"), patch(0, &["<p>a</p>"])));
        let end = DoneEvent {
            job_id: 1,
            post_id: 1,
            text: "ab".into(),
            html: "<p>ab</p>".into(),
            blocks: vec!["<p>ab</p>".into()],
            stats: Default::default(),
            progress: Progress::default(),
            seq: 3,
        };
        done(&mut j, &end);
        assert_eq!(j.blocks, ["<p>ab</p>"]);
        let mut stopped = job();
        error(
            &mut stopped,
            &ErrorEvent {
                job_id: 1,
                post_id: 1,
                status: JobStatus::Cancelled,
                message: "Stopped.".into(),
                failure: Some(crate::types::Failure::Stopped),
                text: "a".into(),
                blocks: vec!["<p>a</p>".into()],
                seq: 3,
            },
        );
        assert_eq!(stopped.blocks, ["<p>a</p>"]);
    }
}
