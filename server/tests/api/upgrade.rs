//! Upgrades never break a running wall: a database written by the previous release opens,
//! migrates and serves; and a value no release wrote is refused loudly, not read as a default.
//!
//! `fixtures/wall-<commit>.db` was written by the release at that commit through its HTTP API
//! against the fake Ollama: a text post, and AI posts whose jobs ended completed, failed and
//! cancelled, one generating when the server was killed with SIGKILL, and one queued behind it.
//! 2a26a00 has the first schema (`20261125000001_wall.sql`), 5a45c4d the failure classes
//! (`20261129000001_failure_class.sql`), cc7c26a the output cap (`20261130000002`), e0980dc
//! the backends and reasoning (`20261201000001`), 37e637c the leases (`20261203000001`), before
//! the fair queue's rounds (`20261205000001`). Whenever a migration is added, record one more with
//! the release before it (`fixtures/record.sh`, which says how) and list it in [`FIXTURES`];
//! never edit one.
use std::path::Path;

use app::types::{ErrorBody, ErrorCode, JobStatus, NewPost, PostKind, PostPage};
use axum::{http::header::SET_COOKIE, response::IntoResponse};
use axum_extra::extract::{
    cookie::{Cookie, Key},
    SignedCookieJar,
};

use crate::test_app::{fast_fake, read, spawn_app_with};

/// The first release's database, which also kept the cookie key in its settings.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/fixtures/wall-2a26a00.db"
);

/// Every earlier release's database, oldest first, whether that release stored the client
/// address of a job, and whether it stored the model server that ran it.
const FIXTURES: [(&str, bool, bool); 5] = [
    (FIXTURE, false, false),
    (
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/wall-5a45c4d.db"
        ),
        false,
        false,
    ),
    (
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/wall-cc7c26a.db"
        ),
        true,
        false,
    ),
    (
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/wall-e0980dc.db"
        ),
        true,
        true,
    ),
    (
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/wall-37e637c.db"
        ),
        true,
        true,
    ),
];

#[tokio::test]
async fn a_database_from_every_earlier_release_opens_migrates_and_serves() {
    for (fixture, stored_addresses, stored_backends) in FIXTURES {
        opens_migrates_and_serves(fixture, stored_addresses, stored_backends).await;
    }
}

