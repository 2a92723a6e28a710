//! Crashes, signals and Ollama faults, against the real `aiwall` binary, its database file and
//! the fake Ollama over HTTP.

use std::time::Duration;

use app::types::{
    ErrorBody, ErrorCode, JobEvent, JobStatus, JobView, NewAiPost, NewPost, ProgressEvent,
};
use fake_ollama::{FakeConfig, FakeOllama};

use crate::{
    deadline::eventually,
    process::AppProcess,
    sse::{job_event, progress_url, wait_progress_at, wait_terminal_at, SseStream},
    test_app::{create_ai_post, job_at, on_each_engine, read},
};

const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

fn new_ai_post(prompt: &str) -> NewAiPost {
    NewAiPost {
        author_name: "T".into(),
        prompt: prompt.into(),
        ..NewAiPost::default()
    }
}

async fn ai_post(client: &reqwest::Client, url: &str, prompt: &str) -> (i64, i64) {
    create_ai_post(client, url, &new_ai_post(prompt)).await
}

async fn job(url: &str, job_id: i64) -> JobView {
    job_at(&reqwest::Client::new(), url, job_id).await
}

/// Follows the job's stream on the server at `url` until a progress event shows `what`.
async fn wait_progress(
    url: &str,
    job_id: i64,
    within: Duration,
    what: &str,
    shows: impl Fn(&ProgressEvent) -> bool,
) -> ProgressEvent {
    wait_progress_at(&reqwest::Client::new(), url, job_id, within, what, shows).await
}

/// Follows the job's stream on the server at `url` to its end; the job's state then.
async fn wait_terminal(url: &str, job_id: i64, within: Duration) -> JobView {
    wait_terminal_at(&reqwest::Client::new(), url, job_id, within).await
}

/// Waits until the job waits to retry, and returns its state, which says why. The reason is on
/// the job's state only (its stream's progress events carry `retry_at`, not the words), so this
/// polls the job.
async fn wait_retrying(url: &str, job_id: i64, within: Duration) -> JobView {
    eventually(
        within,
        &format!("job {job_id} waiting to retry"),
        || async {
            let j = job(url, job_id).await;
            assert!(
                !j.status.is_terminal(),
                "job {job_id} ended without a retry: {j:?}"
            );
            j.retry_at.is_some().then_some(j)
        },
    )
    .await
}

/// The job's stored progress, as a restart will find it.
async fn stored_tokens(pool: &sqlx::SqlitePool, job_id: i64) -> i64 {
    sqlx::query_scalar("SELECT current_tokens FROM ai_generation_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn sqlite(dir: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("wall.db").display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn after_kill_9_every_job_ends_and_every_post_is_there() {
    let fake = crate::test_app::fake_ollama(10.0, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_JOBS__CONCURRENCY", "3".into()),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "10".into()),
    ];
    let mut app = AppProcess::start(dir.path(), 0, &env).await;
    let c = client();
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(ai_post(&c, &app.url, &format!("crash test {i}")).await);
    }
    // Three are writing, two wait in the queue.
    for (_, job_id) in &jobs[..3] {
        wait_progress(
            &app.url,
            *job_id,
            Duration::from_secs(10),
            "more than 3 tokens",
            |p| p.progress.current_tokens > 3,
        )
        .await;
    }
    // A browser watching the first job, which will reconnect as EventSource does.
    let watch_url = progress_url(&app.url, jobs[0].1);
    let mut watcher = SseStream::open(&reqwest::Client::new(), &watch_url, None).await;
    let mut seen = vec![watcher.next_within(WAIT).await.expect("the job's state")];
    // The running jobs' progress has reached the database (it is written every 500 ms), so
    // the crash interrupts jobs with stored progress.
    let pool = sqlite(dir.path()).await;
    for (_, job_id) in &jobs[..3] {
        eventually(
            Duration::from_secs(10),
            &format!("job {job_id}'s progress in the database"),
            || async { (stored_tokens(&pool, *job_id).await > 3).then_some(()) },
        )
        .await;
    }
    pool.close().await;

    app.kill9().await;
    // The watcher reads what the server sent before it died, until the connection breaks.
    seen.extend(watcher.until_broken(WAIT).await);
    let last_id = seen
        .iter()
        .rev()
        .find(|e| !e.id.is_empty())
        .map(|e| e.id.clone());
    fake.set_config(FakeConfig {
        tokens_per_second: 200.0,
        length: 40,
        ..FakeConfig::default()
    });
    app.restart().await;
    let watcher = tokio::spawn(async move {
        SseStream::open(&reqwest::Client::new(), &watch_url, last_id.as_deref())
            .await
            .collect(Duration::from_secs(30))
            .await
    });

    for (post_id, job_id) in &jobs {
        let j = wait_terminal(&app.url, *job_id, Duration::from_secs(30)).await;
        assert!(
            j.status == JobStatus::Completed
                || (j.status == JobStatus::Failed && j.error.is_some()),
            "{j:?}"
        );
        let post = reqwest::get(format!("{}/api/v1/posts/{post_id}", app.url))
            .await
            .unwrap();
        assert_eq!(post.status(), 200, "post {post_id} survived");
    }
    let interrupted = job(&app.url, jobs[0].1).await;
    assert_eq!(interrupted.status, JobStatus::Completed);
    assert_eq!(
        interrupted.attempt, 2,
        "restarted from the beginning as a second attempt"
    );
    let resumed = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the watcher got the end")
        .unwrap();
    let end = job_event(resumed.last().expect("the resumed stream has an end"));
    let JobEvent::Done(done) = end else {
        panic!("done, not {end:?}")
    };
    assert_eq!(done.text, interrupted.text);
}

