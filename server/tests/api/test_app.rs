//! `spawn_app`: the real server on a random port, against a fresh SQLite file (or, with
//! `spawn_app_on`, a fresh PostgreSQL database) and a fake Ollama over real HTTP; and the API as
//! a browser calls it, answers read into `app::types`.
use std::path::PathBuf;
use std::time::Duration;

use app::types::{JobView, NewAiPost, Post};
use fake_ollama::{FakeConfig, FakeOllama};
use serde::{de::DeserializeOwned, Serialize};
use server::{
    config::Config,
    db::{scratch::ScratchDb, Engine},
    startup::Server,
};
use tokio::sync::oneshot;

use crate::sse::{wait_terminal_at, SseStream};

pub struct TestApp {
    pub url: String,
    /// A client with its own cookie jar: one browser.
    pub client: reqwest::Client,
    pub fake: Option<FakeOllama>,
    pub db_path: PathBuf,
    pub config: Config,
    /// Dropped with the app, which stops the server the way SIGTERM does.
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database of an app on PostgreSQL, dropped after it.
    _scratch: Option<ScratchDb>,
}

/// A test on each engine: `async fn name(engine) { … }` becomes `name::sqlite` and
/// `name::postgres`, each running the body with its `Engine`.
macro_rules! on_each_engine {
    ($(#[$meta:meta])* async fn $name:ident($engine:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            async fn run($engine: server::db::Engine) $body

            #[tokio::test]
            async fn sqlite() {
                run(server::db::Engine::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run(server::db::Engine::Postgres).await
            }
        }
    };
}
pub(crate) use on_each_engine;

/// A cookie key for apps on PostgreSQL, where one is required.
pub const TEST_COOKIE_KEY: &str = concat!(
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
);

/// [`spawn_app_with`] on `engine`: a fresh PostgreSQL database (and the cookie key PostgreSQL
/// requires) or a fresh SQLite file.
pub async fn spawn_app_on(
    engine: Engine,
    fake: Option<FakeConfig>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    match engine {
        Engine::Sqlite => spawn_app_with(fake, tweak).await,
        Engine::Postgres => {
            let scratch = ScratchDb::create().await;
            let url = scratch.url.clone();
            let mut app = spawn_app_with(fake, |c| {
                c.database.url = url;
                c.server.cookie_key = server::config::Secret::new(TEST_COOKIE_KEY);
                tweak(c);
            })
            .await;
            app._scratch = Some(scratch);
            app
        }
    }
}

/// Fast settings for tests; `tweak` adjusts them before the server starts.
pub async fn spawn_app_with(fake: Option<FakeConfig>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = match fake {
        Some(cfg) => Some(FakeOllama::start(cfg).await.expect("start fake ollama")),
        None => None,
    };
    let db_path = dir.path().join("wall.db");
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_secs = 2;
    config.database.url = format!("sqlite://{}", db_path.display());
    config.ollama.url = match &fake {
        Some(f) => f.url(),
        None => unused_url(),
    };
    config.generation.stall_timeout_secs = 2;
    config.jobs.retry_base_ms = 50;
    config.jobs.concurrency = 4;
    // Generous limits; tests of the limits set their own.
    config.limits.ai_posts_per_minute = 10_000;
    config.limits.queued_per_author = 10_000;
    config.limits.text_posts_per_minute = 10_000;
    config.limits.queued_per_address = 10_000;
    config.limits.sse_per_client = 10_000;
    tweak(&mut config);
    let server = Server::build(config.clone()).await.expect("server starts");
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        url,
        client: browser(),
        fake,
        db_path,
        config,
        _stop: stop,
        _dir: dir,
        _scratch: None,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Some(fast_fake()), |_| {}).await
}

/// A fake Ollama writing `length` tokens at `rate` tokens per second.
pub async fn fake_ollama(rate: f64, length: u32) -> FakeOllama {
    FakeOllama::start(FakeConfig {
        tokens_per_second: rate,
        length,
        ..FakeConfig::default()
    })
    .await
    .expect("start fake ollama")
}

/// A fake Ollama that answers quickly.
pub fn fast_fake() -> FakeConfig {
    FakeConfig {
        tokens_per_second: 200.0,
        length: 20,
        ..FakeConfig::default()
    }
}

/// A URL where nothing listens.
pub fn unused_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A port on 127.0.0.1 that nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new client with its own cookie jar: another browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

impl TestApp {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// `GET /api/v1{path}`, which must succeed, read as a `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.client.get(self.api(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        read(response).await
    }

    /// The wall's page, as this browser gets it.
    pub async fn page(&self) -> String {
        let response = self.client.get(&self.url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET /: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &impl Serialize) -> reqwest::Response {
        self.client
            .post(self.api(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an AI post and returns (post id, job id).
    pub async fn ai_post(&self, prompt: &str) -> (i64, i64) {
        self.ai_post_with(NewAiPost {
            author_name: "Tester".into(),
            prompt: prompt.into(),
            model: Some("llama3.2:1b".into()),
            max_tokens: None,
        })
        .await
    }

    pub async fn ai_post_with(&self, body: NewAiPost) -> (i64, i64) {
        create_ai_post(&self.client, &self.url, &body).await
    }

    pub async fn job(&self, job_id: i64) -> JobView {
        job_at(&self.client, &self.url, job_id).await
    }

    /// Follows the job's stream to its end and returns its state then.
    pub async fn wait_terminal(&self, job_id: i64) -> JobView {
        wait_terminal_at(&self.client, &self.url, job_id, Duration::from_secs(15)).await
    }

    /// Opens an SSE stream (optionally resuming after `last_event_id`).
    pub async fn sse(&self, path: &str, last_event_id: Option<&str>) -> SseStream {
        SseStream::open(&self.client, &self.api(path), last_event_id).await
    }

    pub async fn sqlite(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db_path.display()))
            .await
            .unwrap()
    }
}

/// A response's JSON body as a `T`; a body that is not one fails the test, showing the body.
pub async fn read<T: DeserializeOwned>(response: reqwest::Response) -> T {
    let (status, url) = (response.status(), response.url().clone());
    let body = response.text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| {
        panic!(
            "{status} from {url}: not a {}: {e}\n{body}",
            std::any::type_name::<T>()
        )
    })
}

/// An AI post asking `text`, by "T", with the defaults for the rest.
pub fn ai_prompt(text: &str) -> NewAiPost {
    NewAiPost {
        author_name: "T".into(),
        prompt: text.into(),
        ..NewAiPost::default()
    }
}

/// `POST /api/v1/ai/posts` on the server at `base`, which must accept it: (post id, job id).
pub async fn create_ai_post(client: &reqwest::Client, base: &str, body: &NewAiPost) -> (i64, i64) {
    let response = client
        .post(format!("{base}/api/v1/ai/posts"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{body:?}");
    let post: Post = read(response).await;
    let job = post.job.expect("an AI post comes with its job");
    (post.id, job.id)
}

/// `GET /api/v1/ai/generation/{job_id}` on the server at `base`.
pub async fn job_at(client: &reqwest::Client, base: &str, job_id: i64) -> JobView {
    let response = client
        .get(format!("{base}/api/v1/ai/generation/{job_id}"))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "job {job_id}: {}",
        response.status()
    );
    read(response).await
}
