//! A job's stored row as a card draws it: the mapping from the data layer's rows to the
//! [`JobView`] the browser reads.
use app::types::{FinalStats, JobStatus, JobView, Progress, Reasoning};

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
        expected_start_at: None,
        progress: progress(row),
        text: row.partial_text.clone(),
        blocks: crate::markdown::blocks(&row.partial_text),
        stats: stats(row),
        error: row.error.clone(),
        failure: row.failure,
        attempt: row.attempt,
        run: row.runs,
        retry_at: row.retry_at,
        unreachable_since: None,
        model_loaded: None,
        seq: first_seq(row),
        folded: false,
        thinking: row.thinking.clone(),
        reasoning: reasoning(row),
        prompt_progress: None,
        backend: row.backend.clone(),
        waiting_for: None,
    }
}

/// A stored state's sequence number: newer than anything published while the job ran, since
/// the hub numbers a job's changes from the time it started tracking it, in microseconds.
fn first_seq(row: &JobRow) -> u64 {
    u64::try_from(row.last_update_at)
        .unwrap_or_default()
        .saturating_mul(1000)
}

/// The seed's live progress fields as stored.
fn progress(row: &JobRow) -> Progress {
    Progress {
        current_tokens: row.current_tokens,
        tokens_per_second: row.tokens_per_second,
        elapsed_time: row.elapsed_time,
        estimated_time_remaining: row.estimated_time_remaining,
        // Not stored: the next live update brings it.
        estimated_time_remaining_low: None,
        estimated_time_remaining_high: None,
        percent: row.percent,
        last_update_at: row.last_update_at,
    }
}

/// A stored job's reasoning, when it reasoned: complete once the job is no longer running.
fn reasoning(row: &JobRow) -> Option<Reasoning> {
    row.thinking_tokens.map(|tokens| Reasoning {
        tokens,
        duration_ms: row.thinking_ms.unwrap_or_default(),
        finished: !row.partial_text.is_empty() || !row.status.is_running(),
    })
}

/// The model server's statistics, once the job completed: what it did not report stays `None`.
fn stats(row: &JobRow) -> Option<FinalStats> {
    (row.status == JobStatus::Completed).then(|| FinalStats {
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        total_tokens: row.total_tokens,
        time_to_first_token_ms: row.time_to_first_token_ms,
        load_duration_ns: row.load_duration_ns,
        prompt_eval_duration_ns: row.prompt_eval_duration_ns,
        eval_duration_ns: row.eval_duration_ns,
        total_duration_ns: row.total_duration_ns,
        done_reason: row.done_reason.clone().unwrap_or_default(),
        cut_at_bytes: row.cut_at_bytes,
    })
}

#[cfg(test)]
mod tests {
    use app::types::{FinalStats, JobStatus, Progress};

    use super::job_view;
    use crate::db::{testing::each_engine, JobCompletion, NewAiPostRow};

    #[tokio::test]
    async fn a_completed_row_shows_its_statistics_and_a_queued_one_its_place() {
        for (db, _keep) in each_engine().await {
            let new = NewAiPostRow {
                author_id: "a1",
                author_name: "Ann",
                prompt: "p",
                model: "m",
                max_tokens: Some(50),
                client_key: None,
                queue_key: "a1",
            };
            let queued = db.insert_ai_post(new).await.unwrap().job.unwrap();
            let view = job_view(&queued, Some(3));
            assert_eq!(
                (
                    view.status,
                    view.queue_position,
                    view.max_tokens,
                    view.stats
                ),
                (JobStatus::Queued, Some(3), Some(50), None)
            );

            db.claim_job(queued.id, &crate::db::testing::ANY_SLOT)
                .await
                .unwrap();
            let stats = FinalStats {
                input_tokens: Some(7),
                output_tokens: Some(3),
                total_tokens: Some(10),
                time_to_first_token_ms: Some(12),
                eval_duration_ns: Some(123_456_789),
                done_reason: "stop".into(),
                ..Default::default()
            };
            let progress = Progress {
                current_tokens: 3,
                elapsed_time: 1_500,
                ..Default::default()
            };
            let completion = JobCompletion {
                run: 1,
                text: "Hi there",
                stats: &stats,
                progress: &progress,
                thinking: "",
                reasoning: None,
            };
            let done = db
                .complete_job(queued.id, completion)
                .await
                .unwrap()
                .unwrap();
            let view = job_view(&done, Some(1));
            assert_eq!(view.queue_position, None, "only while queued");
            assert_eq!(view.stats.as_ref(), Some(&stats));
            assert_eq!(
                (view.text.as_str(), view.run, view.attempt),
                ("Hi there", 1, 1)
            );
            assert_eq!(
                (
                    view.progress.percent,
                    view.progress.elapsed_time,
                    view.progress.current_tokens
                ),
                (100.0, 1_500, 3)
            );
            assert!(view.seq >= 1_000 * u64::try_from(done.last_update_at).unwrap());
        }
    }
}
