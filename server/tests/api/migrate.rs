//! `aiwall migrate-to`: the previous release's committed wall moves into an empty PostgreSQL
//! database, and the wall served from there is the wall served from the SQLite file; a database
//! that is not empty is refused.
use app::types::{Post, PostPage};
use server::db::scratch::ScratchDb;

use crate::{
    process::{run_command, AppProcess},
    test_app::{unused_url, TEST_COOKIE_KEY},
};

/// The newest release's database (see `upgrade`).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/fixtures/wall-37e637c.db"
);

/// Everything a post shows that the move must keep (not the live position in the queue).
fn kept(post: &Post) -> serde_json::Value {
    let job = post.job.as_ref().map(|j| {
        serde_json::json!({
            "id": j.id, "status": j.status, "model": j.model, "max_tokens": j.max_tokens,
            "text": j.text, "blocks": j.blocks, "stats": j.stats, "error": j.error,
            "failure": j.failure, "attempt": j.attempt, "run": j.run,
        })
    });
    serde_json::json!({
        "id": post.id, "author_name": post.author_name, "author_tag": post.author_tag,
        "kind": post.kind, "text": post.text, "html": post.html, "prompt": post.prompt,
        "created_at": post.created_at, "job": job,
    })
}

async fn wall(app: &AppProcess) -> Vec<serde_json::Value> {
    let page: PostPage = reqwest::get(format!("{}/api/v1/posts?limit=50", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page.posts.iter().map(kept).collect()
}

#[tokio::test]
async fn migrate_to_moves_the_previous_releases_wall_into_postgres() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, dir.path().join("wall.db")).unwrap();
    // The key file a wall of that release keeps beside its database.
    let key = dir.path().join("wall.key");
    std::fs::write(&key, TEST_COOKIE_KEY).unwrap();
    let database = ScratchDb::create().await;
    // No model server: the unfinished jobs stay as they are while the two walls are compared.
    let base = [("AIWALL_OLLAMA__URL", unused_url())];

    let (status, said) = run_command(dir.path(), &["migrate-to", &database.url], &base).await;
    assert!(status.success(), "{said}");
    assert!(
        said.contains("aiwall: copied 6 posts, 5 jobs and 0 settings"),
        "{said}"
    );
    let hint = format!("server.cookie_key_file = {:?}", key.display().to_string());
    assert!(said.contains(&hint), "{said}");

    let (status, said) = run_command(dir.path(), &["migrate-to", &database.url], &base).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("is not empty"), "{said}");

    let mut on_sqlite = AppProcess::start(dir.path(), 0, &base).await;
    let from_sqlite = wall(&on_sqlite).await;
    on_sqlite.kill9().await;

    let mut env = base.to_vec();
    env.push(("AIWALL_DATABASE__URL", database.url.clone()));
    env.push(("AIWALL_SERVER__COOKIE_KEY_FILE", key.display().to_string()));
    let elsewhere = tempfile::tempdir().unwrap();
    let on_postgres = AppProcess::start(elsewhere.path(), 0, &env).await;
    let from_postgres = wall(&on_postgres).await;
    assert_eq!(from_sqlite.len(), 6);
    assert_eq!(from_postgres, from_sqlite);

    // New posts continue after the copied ids.
    let c = crate::test_app::browser();
    let created: Post = c
        .post(format!("{}/api/v1/posts", on_postgres.url))
        .json(&app::types::NewPost {
            author_name: "Bo".into(),
            text: "after the move".into(),
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = from_sqlite
        .iter()
        .filter_map(|p| p["id"].as_i64())
        .max()
        .unwrap();
    assert_eq!(created.id, newest + 1);
}

#[tokio::test]
async fn migrate_to_refuses_what_it_cannot_move_into() {
    let dir = tempfile::tempdir().unwrap();
    let (status, said) = run_command(dir.path(), &["migrate-to", "sqlite://other.db"], &[]).await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("is not a PostgreSQL database"), "{said}");

    // No wall where database.url says (here: wall.db in an empty directory): nothing is made.
    let (status, said) = run_command(
        dir.path(),
        &["migrate-to", "postgres://postgres@127.0.0.1:1/x"],
        &[],
    )
    .await;
    assert!(!status.success(), "{said}");
    assert!(said.contains("there is no SQLite wall at"), "{said}");
    assert!(!dir.path().join("wall.db").exists(), "no empty wall made");

    let (status, said) = run_command(dir.path(), &["migrate-to"], &[]).await;
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("usage:"), "{said}");
}
