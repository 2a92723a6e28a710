//! The time estimates through the real server, against the fake's seeded length mix: once the
//! model has a history, a writing job's time left comes with a range around it, a queued job
//! is told when it will start, and the figures are plausible. (`jobs::calibration` checks them
//! closely, over thousands of replayed generations.)
use std::time::Duration;

use app::types::{JobEvent, JobStatus, ProgressEvent};
use fake_ollama::{FakeConfig, LengthMix};

use crate::{
    deadline::eventually,
    sse::job_event,
    test_app::{on_each_engine, spawn_app_on},
};

const WAIT: Duration = Duration::from_secs(20);

on_each_engine! {
    async fn with_a_history_a_writing_job_has_a_range_and_a_queued_one_a_start(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 100.0,
                length_mix: Some(LengthMix {
                    median: 60.0,
                    sigma: 0.5,
                    seed: 11,
                }),
                ..FakeConfig::default()
            }),
            |c| c.jobs.concurrency = 1,
        )
        .await;
        // Twelve answers to learn from (ten are needed).
        for i in 0..12 {
            let job = app.ai_post(&format!("history {i}")).await.1;
            assert_eq!(app.wait_terminal(job).await.status, JobStatus::Completed);
        }

        let first = app.ai_post("first").await.1;
        let mut stream = app
            .sse(&format!("/ai/generation/{first}/progress"), None)
            .await;
        let _second = app.ai_post("second").await.1;
        let third = app.ai_post("third").await.1;
        let posted = server::db::now_ms();
        let (start, total) = eventually(WAIT, "the third told when it starts", || async {
            let view = app.job(third).await;
            let start = view.expected_start_at.filter(|_| view.status == JobStatus::Queued)?;
            Some((start, view.progress.estimated_time_remaining?))
        })
        .await;
        // Two answers of about 60 tokens at 100 tok/s ahead of it: well under ten seconds; and
        // from posting, the time left is the wait and its own run.
        let wait = start - posted;
        assert!((0..10_000).contains(&wait), "starts in {wait} ms");
        let total = i64::try_from(total).unwrap();
        assert!(total > wait && total < wait + 5_000, "done in {total} ms");

        // (While it waits, its time left is the wait and the run, without a range.)
        let eta = stream
            .until(WAIT, "a time left with its range", |event| match job_event(event) {
                JobEvent::Progress(ProgressEvent {
                    status: JobStatus::Generating,
                    progress: p,
                    ..
                }) => p.estimated_time_remaining.map(|ms| {
                    (p.estimated_time_remaining_low, ms, p.estimated_time_remaining_high)
                }),
                _ => None,
            })
            .await;
        let (Some(low), ms, Some(high)) = eta else {
            panic!("a time left without its range: {eta:?}");
        };
        assert!(low <= ms && ms <= high && high < 10_000, "{eta:?}");

        let started = eventually(WAIT, "the third started", || async {
            let view = app.job(third).await;
            (view.status != JobStatus::Queued).then(server::db::now_ms)
        })
        .await;
        let actual = started - posted;
        assert!(
            actual <= 4 * wait + 1_000,
            "expected to start in {wait} ms, started after {actual} ms"
        );
    }
}
