//! Several instances of the real binary on one PostgreSQL database: a post made on one is
//! watched live on another, stopped, retried and deleted from it; a job's model server slots
//! are counted over all of them; and an instance killed mid-reply loses no job, because
//! another runs its jobs again once their leases run out.
use std::time::{Duration, Instant};

use app::types::{JobStatus, WallEvent};
use server::db::scratch::ScratchDb;

use crate::{
    process::{start_refused, AppProcess},
    sse::{wait_progress_at, wait_terminal_at, wall_event, SseStream},
    test_app::{
        ai_prompt, browser, create_ai_post, fake_ollama, job_at, unused_url, TEST_COOKIE_KEY,
    },
};

const WAIT: Duration = Duration::from_secs(30);
/// The lease the tests run with, and how often it is renewed.
pub const LEASE_MS: u64 = 3_000;
pub const RENEW_MS: u64 = 1_000;

/// What instance `id` on `database` is started with, on the model server at `ollama`.
pub fn instance(id: &str, database: &ScratchDb, ollama: String) -> Vec<(&'static str, String)> {
    vec![
        ("AIWALL_SERVER__INSTANCE_ID", id.into()),
        ("AIWALL_DATABASE__URL", database.url.clone()),
        ("AIWALL_SERVER__COOKIE_KEY", TEST_COOKIE_KEY.into()),
        ("AIWALL_OLLAMA__URL", ollama),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "20".into()),
        ("AIWALL_JOBS__LEASE_MS", LEASE_MS.to_string()),
        ("AIWALL_JOBS__LEASE_RENEW_MS", RENEW_MS.to_string()),
    ]
}

#[tokio::test]
async fn a_post_made_on_one_instance_is_watched_stopped_retried_and_deleted_from_another() {
    let fake = fake_ollama(10.0, 40).await;
    let database = ScratchDb::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // b reaches no model server: every job runs on a, whichever instance it was posted on.
    let a = AppProcess::start(dir_a.path(), 0, &instance("a", &database, fake.url())).await;
    let b = AppProcess::start(dir_b.path(), 0, &instance("b", &database, unused_url())).await;
    let c = browser();
    let mut wall_b = SseStream::open(&c, &format!("{}/api/v1/wall/events", b.url), None).await;

    let (post_id, job_id) = create_ai_post(&c, &a.url, &ai_prompt("seen everywhere")).await;
    let seen = wait_progress_at(&c, &b.url, job_id, WAIT, "writing, seen on b", |p| {
        p.progress.current_tokens >= 3
    })
    .await;
    assert_eq!(seen.backend.as_deref(), Some("ollama"), "{seen:?}");
    wall_b
        .until(WAIT, "the new post on b's wall", |e| match wall_event(e) {
            WallEvent::Post(post) => (post.id == post_id).then_some(()),
            _ => None,
        })
        .await;

    // Stop, from the instance that does not run it: a's request to the model server ends.
    let cancel = format!("{}/api/v1/ai/generation/{job_id}/cancel", b.url);
    let response = c.post(&cancel).send().await.unwrap();
    assert_eq!(response.status(), 202, "{}", b.log());
    let stopped = wait_terminal_at(&c, &b.url, job_id, WAIT).await;
    assert_eq!(
        stopped.status,
        JobStatus::Cancelled,
        "{stopped:?}\n{}",
        a.log()
    );
    assert!(!stopped.text.is_empty(), "what it wrote is kept");
    let on_a = job_at(&c, &a.url, job_id).await;
    assert_eq!(
        (on_a.status, &on_a.text),
        (JobStatus::Cancelled, &stopped.text)
    );
    let dropped = fake.wait_for_stats(WAIT, |s| s.disconnected >= 1).await;
    assert!(
        dropped.is_ok(),
        "a dropped its model server request: {dropped:?}"
    );

    // Retry from b: a runs it again, to the end, and both instances show the same answer.
    let retry = format!("{}/api/v1/ai/generation/{job_id}/retry", b.url);
    assert_eq!(c.post(&retry).send().await.unwrap().status(), 200);
    let done = wait_terminal_at(&c, &b.url, job_id, WAIT).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}\n{}", a.log());
    assert_eq!(job_at(&c, &a.url, job_id).await.text, done.text);

    // A post made on b runs on a; deleting it on b while a writes it stops a's run.
    let (post_b, job_b) =
        create_ai_post(&c, &b.url, &ai_prompt("#fake:rate=5 #fake:tokens=200")).await;
    wait_progress_at(&c, &a.url, job_b, WAIT, "writing on a", |p| {
        p.progress.current_tokens >= 2
    })
    .await;
    let disconnected = fake.stats().disconnected;
    let delete = c
        .delete(format!("{}/api/v1/posts/{post_b}", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let gone = fake
        .wait_for_stats(WAIT, |s| s.disconnected > disconnected)
        .await;
    assert!(
        gone.is_ok(),
        "a stopped writing the deleted post: {gone:?}\n{}",
        a.log()
    );
    let on_a = c
        .get(format!("{}/api/v1/posts/{post_b}", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 404);
}

#[tokio::test]
async fn an_instance_killed_mid_reply_loses_no_job_another_runs_them_again_within_the_lease() {
    let fake = fake_ollama(10.0, 60).await;
    let database = ScratchDb::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env_a = instance("a", &database, fake.url());
    // The model server runs two generations at once, over all instances.
    env_a.push(("AIWALL_JOBS__CONCURRENCY", "2".into()));
    let mut a = AppProcess::start(dir_a.path(), 0, &env_a).await;
    let c = browser();
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(
            create_ai_post(&c, &a.url, &ai_prompt(&format!("rescue me {i}")))
                .await
                .1,
        );
    }
    let mut runs = Vec::new();
    for &job in &jobs[..2] {
        let p = wait_progress_at(&c, &a.url, job, WAIT, "writing on a", |p| {
            p.progress.current_tokens >= 3
        })
        .await;
        runs.push(p.run);
    }
    let mut env_b = instance("b", &database, fake.url());
    env_b.push(("AIWALL_JOBS__CONCURRENCY", "2".into()));
    let b = AppProcess::start(dir_b.path(), 0, &env_b).await;
    let third = job_at(&c, &b.url, jobs[2]).await;
    assert_eq!(
        third.status,
        JobStatus::Queued,
        "both slots are a's: {third:?}"
    );

    a.kill9().await;
    let killed = Instant::now();
    let mut rescued = Vec::new();
    for (&job, &run) in jobs[..2].iter().zip(&runs) {
        wait_progress_at(&c, &b.url, job, WAIT, "written again on b", |p| {
            p.run > run && p.progress.current_tokens >= 1
        })
        .await;
        rescued.push(killed.elapsed());
    }
    let slowest = rescued.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_millis(LEASE_MS + 2 * RENEW_MS + 3_000),
        "rescued after {rescued:?}\n{}",
        b.log()
    );
    for &job in &jobs {
        let end = wait_terminal_at(&c, &b.url, job, WAIT).await;
        assert_eq!(end.status, JobStatus::Completed, "{end:?}\n{}", b.log());
        assert_eq!(end.stats.as_ref().and_then(|s| s.output_tokens), Some(60));
    }
    assert_eq!(
        job_at(&c, &b.url, jobs[0]).await.attempt,
        2,
        "run again from the start"
    );
    eprintln!("rescued after a kill -9: {rescued:?}");
}