on_each_engine! {
    async fn a_job_interrupted_too_often_fails_with_the_reason(engine) {
        let fake = crate::test_app::fake_ollama(5.0, 100).await;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", fake.url()),
            ("AIWALL_JOBS__MAX_ATTEMPTS", "2".into()),
        ];
        let mut app = AppProcess::start_on(engine, dir.path(), 0, &env).await;
        let (_, job_id) = ai_post(&client(), &app.url, "doomed").await;
        for _ in 0..2 {
            wait_progress(
                &app.url,
                job_id,
                Duration::from_secs(10),
                "generating",
                |p| p.status == JobStatus::Generating,
            )
            .await;
            app.kill9().await;
            app.restart().await;
        }
        let j = wait_terminal(&app.url, job_id, Duration::from_secs(10)).await;
        assert_eq!(j.status, JobStatus::Failed);
        assert!(
            j.error
                .as_deref()
                .unwrap()
                .contains("The server stopped during this generation 2 times"),
            "{j:?}"
        );
    }
}

#[tokio::test]
async fn sigterm_finishes_what_it_can_requeues_the_rest_and_exits_0() {
    let fake = crate::test_app::fake_ollama(20.0, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_SERVER__SHUTDOWN_GRACE_SECS", "3".into()),
    ];
    let mut app = AppProcess::start(dir.path(), 0, &env).await;
    let c = client();
    // One short answer (1.5 s) finishes within the grace period; one long one cannot.
    let (_, short) = ai_post(&c, &app.url, "short").await;
    let (_, long) = ai_post(&c, &app.url, "long #fake:tokens=400").await;
    wait_progress(&app.url, long, Duration::from_secs(10), "generating", |p| {
        p.status == JobStatus::Generating
    })
    .await;
    let watcher = reqwest::get(format!("{}/api/v1/wall/events", app.url))
        .await
        .unwrap();

    let sent = std::time::Instant::now();
    app.sigterm().await;
    // While it finishes, it takes no new generations.
    app.wait_for_log(
        "shutting down: finishing running generations",
        Duration::from_secs(5),
    )
    .await;
    let refused = c
        .post(format!("{}/api/v1/ai/posts", app.url))
        .json(&new_ai_post("too late"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let ErrorBody { error } = read(refused).await;
    assert_eq!(error.code, ErrorCode::Restarting);
    let status = app
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exits within the grace period and a margin");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(6),
        "took {:?}",
        sent.elapsed()
    );
    // The open SSE stream was told how soon to reconnect, then closed.
    let body = tokio::time::timeout(Duration::from_secs(2), watcher.text())
        .await
        .expect("the stream ended")
        .unwrap_or_default();
    assert!(body.contains("retry: 1000"), "{body}");

    let pool = sqlite(dir.path()).await;
    let status_of = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, JobStatus>(
                "SELECT status FROM ai_generation_jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        status_of(short).await,
        JobStatus::Completed,
        "{}",
        app.log()
    );
    assert_eq!(
        status_of(long).await,
        JobStatus::Queued,
        "handed back, not lost"
    );

    fake.set_config(FakeConfig {
        tokens_per_second: 500.0,
        ..FakeConfig::default()
    });
    app.restart().await;
    let j = wait_terminal(&app.url, long, Duration::from_secs(20)).await;
    assert_eq!(j.status, JobStatus::Completed);
}

on_each_engine! {
    async fn transient_ollama_failures_are_retried_and_shown_then_succeed(engine) {
        let fake = crate::test_app::fake_ollama(200.0, 20).await;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", fake.url()),
            ("AIWALL_JOBS__RETRY_BASE_MS", "300".into()),
            ("AIWALL_JOBS__MAX_ATTEMPTS", "4".into()),
        ];
        let app = AppProcess::start_on(engine, dir.path(), 0, &env).await;
        let (_, job_id) = ai_post(&client(), &app.url, "busy ollama #fake:fail-first=2").await;
        let retrying = wait_retrying(&app.url, job_id, Duration::from_secs(10)).await;
        assert!(
            retrying.error.as_deref().unwrap().contains("server busy"),
            "{retrying:?}"
        );
        let j = wait_terminal(&app.url, job_id, Duration::from_secs(20)).await;
        assert_eq!(j.status, JobStatus::Completed, "{j:?}");
        assert_eq!(j.attempt, 1, "a busy server costs no attempt");
        assert_eq!(fake.stats().http_errors, 2);
    }
}