async fn opens_migrates_and_serves(fixture: &str, stored_addresses: bool, stored_backends: bool) {
    let app = spawn_app_with(Some(fast_fake()), |config| {
        let path = config.database.url.trim_start_matches("sqlite://");
        std::fs::copy(fixture, Path::new(path)).expect("copy the fixture database");
    })
    .await;

    let page: PostPage = app.get("/posts").await;
    let kinds: Vec<(PostKind, Option<JobStatus>)> = page
        .posts
        .iter()
        .rev()
        .map(|p| (p.kind, p.job.as_ref().map(|j| j.status)))
        .collect();
    assert_eq!(kinds[0], (PostKind::Text, None));
    assert_eq!(
        kinds[1..4],
        [
            (PostKind::Ai, Some(JobStatus::Completed)),
            (PostKind::Ai, Some(JobStatus::Failed)),
            (PostKind::Ai, Some(JobStatus::Cancelled)),
        ]
    );
    assert_eq!(kinds.len(), 6);

    let oldest_first: Vec<_> = page.posts.iter().rev().collect();
    assert!(oldest_first[0].text.contains("previous release"));
    let completed = oldest_first[1].job.as_ref().unwrap();
    let stats = completed
        .stats
        .as_ref()
        .expect("the completed job's statistics");
    assert_eq!(
        (stats.output_tokens, stats.done_reason.as_str()),
        (Some(12), "stop")
    );
    // Every number an earlier release stored reads as reported; no reasoning, and the model
    // server only where that release stored it.
    assert!(
        stats.input_tokens.is_some()
            && stats.eval_duration_ns.is_some()
            && stats.total_duration_ns.is_some()
            && stats.time_to_first_token_ms.is_some(),
        "{stats:?}"
    );
    assert_eq!(
        (
            completed.backend.as_deref(),
            &completed.reasoning,
            completed.thinking.as_str()
        ),
        (stored_backends.then_some("ollama"), &None, "")
    );
    assert!(oldest_first[1]
        .html
        .as_deref()
        .is_some_and(|h| !h.is_empty()));
    let failed = oldest_first[2].job.as_ref().unwrap();
    assert!(
        failed.error.as_deref().is_some_and(|e| e.contains("400")),
        "{failed:?}"
    );
    let cancelled = oldest_first[3].job.as_ref().unwrap();
    assert_eq!(cancelled.error.as_deref(), Some("Stopped by its author."));
    assert!(
        !cancelled.text.is_empty(),
        "the text written before the Stop is kept"
    );

    // The job the crash interrupted went back to the queue at start-up, and both it and the one
    // waiting behind it now run to their end.
    for post in &oldest_first[4..] {
        let job = app.wait_terminal(post.job.as_ref().unwrap().id).await;
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        assert!(!job.text.is_empty());
    }

    // Jobs from before the client address was stored have none, and count for no address; a
    // new one stores its own.
    let db = app.sqlite().await;
    let keys: Vec<Option<String>> =
        sqlx::query_scalar("SELECT client_key FROM ai_generation_jobs ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    let stored = stored_addresses.then(|| "127.0.0.1".to_string());
    assert_eq!(keys, vec![stored; 5], "{fixture}");
    app.ai_post("after the upgrade").await;
    let newest: Option<String> =
        sqlx::query_scalar("SELECT client_key FROM ai_generation_jobs ORDER BY id DESC LIMIT 1")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(newest.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_stored_value_this_release_cannot_read_is_a_500_not_a_retry() {
    let app = spawn_app_with(Some(fast_fake()), |_| {}).await;
    let new = NewPost {
        author_name: "Ann".into(),
        text: "hello".into(),
    };
    assert_eq!(app.post_json("/posts", &new).await.status(), 201);
    // What a newer release, or a hand edit, could leave behind.
    let pool = app.sqlite().await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE posts SET kind = 'poem'")
        .execute(&mut *conn)
        .await
        .unwrap();

    let response = app.client.get(app.api("/posts")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let body: ErrorBody = read(response).await;
    assert_eq!(body.error.code, ErrorCode::Internal);
}

#[tokio::test]
async fn the_previous_releases_cookie_key_moves_out_of_the_database_and_its_authors_keep_their_posts(
) {
    // What the previous release kept: its key, and the author of the wall's first post.
    let probe = tempfile::tempdir().unwrap();
    let copy = probe.path().join("old.db");
    std::fs::copy(FIXTURE, &copy).unwrap();
    let old = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let old_key: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'cookie_key'")
        .fetch_one(&old)
        .await
        .unwrap();
    let (post_id, author_id): (i64, String) =
        sqlx::query_as("SELECT id, author_id FROM posts ORDER BY id LIMIT 1")
            .fetch_one(&old)
            .await
            .unwrap();
    old.close().await;
    // The cookie that author's browser holds, signed with that key.
    let key = Key::from(&hex::decode(&old_key).unwrap());
    let jar = SignedCookieJar::new(key).add(Cookie::new("aiwall_author", author_id));
    let response = (jar, ()).into_response();
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let app = spawn_app_with(Some(fast_fake()), |config| {
        let path = config.database.url.trim_start_matches("sqlite://");
        std::fs::copy(FIXTURE, Path::new(path)).expect("copy the fixture database");
    })
    .await;

    assert_no_settings_left(&app).await;
    let key_file = app.db_path.with_extension("key");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), old_key);
    let deleted = reqwest::Client::new()
        .delete(app.api(&format!("/posts/{post_id}")))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "the author still owns their post");
}

#[tokio::test]
async fn a_configured_key_that_replaces_the_previous_releases_keeps_the_old_one_in_a_file() {
    let new_key = "ab".repeat(64);
    let app = spawn_app_with(Some(fast_fake()), |config| {
        let path = config.database.url.trim_start_matches("sqlite://");
        std::fs::copy(FIXTURE, Path::new(path)).expect("copy the fixture database");
        config.server.cookie_key = server::config::Secret::new(new_key.clone());
    })
    .await;

    assert_no_settings_left(&app).await;
    // Not lost: going back to it is a matter of making it the key file.
    let saved = app.db_path.with_extension("key.old");
    let saved = std::fs::read_to_string(&saved).unwrap_or_else(|e| panic!("{saved:?}: {e}"));
    assert_eq!(saved.trim().len(), 128);
    assert_ne!(saved.trim(), new_key);
}

/// The old release's `settings` rows (its cookie key) are gone from the database.
async fn assert_no_settings_left(app: &crate::test_app::TestApp) {
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM settings")
        .fetch_all(&app.sqlite().await)
        .await
        .unwrap();
    assert!(left.is_empty(), "settings left in the database: {left:?}");
}
