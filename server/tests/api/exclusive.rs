//! One server per SQLite file (issue 10): a second `aiwall` on the same database refuses to
//! start before it touches anything, and a server that cannot listen changes nothing; both
//! against the real binary, its database file and the fake Ollama.
use std::time::Duration;

use app::types::JobStatus;

use crate::{
    process::{start_refused, AppProcess},
    sse::{wait_progress_at, wait_terminal_at},
    test_app::{ai_prompt, browser, create_ai_post, fake_ollama},
};

/// Waits until the job is being written.
async fn generating(c: &reqwest::Client, url: &str, job_id: i64) {
    wait_progress_at(c, url, job_id, Duration::from_secs(10), "generating", |p| {
        p.status == JobStatus::Generating
    })
    .await;
}

async fn stored_status(dir: &std::path::Path, job_id: i64) -> JobStatus {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("wall.db").display()))
        .await
        .unwrap();
    let status = sqlx::query_scalar("SELECT status FROM ai_generation_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    status
}

#[tokio::test]
async fn a_second_server_on_the_same_database_refuses_and_the_first_finishes_its_job() {
    // About three seconds of answer: the second server comes while it is being written.
    let fake = fake_ollama(10.0, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_OLLAMA__URL", fake.url())];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let (_, job_id) = create_ai_post(&c, &app.url, &ai_prompt("slow answer")).await;
    generating(&c, &app.url, job_id).await;

    // The same file and the same port, as a second `aiwall` started by mistake would have.
    let (status, said) = start_refused(dir.path(), app.port, &env).await;

    let job = wait_terminal_at(&c, &app.url, job_id, Duration::from_secs(15)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}\n{}", app.log());
    assert!(!job.text.is_empty());
    assert!(!status.success(), "{status:?}");
    assert!(
        said.contains("another aiwall is running on the database"),
        "{said}"
    );
    assert!(said.contains("wall.db.lock"), "{said}");
    assert!(said.contains(&format!("process {}", app.pid())), "{said}");
}

#[tokio::test]
async fn a_server_that_cannot_listen_leaves_a_crashed_job_as_it_found_it() {
    let fake = fake_ollama(5.0, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_OLLAMA__URL", fake.url())];
    let mut app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let (_, job_id) = create_ai_post(&c, &app.url, &ai_prompt("interrupted")).await;
    generating(&c, &app.url, job_id).await;
    crate::deadline::eventually(
        Duration::from_secs(10),
        "the job generating in the database",
        || async {
            (stored_status(dir.path(), job_id).await == JobStatus::Generating).then_some(())
        },
    )
    .await;
    app.kill9().await;

    // Something else took the port meanwhile.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", app.port)).unwrap();
    let (status, said) = start_refused(dir.path(), app.port, &env).await;
    assert!(!status.success(), "{status:?}");
    assert!(said.contains("cannot listen on"), "{said}");
    assert_eq!(
        stored_status(dir.path(), job_id).await,
        JobStatus::Generating,
        "no recovery ran in a server that could not start"
    );

    // Once the port is free, a start recovers the job and finishes it.
    drop(squatter);
    fake.set_config(fake_ollama::FakeConfig {
        tokens_per_second: 200.0,
        length: 10,
        ..fake_ollama::FakeConfig::default()
    });
    app.restart().await;
    let job = wait_terminal_at(&c, &app.url, job_id, Duration::from_secs(15)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
}