on_each_engine! {
    async fn ollama_coming_back_after_refusing_connections_resumes_the_job(engine) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", format!("http://127.0.0.1:{port}")),
            ("AIWALL_JOBS__RETRY_BASE_MS", "500".into()),
            ("AIWALL_JOBS__MAX_ATTEMPTS", "6".into()),
        ];
        let app = AppProcess::start_on(engine, dir.path(), 0, &env).await;
        let (_, job_id) = ai_post(&client(), &app.url, "wait for ollama").await;
        let waiting = eventually(
            Duration::from_secs(10),
            "the job waiting for Ollama",
            || async {
                let j = job(&app.url, job_id).await;
                assert!(!j.status.is_terminal(), "{j:?}");
                (j.status == JobStatus::Queued && j.unreachable_since.is_some()).then_some(j)
            },
        )
        .await;
        assert_eq!(waiting.attempt, 0, "waiting spends no attempt: {waiting:?}");
        let _fake = FakeOllama::start_on(
            ([127, 0, 0, 1], port).into(),
            FakeConfig {
                tokens_per_second: 200.0,
                length: 10,
                ..FakeConfig::default()
            },
        )
        .await
        .unwrap();
        let j = wait_terminal(&app.url, job_id, Duration::from_secs(30)).await;
        assert_eq!((j.status, j.attempt), (JobStatus::Completed, 1), "{j:?}");
    }
}

on_each_engine! {
    async fn a_stall_is_retried_then_fails_and_a_permanent_error_fails_at_once(engine) {
        let fake = crate::test_app::fake_ollama(200.0, 20).await;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", fake.url()),
            ("AIWALL_OLLAMA__STALL_TIMEOUT_SECS", "1".into()),
            ("AIWALL_JOBS__RETRY_BASE_MS", "100".into()),
            ("AIWALL_JOBS__MAX_ATTEMPTS", "2".into()),
            (
                "AIWALL_OLLAMA__ALLOWED_MODELS",
                r#"["llama3.2:1b","not-pulled:1b"]"#.into(),
            ),
        ];
        let app = AppProcess::start_on(engine, dir.path(), 0, &env).await;
        let c = client();
        let (_, stalled) = ai_post(&c, &app.url, "stall #fake:stall-after=3").await;
        let (_, missing) = create_ai_post(
            &c,
            &app.url,
            &NewAiPost {
                model: Some("not-pulled:1b".into()),
                ..new_ai_post("hi")
            },
        )
        .await;
        let j = wait_terminal(&app.url, missing, Duration::from_secs(5)).await;
        assert_eq!(
            (j.status, j.attempt),
            (JobStatus::Failed, 1),
            "no retry for a model that is not installed"
        );
        assert!(j
            .error
            .as_deref()
            .unwrap()
            .contains("model not-pulled:1b is not installed"));
        assert_eq!(j.failure, Some(app::types::Failure::ModelMissing));
        let j = wait_terminal(&app.url, stalled, Duration::from_secs(15)).await;
        assert_eq!((j.status, j.attempt), (JobStatus::Failed, 2), "{j:?}");
        assert!(
            j.error.as_deref().unwrap().contains("stopped sending data"),
            "{j:?}"
        );
    }
}

