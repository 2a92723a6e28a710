//! `spawn_app`: the real server on a random port, against a fresh SQLite file and a fake Ollama
//! over real HTTP; and an SSE client for reading its streams.
use std::{path::PathBuf, time::Duration};

use eventsource_stream::{Event, Eventsource};
use fake_ollama::{FakeConfig, FakeOllama};
use futures::{Stream, StreamExt};
use server::{config::Config, startup::Server};
use tokio::sync::oneshot;

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
    config.ollama.stall_timeout_secs = 2;
    config.jobs.retry_base_ms = 50;
    config.jobs.concurrency = 4;
    // Generous limits; tests of the limits set their own.
    config.limits.ai_posts_per_minute = 10_000;
    config.limits.queued_per_author = 10_000;
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
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

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(self.api(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.api(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an AI post and returns (post id, job id).
    pub async fn ai_post(&self, prompt: &str) -> (i64, i64) {
        self.ai_post_with(serde_json::json!({ "author_name": "Tester", "prompt": prompt, "model": "llama3.2:1b" })).await
    }

    pub async fn ai_post_with(&self, body: serde_json::Value) -> (i64, i64) {
        let response = self.post_json("/ai/posts", body).await;
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        let post: serde_json::Value = response.json().await.unwrap();
        (
            post["id"].as_i64().unwrap(),
            post["job"]["id"].as_i64().unwrap(),
        )
    }

    pub async fn job(&self, job_id: i64) -> serde_json::Value {
        self.client
            .get(self.api(&format!("/ai/generation/{job_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the job reaches a terminal status and returns its state.
    pub async fn wait_terminal(&self, job_id: i64) -> serde_json::Value {
        for _ in 0..400 {
            let job = self.job(job_id).await;
            if matches!(
                job["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {job_id} did not finish: {:?}", self.job(job_id).await);
    }

    /// Opens an SSE stream (optionally resuming after `last_event_id`).
    pub async fn sse(&self, path: &str, last_event_id: Option<&str>) -> SseStream {
        let mut request = self.client.get(self.api(path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        SseStream {
            inner: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    pub async fn sqlite(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db_path.display()))
            .await
            .unwrap()
    }
}

pub struct SseStream {
    inner: std::pin::Pin<
        Box<
            dyn Stream<Item = Result<Event, eventsource_stream::EventStreamError<reqwest::Error>>>
                + Send,
        >,
    >,
}

impl SseStream {
    /// The next event, or `None` when the stream ended; panics after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Event> {
        match tokio::time::timeout(timeout, self.inner.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(e))) => panic!("SSE error: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no SSE event within {timeout:?}"),
        }
    }

    /// Every event until the stream ends.
    pub async fn collect(mut self, timeout: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next_within(timeout).await {
            events.push(e);
        }
        events
    }
}