#[tokio::test]
async fn ai_posts_per_minute_are_counted_over_every_instance() {
    let database = ScratchDb::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let limited = |id| {
        let mut env = instance(id, &database, unused_url());
        env.push(("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "2".into()));
        env
    };
    let a = AppProcess::start(dir_a.path(), 0, &limited("a")).await;
    let b = AppProcess::start(dir_b.path(), 0, &limited("b")).await;
    let c = browser();
    create_ai_post(&c, &a.url, &ai_prompt("one")).await;
    create_ai_post(&c, &b.url, &ai_prompt("two")).await;
    // a has seen one of this author's posts, b one: each alone would take another.
    for app in [&a, &b] {
        let refused = c
            .post(format!("{}/api/v1/ai/posts", app.url))
            .json(&ai_prompt("three"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429, "{}", app.log());
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "Retry-After: {wait}");
        let body = refused.text().await.unwrap();
        assert!(body.contains("2 AI posts per minute"), "{body}");
    }
}

#[tokio::test]
async fn a_listener_that_lost_its_connection_catches_up_and_its_watchers_get_a_snapshot() {
    use sqlx::Connection;
    let database = ScratchDb::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = AppProcess::start(dir_a.path(), 0, &instance("a", &database, unused_url())).await;
    let b = AppProcess::start(dir_b.path(), 0, &instance("b", &database, unused_url())).await;
    let c = browser();
    let mut wall_b = SseStream::open(&c, &format!("{}/api/v1/wall/events", b.url), None).await;
    let first = wall_event(&wall_b.next_within(WAIT).await.unwrap());
    assert!(matches!(first, WallEvent::Snapshot(_)), "{first:?}");

    // Every listening session ends, as a database restart or a network cut would end them.
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query ILIKE 'listen%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, [true, true], "a's and b's listeners");
    let (post_id, _) = create_ai_post(&c, &a.url, &ai_prompt("while b was not listening")).await;

    // b listens again, reads what it missed, and its watcher starts afresh; the post is on
    // its wall whether it came before the reconnection (in the snapshot) or after (a note).
    let (mut snapshot, mut post) = (false, false);
    wall_b
        .until(WAIT, "a snapshot and the post on b's wall", |e| {
            match wall_event(e) {
                WallEvent::Snapshot(s) => {
                    snapshot = true;
                    post |= s.posts.iter().any(|p| p.id == post_id);
                }
                WallEvent::Post(p) => post |= p.id == post_id,
                _ => {}
            }
            (snapshot && post).then_some(())
        })
        .await;
    assert!(b.log().contains("instance=b"), "{}", b.log());
}

#[tokio::test]
async fn an_earlier_release_and_this_ones_instances_never_share_a_database_nor_two_one_id() {
    use sqlx::Connection;
    let database = ScratchDb::create().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // What an earlier release (one server per database, no leases) holds while it runs.
    let mut earlier = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let key = 0x6169_7761_6c6c_i64;
    let took: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut earlier)
        .await
        .unwrap();
    assert!(took);
    let (status, said) =
        start_refused(dirs[0].path(), 0, &instance("a", &database, unused_url())).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("an earlier release of aiwall"), "{said}");
    earlier.close().await.unwrap();

    // With this release's instance running, an earlier release cannot take the database...
    let a = AppProcess::start(dirs[0].path(), 0, &instance("a", &database, unused_url())).await;
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let took: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(
        !took,
        "the earlier release's lock is not free while {} runs",
        a.url
    );
    // ... and a second instance with a's id is refused, naming it.
    let (status, said) =
        start_refused(dirs[1].path(), 0, &instance("a", &database, unused_url())).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains(r#"runs as "a""#), "{said}");
    AppProcess::start(dirs[2].path(), 0, &instance("b", &database, unused_url())).await;
}
