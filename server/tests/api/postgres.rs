//! The wall on PostgreSQL as the real binary runs it: the shared cookie key it requires, a
//! password never shown, a kill -9 that loses nothing (the instance takes its own jobs back at
//! once when it starts again), and `/metrics`. Several instances: `instances`.
use std::time::Duration;

use app::types::{JobStatus, Readiness};
use server::db::scratch::ScratchDb;

use crate::{
    deadline::eventually,
    process::{start_refused, AppProcess},
    sse::{wait_progress_at, wait_terminal_at},
    test_app::{
        ai_prompt, browser, create_ai_post, fake_ollama, free_port, unused_url, TEST_COOKIE_KEY,
    },
};

const WAIT: Duration = Duration::from_secs(20);

/// What an instance on `database` is started with, on the model server at `ollama`.
fn on(database: &ScratchDb, ollama: String) -> Vec<(&'static str, String)> {
    vec![
        ("AIWALL_DATABASE__URL", database.url.clone()),
        ("AIWALL_SERVER__COOKIE_KEY", TEST_COOKIE_KEY.into()),
        ("AIWALL_OLLAMA__URL", ollama),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "20".into()),
    ]
}

#[tokio::test]
async fn on_postgres_no_instance_starts_with_a_cookie_key_of_its_own() {
    let database = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = on(&database, unused_url());
    env.retain(|(k, _)| *k != "AIWALL_SERVER__COOKIE_KEY");
    let (status, said) = start_refused(dir.path(), 0, &env).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("same key"), "{said}");
    assert!(said.contains("AIWALL_SERVER__COOKIE_KEY"), "{said}");

    // A key file that is not there is not made up either: each instance would make its own.
    let missing = dir.path().join("shared.key");
    env.push((
        "AIWALL_SERVER__COOKIE_KEY_FILE",
        missing.display().to_string(),
    ));
    let (status, said) = start_refused(dir.path(), 0, &env).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("does not exist"), "{said}");
    assert!(!missing.exists(), "no key file was written");
}

#[tokio::test]
async fn a_postgres_password_never_shows_when_the_database_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://wall:hunter2@127.0.0.1:{}/wall", free_port());
    let env = [
        ("AIWALL_DATABASE__URL", url),
        ("AIWALL_SERVER__COOKIE_KEY", TEST_COOKIE_KEY.into()),
    ];
    let (status, said) = start_refused(dir.path(), 0, &env).await;
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("cannot open postgres://wall@127.0.0.1"),
        "{said}"
    );
    assert!(!said.contains("hunter2"), "{said}");
}

#[tokio::test]
async fn metrics_on_the_walls_own_address_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [("AIWALL_SERVER__METRICS_ADDR", format!("127.0.0.1:{port}"))];
    let (status, said) = start_refused(dir.path(), port, &env).await;
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("server.metrics_addr is the wall's own address"),
        "{said}"
    );
}

#[tokio::test]
async fn after_kill_9_on_postgres_every_job_ends_and_every_post_is_there() {
    let fake = fake_ollama(10.0, 100).await;
    let database = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = on(&database, fake.url());
    env.push(("AIWALL_JOBS__CONCURRENCY", "2".into()));
    // A lease far longer than the test: the restarted instance (same id, its host and port)
    // takes its own jobs back at once, without waiting for their leases to run out.
    env.push(("AIWALL_JOBS__LEASE_MS", "600000".into()));
    env.push(("AIWALL_JOBS__LEASE_RENEW_MS", "5000".into()));
    let mut app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(create_ai_post(&c, &app.url, &ai_prompt(&format!("crash test {i}"))).await);
    }
    // Two are writing, with progress stored; one waits.
    for (_, job_id) in &jobs[..2] {
        wait_progress_at(&c, &app.url, *job_id, WAIT, "stored progress", |p| {
            p.progress.current_tokens > 8
        })
        .await;
    }
    app.kill9().await;
    fake.set_config(fake_ollama::FakeConfig {
        tokens_per_second: 200.0,
        length: 40,
        ..fake_ollama::FakeConfig::default()
    });
    app.restart().await;
    for (post_id, job_id) in &jobs {
        let job = wait_terminal_at(&c, &app.url, *job_id, WAIT).await;
        assert_eq!(job.status, JobStatus::Completed, "{job:?}\n{}", app.log());
        let post = c
            .get(format!("{}/api/v1/posts/{post_id}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 200, "post {post_id} survived");
    }
    let first = crate::test_app::job_at(&c, &app.url, jobs[0].1).await;
    assert_eq!(first.attempt, 2, "run again from the start: {first:?}");
}

/// The value of the sample `name` (with its labels, as Prometheus prints them) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn metrics_on_their_own_address_count_jobs_streams_and_writes() {
    let fake = fake_ollama(100.0, 30).await;
    let database = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let mut env = on(&database, fake.url());
    env.push((
        "AIWALL_SERVER__METRICS_ADDR",
        format!("127.0.0.1:{metrics_port}"),
    ));
    env.push(("AIWALL_SERVER__INSTANCE_ID", "wall-a".into()));
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let ready: Readiness = c
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready.instance, "wall-a");
    let first_line = app.log().lines().next().unwrap_or_default().to_string();
    assert!(first_line.starts_with("instance=wall-a "), "{first_line}");

    // A wall watcher stays open while the job runs and ends.
    let wall = c
        .get(format!("{}/api/v1/wall/events", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wall.status(), 200);
    let (_, job_id) = create_ai_post(&c, &app.url, &ai_prompt("count me")).await;
    let job = wait_terminal_at(&c, &app.url, job_id, WAIT).await;
    assert_eq!(job.status, JobStatus::Completed);

    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let text = eventually(WAIT, "the job stream counted closed", || async {
        let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        (sample(&text, r#"aiwall_sse_streams{kind="job"}"#) == Some(0.0)).then_some(text)
    })
    .await;
    println!("/metrics after one job:\n{text}");
    let is = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    assert_eq!(is(r#"aiwall_instance{instance="wall-a"}"#), 1.0);
    assert_eq!(is(r#"aiwall_jobs{status="completed"}"#), 1.0);
    assert_eq!(is(r#"aiwall_jobs{status="queued"}"#), 0.0);
    assert_eq!(is(r#"aiwall_jobs_ended_total{status="completed"}"#), 1.0);
    assert_eq!(is("aiwall_queue_wait_seconds_count"), 1.0);
    assert_eq!(is("aiwall_time_to_first_token_seconds_count"), 1.0);
    assert_eq!(is("aiwall_generation_seconds_count"), 1.0);
    assert!(is("aiwall_tokens_per_second_sum") > 10.0, "{text}");
    assert_eq!(is(r#"aiwall_sse_streams{kind="wall"}"#), 1.0);
    assert!(is(r#"aiwall_sse_events_sent_total{kind="job"}"#) >= 2.0);
    assert!(is(r#"aiwall_sse_events_sent_total{kind="wall"}"#) >= 3.0);
    assert_eq!(is(r#"aiwall_db_writes_total{query="ai_post"}"#), 1.0);
    assert_eq!(is(r#"aiwall_db_writes_total{query="claim"}"#), 1.0);
    assert!(is(r#"aiwall_db_writes_total{query="progress"}"#) >= 1.0);
    drop(wall);

    // Not on the wall's own address: the public never sees it.
    let public = c.get(format!("{}/metrics", app.url)).send().await.unwrap();
    assert_eq!(public.status(), 404);
}