on_each_engine! {
    async fn queued_jobs_keep_their_place_when_the_limit_is_lowered(engine) {
        let fake = crate::test_app::fake_ollama(50.0, 20).await;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", fake.url()),
            ("AIWALL_JOBS__CONCURRENCY", "1".into()),
            ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "3".into()),
        ];
        let mut app = AppProcess::start_on(engine, dir.path(), 0, &env).await;
        let c = client();
        let mut jobs = Vec::new();
        for i in 0..3 {
            jobs.push(
                ai_post(&c, &app.url, &format!("in line {i} #fake:load-ms=1500"))
                    .await
                    .1,
            );
        }
        app.kill9().await;
        app.restart_with(&[("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "1".into())])
            .await;
        let mut finished = Vec::new();
        for id in &jobs {
            let j = wait_terminal(&app.url, *id, Duration::from_secs(30)).await;
            assert_eq!(j.status, JobStatus::Completed, "{j:?}");
            finished.push(j.progress.last_update_at);
        }
        assert!(
            finished.windows(2).all(|w| w[0] <= w[1]),
            "in their order: {finished:?}"
        );
        // The lowered limit applies to new posts only.
        let third = c
            .post(format!("{}/api/v1/ai/posts", app.url))
            .json(&new_ai_post("new"))
            .send()
            .await
            .unwrap();
        assert_eq!(third.status(), 201, "nothing of theirs is waiting any more");
    }
}

#[tokio::test]
async fn the_binary_refuses_strangers_forgeries_and_excess_with_clear_answers() {
    let fake = crate::test_app::fake_ollama(5.0, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "1".into()),
        ("AIWALL_LIMITS__BODY_MAX_BYTES", "4096".into()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let (author, stranger) = (client(), client());
    let (post_id, job_id) = ai_post(&author, &app.url, "mine").await;
    let api = |path: &str| format!("{}/api/v1{path}", app.url);
    let error_of = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").is_some();
        let ErrorBody { error } = read(r).await;
        (status, retry_after, error.code, error.message)
    };

    // Another browser may not stop, retry or delete it.
    for request in [
        stranger.post(api(&format!("/ai/generation/{job_id}/cancel"))),
        stranger.post(api(&format!("/ai/generation/{job_id}/retry"))),
        stranger.delete(api(&format!("/posts/{post_id}"))),
    ] {
        let (status, _, code, message) = error_of(request.send().await.unwrap()).await;
        assert_eq!((status, code), (403, ErrorCode::Forbidden));
        assert!(message.contains("Only the author"), "{message}");
    }
    // A page on another site cannot make the author's browser do it either.
    let forged = author
        .post(api(&format!("/ai/generation/{job_id}/cancel")))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let (status, _, code, _) = error_of(forged).await;
    assert_eq!((status, code), (403, ErrorCode::Forbidden));
    // Limits: too many waiting, too large, too long.
    let (status, retry_after, code, message) = error_of(
        author
            .post(api("/ai/posts"))
            .json(&new_ai_post("again"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, retry_after, code),
        (429, true, ErrorCode::RateLimited)
    );
    assert!(message.contains("the limit is 1"), "{message}");
    let (status, _, code, message) = error_of(
        stranger
            .post(api("/posts"))
            .json(&NewPost {
                author_name: "S".into(),
                text: "x".repeat(5000),
            })
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code), (413, ErrorCode::TooLarge));
    assert!(message.contains("4 KiB"), "{message}");
    let (status, _, code, message) = error_of(
        stranger
            .post(api("/ai/posts"))
            .json(&NewAiPost {
                author_name: "S".into(),
                prompt: "p".repeat(4001),
                ..NewAiPost::default()
            })
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code), (400, ErrorCode::Validation));
    assert!(message.contains("limit is 4000"), "{message}");
    // The author's own Stop still works, and the server serves everyone else.
    assert_eq!(
        author
            .post(api(&format!("/ai/generation/{job_id}/cancel")))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        stranger
            .post(api("/posts"))
            .json(&NewPost {
                author_name: "S".into(),
                text: "hello".into(),
            })
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}
