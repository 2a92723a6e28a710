//! An outage of the model server, against the real `aiwall` binary and the fake Ollama over
//! HTTP: the queue waits it out (waiting spends no attempt), says so, and resumes by itself;
//! a job fails for it only after `jobs.outage_wait_secs`.

use std::{collections::HashSet, time::Duration};

use app::types::{Failure, JobStatus, JobView, NewAiPost, WallEvent};
use fake_ollama::{FakeConfig, FakeOllama};
use tokio::time::Instant;

use crate::{
    deadline::eventually,
    process::AppProcess,
    sse::{wait_progress_at, wait_terminal_at, wall_event, SseStream},
    test_app::{create_ai_post, job_at, unused_url},
};

/// How long the fake stays away: the outage.
const OUTAGE: Duration = Duration::from_secs(30);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn ai_post(client: &reqwest::Client, url: &str, prompt: &str) -> i64 {
    let body = NewAiPost {
        author_name: "T".into(),
        prompt: prompt.into(),
        ..NewAiPost::default()
    };
    create_ai_post(client, url, &body).await.1
}

/// Whether the job waits in the queue for the model server, and says since when.
fn waits_for_server(job: &JobView) -> bool {
    job.status == JobStatus::Queued && job.unreachable_since.is_some()
}

#[tokio::test]
async fn an_outage_of_the_model_server_fails_no_job_and_the_queue_resumes_by_itself() {
    let slowish = FakeConfig {
        tokens_per_second: 10.0,
        length: 20,
        ..FakeConfig::default()
    };
    let fake = FakeOllama::start(slowish.clone()).await.unwrap();
    let addr = fake.addr();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_JOBS__CONCURRENCY", "2".into()),
        ("AIWALL_JOBS__RETRY_BASE_MS", "200".into()),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "10".into()),
        ("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "60".into()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = client();
    let mut jobs = Vec::new();
    for i in 0..7 {
        jobs.push(ai_post(&c, &app.url, &format!("outage test {i}")).await);
    }
    // Two are writing, five wait.
    for &job_id in &jobs[..2] {
        wait_progress_at(
            &c,
            &app.url,
            job_id,
            Duration::from_secs(10),
            "writing",
            |p| p.progress.current_tokens > 2,
        )
        .await;
    }
    for &job_id in &jobs[2..] {
        assert_eq!(job_at(&c, &app.url, job_id).await.status, JobStatus::Queued);
    }
    let mut wall = SseStream::open(&c, &format!("{}/api/v1/wall/events", app.url), None).await;

    fake.stop().await;
    let stopped = Instant::now();

    // The wall hears that every job waits for the model server, the two that were writing too.
    let mut waiting = HashSet::new();
    wall.until(
        Duration::from_secs(20),
        "every job waiting for the model server on the wall",
        |event| {
            let (id, status, since) = match wall_event(event) {
                WallEvent::Job(j) => (j.id, j.status, j.unreachable_since),
                WallEvent::Progress(p) => (p.job_id, p.status, p.unreachable_since),
                WallEvent::Error(e) => panic!("job {} failed during the outage: {e:?}", e.job_id),
                _ => return None,
            };
            if status == JobStatus::Queued && since.is_some() {
                waiting.insert(id);
            }
            (waiting.len() == jobs.len()).then_some(())
        },
    )
    .await;
    let views = eventually(
        Duration::from_secs(5),
        "every job waiting for the model server",
        || async {
            let mut views = Vec::new();
            for &job_id in &jobs {
                views.push(job_at(&c, &app.url, job_id).await);
            }
            views.iter().all(waits_for_server).then_some(views)
        },
    )
    .await;
    let since: HashSet<_> = views.iter().map(|j| j.unreachable_since).collect();
    assert_eq!(since.len(), 1, "one outage, one start: {views:?}");
    // The two whose replies the outage broke spent that try (a job whose reply brings the
    // server down must not do so for ever); the five that waited spent nothing.
    let attempts: Vec<_> = views.iter().map(|j| (j.attempt, j.text.as_str())).collect();
    assert_eq!(
        attempts,
        [
            (1, ""),
            (1, ""),
            (0, ""),
            (0, ""),
            (0, ""),
            (0, ""),
            (0, "")
        ]
    );

    // The outage itself.
    tokio::time::sleep_until(stopped + OUTAGE).await;
    for &job_id in &jobs {
        let j = job_at(&c, &app.url, job_id).await;
        assert!(
            waits_for_server(&j),
            "still waiting after {OUTAGE:?}: {j:?}"
        );
    }
    let fake = FakeOllama::start_on(addr, slowish).await.unwrap();

    for (i, &job_id) in jobs.iter().enumerate() {
        let j = wait_terminal_at(&c, &app.url, job_id, Duration::from_secs(60)).await;
        assert_eq!(j.status, JobStatus::Completed, "{j:?}");
        let tries = if i < 2 { 2 } else { 1 };
        assert_eq!(
            j.attempt, tries,
            "waiting for the server spent no attempt: {j:?}"
        );
        assert_eq!(j.unreachable_since, None);
    }
    assert_eq!(fake.stats().completed, 7);
}

