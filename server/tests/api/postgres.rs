//! The wall on PostgreSQL as the real binary runs it: the shared cookie key it requires, one
//! server per database, a password never shown, a kill -9 that loses nothing, and `/metrics`.
use std::time::Duration;

use app::types::{JobStatus, NewAiPost, Readiness};
use server::db::scratch::ScratchDb;

use crate::{
    deadline::eventually,
    process::{start_refused, AppProcess},
    sse::{wait_progress_at, wait_terminal_at},
    test_app::{browser, create_ai_post, fake_ollama, free_port, unused_url, TEST_COOKIE_KEY},
};

const WAIT: Duration = Duration::from_secs(20);

fn prompt(text: &str) -> NewAiPost {
    NewAiPost {
        author_name: "T".into(),
        prompt: text.into(),
        ..NewAiPost::default()
    }
}

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
async fn a_second_server_on_the_same_postgres_database_refuses_naming_the_holder() {
    let fake = fake_ollama(10.0, 30).await;
    let database = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let env = on(&database, fake.url());
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let (_, job_id) = create_ai_post(&c, &app.url, &prompt("slow answer")).await;
    wait_progress_at(&c, &app.url, job_id, WAIT, "generating", |p| {
        p.status == JobStatus::Generating
    })
    .await;

    // Another directory and port: only the database is shared.
    let elsewhere = tempfile::tempdir().unwrap();
    let (status, said) = start_refused(elsewhere.path(), free_port(), &env).await;
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("another aiwall is running on the database postgres://"),
        "{said}"
    );
    assert!(said.contains("holds its lock"), "{said}");

    let job = wait_terminal_at(&c, &app.url, job_id, WAIT).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}\n{}", app.log());
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
    let mut app = AppProcess::start(dir.path(), 0, &env).await;
    let c = browser();
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(create_ai_post(&c, &app.url, &prompt(&format!("crash test {i}"))).await);
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
    let (_, job_id) = create_ai_post(&c, &app.url, &prompt("count me")).await;
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

/// The connection holding a server's lock on `admin`'s database, if any.
async fn lock_holder(admin: &mut sqlx::PgConnection) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND classid = 24937 AND objid = 2002873452",
    )
    .fetch_optional(&mut *admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_whose_database_lock_is_taken_by_another_stops_and_a_lost_session_is_replaced() {
    use sqlx::Connection;
    let database = ScratchDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppProcess::start(dir.path(), 0, &on(&database, unused_url())).await;
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let terminate = "SELECT pg_terminate_backend($1)";

    // The session ends (a database restart would do that): nobody else wants the lock, so the
    // server takes it again on a new session and goes on.
    let first = lock_holder(&mut admin)
        .await
        .expect("the server holds the lock");
    sqlx::query(terminate)
        .bind(first)
        .execute(&mut admin)
        .await
        .unwrap();
    eventually(WAIT, "the lock taken again on a new session", || async {
        let mut admin = sqlx::PgConnection::connect(&database.url).await.ok()?;
        lock_holder(&mut admin).await.filter(|&pid| pid != first)
    })
    .await;
    assert!(
        app.wait_exit(Duration::from_millis(100)).await.is_none(),
        "still serving"
    );

    // Ended again, and another server takes the lock first: this one must stop.
    let second = lock_holder(&mut admin).await.unwrap();
    sqlx::query(terminate)
        .bind(second)
        .execute(&mut admin)
        .await
        .unwrap();
    // Its backend ends a moment after the terminate: ask until the lock is free to take.
    let deadline = std::time::Instant::now() + WAIT;
    while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(107105602333804)")
        .fetch_one(&mut admin)
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock never came free"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = app.wait_exit(WAIT).await;
    let status = status.unwrap_or_else(|| panic!("the server stopped\n{}", app.log()));
    assert!(!status.success(), "an exit that says it failed: {status:?}");
    assert!(
        app.log()
            .contains("lost this server's lock on the database"),
        "{}",
        app.log()
    );
}
