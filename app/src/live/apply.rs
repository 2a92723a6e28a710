//! How a browser folds stream events into the job state it holds: pure functions, so the
//! rules (drop what is stale, append exactly the unseen text and reasoning and patch the
//! rendered blocks, notice a gap) are unit-tested.
use crate::types::{DoneEvent, ErrorEvent, JobStatus, JobView, ProgressDelta, ProgressEvent};

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// Older than what we have: ignored.
    Stale,
    /// Text or blocks are missing between what we have and the event: fetch a fresh state.
    Gap,
}

/// Why an event numbered `seq` whose text starts at `text_offset` cannot be applied, if it
/// cannot: it is older than what we have, or its text does not follow on from ours.
fn unfit(job: &JobView, seq: u64, text_offset: usize) -> Option<Applied> {
    if seq <= job.seq || job.status.is_terminal() {
        return Some(Applied::Stale);
    }
    if text_offset > job.text.len() || !job.text.is_char_boundary(text_offset) {
        return Some(Applied::Gap);
    }
    None
}

pub fn progress(job: &mut JobView, ev: &ProgressEvent) -> Applied {
    if let Some(unfit) = unfit(job, ev.seq, ev.text_offset) {
        return unfit;
    }
    // A new run starts its reasoning afresh (a restart normally comes as a whole `job` event;
    // this keeps two runs' reasoning apart even when it does not).
    let new_run = ev.run > job.run;
    let thinking_len = if new_run { 0 } else { job.thinking.len() };
    if ev.thinking_offset > thinking_len
        || !job
            .thinking
            .get(..thinking_len)
            .is_some_and(|t| t.is_char_boundary(ev.thinking_offset))
    {
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
    if new_run {
        job.thinking.clear();
        job.reasoning = None;
        job.run = ev.run;
    }
    // As for the text: the server's offset is where its reasoning stands, so a restart (offset
    // 0, nothing appended) clears it, and so does an attempt that does not reason.
    job.thinking.truncate(ev.thinking_offset);
    job.thinking.push_str(&ev.thinking_delta);
    job.reasoning = ev.reasoning.clone();
    job.prompt_progress = ev.prompt_progress;
    if ev.backend.is_some() {
        job.backend = ev.backend.clone();
    }
    job.waiting_for = ev.waiting_for.clone();
    job.status = ev.status;
    job.queue_position = ev.queue_position;
    job.expected_start_at = ev.expected_start_at;
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

/// A short progress event: only the text, the blocks and the numbers moved on.
pub fn delta(job: &mut JobView, ev: &ProgressDelta) -> Applied {
    if let Some(unfit) = unfit(job, ev.seq, ev.text_offset) {
        return unfit;
    }
    if let Some(patch) = &ev.html {
        if !patch.apply(&mut job.blocks) {
            return Applied::Gap;
        }
    }
    job.text.truncate(ev.text_offset);
    job.text.push_str(&ev.text_delta);
    job.progress = ev.progress();
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
    job.progress.estimated_time_remaining_low = None;
    job.progress.estimated_time_remaining_high = None;
    job.queue_position = None;
    job.expected_start_at = None;
    job.retry_at = None;
    job.error = None;
    job.failure = None;
    ended(job);
    job.seq = job.seq.max(ev.seq);
}

pub fn error(job: &mut JobView, ev: &ErrorEvent) {
    job.status = ev.status;
    job.error = Some(ev.message.clone());
    job.failure = ev.failure;
    job.text = ev.text.clone();
    job.blocks = ev.blocks.clone();
    job.queue_position = None;
    job.expected_start_at = None;
    job.retry_at = None;
    job.progress.estimated_time_remaining = None;
    job.progress.estimated_time_remaining_low = None;
    job.progress.estimated_time_remaining_high = None;
    ended(job);
    job.seq = job.seq.max(ev.seq);
}

/// What no longer holds once a job has ended: its reasoning is complete (its clock stops), and
/// it neither reads a prompt nor waits for anything.
fn ended(job: &mut JobView) {
    if let Some(reasoning) = &mut job.reasoning {
        reasoning.finished = true;
    }
    job.prompt_progress = None;
    job.waiting_for = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BlocksPatch, HtmlPatch, Progress, PromptProgress, Reasoning, WaitingFor};

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
            expected_start_at: None,
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
            thinking_offset: 0,
            thinking_delta: String::new(),
            reasoning: None,
            prompt_progress: None,
            backend: None,
            waiting_for: None,
        }
    }

    /// An event of the reasoning phase: `delta` appended to the reasoning after `offset` bytes.
    fn thought(seq: u64, offset: usize, delta: &str, tokens: u32) -> ProgressEvent {
        ProgressEvent {
            thinking_offset: offset,
            thinking_delta: delta.into(),
            reasoning: Some(Reasoning {
                tokens,
                duration_ms: u64::from(tokens) * 100,
                finished: false,
            }),
            ..ev(seq, 0, "")
        }
    }

    #[test]
    fn reasoning_is_appended_exactly_once_and_kept_apart_from_the_answer() {
        let mut j = job();
        assert_eq!(
            progress(&mut j, &thought(2, 0, "Let me", 2)),
            Applied::Updated
        );
        assert_eq!(
            progress(&mut j, &thought(3, 6, " see.", 4)),
            Applied::Updated
        );
        assert_eq!(progress(&mut j, &thought(3, 6, " see.", 4)), Applied::Stale);
        assert_eq!((j.thinking.as_str(), j.text.as_str()), ("Let me see.", ""));
        // An overlap is cut where the event says, as for the answer.
        assert_eq!(
            progress(&mut j, &thought(4, 7, "see!", 5)),
            Applied::Updated
        );
        assert_eq!(j.thinking, "Let me see!");
        // The answer begins: the event says the reasoning's length and that it is finished.
        let answer = ProgressEvent {
            thinking_offset: 11,
            reasoning: Some(Reasoning {
                tokens: 5,
                duration_ms: 900,
                finished: true,
            }),
            ..ev(5, 0, "Yes")
        };
        assert_eq!(progress(&mut j, &answer), Applied::Updated);
        assert_eq!(
            (j.thinking.as_str(), j.text.as_str()),
            ("Let me see!", "Yes")
        );
        assert!(j
            .reasoning
            .as_ref()
            .is_some_and(|r| r.finished && r.tokens == 5));
        // The server's offset is where its reasoning stands: a restart (offset 0, nothing
        // appended, no counts) clears it, as it clears the answer.
        assert_eq!(progress(&mut j, &ev(6, 0, "")), Applied::Updated);
        assert_eq!((j.thinking.as_str(), j.text.as_str()), ("", ""));
        assert_eq!(j.reasoning, None);
    }

    #[test]
    fn a_reasoning_gap_is_noticed_and_changes_nothing() {
        let mut j = job();
        progress(&mut j, &thought(2, 0, "考え", 1));
        assert_eq!(progress(&mut j, &thought(3, 20, "x", 2)), Applied::Gap);
        assert_eq!(
            progress(&mut j, &thought(3, 1, "x", 2)),
            Applied::Gap,
            "inside a character"
        );
        assert_eq!((j.thinking.as_str(), j.seq), ("考え", 2));
    }

    #[test]
    fn a_new_run_clears_the_last_runs_reasoning() {
        let mut j = job();
        progress(&mut j, &thought(2, 0, "First try", 3));
        let again = ProgressEvent {
            run: 2,
            attempt: 2,
            ..thought(3, 9, "x", 1)
        };
        assert_eq!(
            progress(&mut j, &again),
            Applied::Gap,
            "the new run has no 9 bytes yet"
        );
        let fresh = ProgressEvent {
            run: 2,
            attempt: 2,
            ..ev(3, 0, "")
        };
        assert_eq!(progress(&mut j, &fresh), Applied::Updated);
        assert_eq!(
            (j.thinking.as_str(), j.reasoning.is_none(), j.run),
            ("", true, 2)
        );
        assert_eq!(
            progress(&mut j, &thought(4, 0, "Second", 1)),
            Applied::Updated
        );
        assert_eq!(j.thinking, "Second");
    }

    #[test]
    fn phase_details_are_taken_from_each_event() {
        let mut j = JobView {
            status: JobStatus::Queued,
            ..job()
        };
        let waiting = ProgressEvent {
            status: JobStatus::Queued,
            queue_position: Some(1),
            expected_start_at: None,
            waiting_for: Some(WaitingFor::Slot {
                backends: vec!["gpu1".into(), "gpu2".into()],
            }),
            ..ev(2, 0, "")
        };
        progress(&mut j, &waiting);
        assert!(
            matches!(&j.waiting_for, Some(WaitingFor::Slot { backends }) if backends.len() == 2)
        );
        let reading = ProgressEvent {
            status: JobStatus::Loading,
            prompt_progress: Some(PromptProgress {
                processed: 31,
                total: 50,
            }),
            backend: Some("gpu2".into()),
            ..ev(3, 0, "")
        };
        progress(&mut j, &reading);
        assert_eq!(j.waiting_for, None, "no longer queued");
        assert_eq!(j.prompt_progress.map(|p| p.percent().round()), Some(62.0));
        assert_eq!(j.backend.as_deref(), Some("gpu2"));
        progress(&mut j, &ev(4, 0, "Hi"));
        assert_eq!(j.prompt_progress, None, "the prompt is read");
        assert_eq!(
            j.backend.as_deref(),
            Some("gpu2"),
            "kept when an event leaves it out"
        );
    }

    #[test]
    fn the_end_completes_the_reasoning() {
        let mut j = job();
        progress(&mut j, &thought(2, 0, "Hmm", 40));
        let end = DoneEvent {
            job_id: 1,
            post_id: 1,
            text: String::new(),
            html: String::new(),
            blocks: Vec::new(),
            stats: Default::default(),
            progress: Progress::default(),
            seq: 3,
        };
        done(&mut j, &end);
        assert!(j
            .reasoning
            .as_ref()
            .is_some_and(|r| r.finished && r.tokens == 40));
        assert_eq!(j.thinking, "Hmm", "the reasoning stays to be read");
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

    fn short(seq: u64, offset: usize, delta: &str, html: Option<HtmlPatch>) -> ProgressDelta {
        ProgressDelta {
            job_id: 1,
            post_id: 1,
            seq,
            text_offset: offset,
            text_delta: delta.into(),
            html,
            current_tokens: 3,
            tokens_per_second: 2.5,
            elapsed_time: 900,
            estimated_time_remaining: Some(100),
            estimated_time_remaining_low: Some(50),
            estimated_time_remaining_high: Some(300),
            percent: 40.0,
            last_update_at: 7,
        }
    }

    #[test]
    fn a_short_event_appends_its_text_and_blocks_or_says_why_not() {
        let mut j = job();
        let grow = |keep, tail: &str| {
            Some(HtmlPatch {
                from: 0,
                keep,
                blocks: vec![tail.into()],
            })
        };
        assert_eq!(
            delta(&mut j, &short(2, 0, "Hi", grow(0, "<p>Hi</p>"))),
            Applied::Updated
        );
        assert_eq!(
            delta(&mut j, &short(3, 2, " you", grow(5, " you</p>"))),
            Applied::Updated
        );
        assert_eq!(
            (j.text.as_str(), j.blocks.clone()),
            ("Hi you", vec!["<p>Hi you</p>".to_owned()])
        );
        assert_eq!((j.progress.current_tokens, j.seq), (3, 3));
        assert_eq!(
            delta(&mut j, &short(3, 6, "!", None)),
            Applied::Stale,
            "not newer"
        );
        assert_eq!(
            delta(&mut j, &short(4, 9, "!", None)),
            Applied::Gap,
            "text missing"
        );
        assert_eq!(
            delta(
                &mut j,
                &short(
                    4,
                    6,
                    "!",
                    Some(HtmlPatch {
                        from: 3,
                        keep: 0,
                        blocks: vec![]
                    })
                )
            ),
            Applied::Gap,
            "blocks missing"
        );
        assert_eq!(j.text, "Hi you", "nothing applied of what did not fit");
    }
}