#[tokio::test]
async fn a_job_fails_for_an_outage_only_after_outage_wait_secs() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", unused_url()),
        ("AIWALL_JOBS__OUTAGE_WAIT_SECS", "3".into()),
        ("AIWALL_JOBS__RETRY_BASE_MS", "100".into()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = client();
    let posted = Instant::now();
    let job_id = ai_post(&c, &app.url, "nobody answers").await;
    let j = eventually(
        Duration::from_secs(5),
        "the job waiting for the model server",
        || async {
            let j = job_at(&c, &app.url, job_id).await;
            assert!(!j.status.is_terminal(), "it ended at once: {j:?}");
            waits_for_server(&j).then_some(j)
        },
    )
    .await;
    assert_eq!(j.attempt, 0, "{j:?}");

    let j = wait_terminal_at(&c, &app.url, job_id, Duration::from_secs(15)).await;
    assert!(
        posted.elapsed() >= Duration::from_secs(3),
        "failed before outage_wait_secs: {:?}",
        posted.elapsed()
    );
    assert_eq!(j.status, JobStatus::Failed, "{j:?}");
    assert_eq!(j.failure, Some(Failure::Unreachable));
    assert_eq!(
        j.error.as_deref(),
        Some(
            "The model server was unreachable for 3 s while this post waited; giving up. \
             Press Retry to try again."
        )
    );
    assert_eq!((j.attempt, j.unreachable_since), (0, None), "{j:?}");
}

/// A job whose reply the model server dies under (as if the job made it run out of memory)
/// waits for it like the others, but each such try counts: after `max_attempts` it fails,
/// rather than taking the server down for ever.
#[tokio::test]
async fn a_job_whose_reply_the_server_dies_under_fails_after_max_attempts() {
    let slow = FakeConfig {
        tokens_per_second: 10.0,
        length: 200,
        ..FakeConfig::default()
    };
    let mut fake = FakeOllama::start(slow.clone()).await.unwrap();
    let addr = fake.addr();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_JOBS__MAX_ATTEMPTS", "2".into()),
        ("AIWALL_JOBS__RETRY_BASE_MS", "100".into()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = client();
    let job_id = ai_post(&c, &app.url, "the one that kills it").await;
    for try_number in 1..=2 {
        wait_progress_at(
            &c,
            &app.url,
            job_id,
            Duration::from_secs(15),
            "writing",
            |p| p.progress.current_tokens > 1,
        )
        .await;
        fake.stop().await;
        let j = eventually(
            Duration::from_secs(10),
            &format!("try {try_number} ended by the server's death"),
            || async {
                let j = job_at(&c, &app.url, job_id).await;
                (waits_for_server(&j) || j.status.is_terminal()).then_some(j)
            },
        )
        .await;
        if try_number == 1 {
            assert!(waits_for_server(&j), "{j:?}");
            assert_eq!(j.attempt, 1, "the broken try counts: {j:?}");
        } else {
            assert_eq!(j.status, JobStatus::Failed, "its last try: {j:?}");
            assert_eq!(j.attempt, 2, "{j:?}");
            assert!(
                j.error
                    .as_deref()
                    .is_some_and(|e| e.contains("the model server")),
                "{j:?}"
            );
        }
        fake = FakeOllama::start_on(addr, slow.clone()).await.unwrap();
    }
}
