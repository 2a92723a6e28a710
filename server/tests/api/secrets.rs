//! Secrets out of the database (issue 10): the cookie-signing key is configuration (a private
//! key file, or a key given directly), the database and its WAL are private to their owner,
//! and the author cookie is `Secure` when the wall is served over HTTPS.
use std::{os::unix::fs::PermissionsExt, path::Path};

use app::types::NewPost;
use server::{config::Config, startup::Server};

use crate::test_app::{spawn_app, spawn_app_with};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn hello() -> NewPost {
    NewPost {
        author_name: "Ann".into(),
        text: "hello".into(),
    }
}

/// The `Set-Cookie` header of a first post: the new author's cookie.
async fn author_cookie(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("a first post sets the author cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_new_database_its_wal_and_its_cookie_key_are_private_and_the_key_is_not_in_it() {
    let app = spawn_app().await;
    assert_eq!(app.post_json("/posts", &hello()).await.status(), 201);

    let dir = app.db_path.parent().unwrap();
    for file in ["wall.db", "wall.db-wal", "wall.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let key = std::fs::read_to_string(dir.join("wall.key")).unwrap();
    assert_eq!(key.trim().len(), 128, "64 bytes in hex");
    assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let pool = app.sqlite().await;
    let settings: i64 = sqlx::query_scalar("SELECT count(*) FROM settings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(settings, 0, "no secret in the database");
}

#[tokio::test]
async fn the_author_cookie_is_secure_only_when_the_wall_is_served_over_https() {
    let https = spawn_app_with(None, |config| {
        config.server.public_url = "https://wall.example".into();
    })
    .await;
    let cookie = author_cookie(https.post_json("/posts", &hello()).await).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    let unknown = spawn_app_with(None, |_| {}).await;
    let cookie = author_cookie(unknown.post_json("/posts", &hello()).await).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
}

/// Why `Server::build` refused to start, with the key settings `tweak` makes.
async fn start_error(tweak: impl FnOnce(&mut Config, &Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".parse().unwrap();
    config.database.url = format!("sqlite://{}", dir.path().join("wall.db").display());
    tweak(&mut config, dir.path());
    match Server::build(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_malformed_cookie_key_stops_the_start_with_what_to_do() {
    let said = start_error(|config, dir| {
        let file = dir.join("cookie.key");
        std::fs::write(&file, "not a key\n").unwrap();
        config.server.cookie_key_file = file.display().to_string();
    })
    .await;
    assert!(said.contains("cookie.key does not hold a key"), "{said}");
    assert!(said.contains("128 hex digits"), "{said}");

    let said = start_error(|config, _| {
        config.server.cookie_key = server::config::Secret::new("abcd");
    })
    .await;
    assert!(said.contains("AIWALL_SERVER__COOKIE_KEY"), "{said}");
    assert!(said.contains("openssl rand -hex 64"), "{said}");
}

#[tokio::test]
async fn a_key_given_directly_signs_the_cookies_and_no_key_file_is_made() {
    let key = "ab".repeat(64);
    let app = spawn_app_with(None, |config| {
        config.server.cookie_key = server::config::Secret::new(key.clone());
    })
    .await;
    let cookie = author_cookie(app.post_json("/posts", &hello()).await).await;
    // The same cookie, signed with the configured key, is accepted by a second server that
    // has that key too: the key is what the configuration says.
    let twin = spawn_app_with(None, |config| {
        config.server.cookie_key = server::config::Secret::new(key.clone());
    })
    .await;
    let value = cookie.split(';').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let posted = client
        .post(twin.api("/posts"))
        .header(reqwest::header::COOKIE, &value)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    assert!(
        posted.headers().get(reqwest::header::SET_COOKIE).is_none(),
        "the twin knew the author: no new cookie"
    );
    let post: app::types::Post = crate::test_app::read(posted).await;
    let deleted = client
        .delete(twin.api(&format!("/posts/{}", post.id)))
        .header(reqwest::header::COOKIE, &value)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!app.db_path.with_extension("key").exists());
}
