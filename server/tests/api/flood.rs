//! Floods from one author and from one address: text posts are rate-limited per author and per
//! address, and AI posts without a cookie (a new author each time) stop at the address's cap
//! on waiting posts, counted from the key stored on each job row; a flood of model-list and
//! readiness calls is not passed on to the model servers.
use std::net::IpAddr;

use app::types::{ErrorBody, ErrorCode, NewAiPost, NewPost};
use fake_ollama::FakeConfig;

use crate::test_app::{read, spawn_app_with, TestApp};

/// A client whose connections come from `127.0.0.<n>`; `cookies`: whether it keeps the author
/// cookie (one author) or forgets it (a new author on every request).
fn client_from(n: u8, cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .cookie_store(cookies)
        .build()
        .unwrap()
}

fn text_post(text: &str) -> NewPost {
    NewPost {
        author_name: "Flood".into(),
        text: text.into(),
    }
}

/// What the server answered to one request: its status, `Retry-After` in seconds, and the
/// error's code and message when it refused.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    error: Option<(ErrorCode, String)>,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let error = if status >= 400 {
        let ErrorBody { error } = read(response).await;
        Some((error.code, error.message))
    } else {
        None
    };
    Answer {
        status,
        retry_after,
        error,
    }
}

/// Sends `n` text posts from `client` as fast as one connection goes.
async fn text_flood(app: &TestApp, client: &reqwest::Client, n: usize) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(n);
    for i in 0..n {
        let response = client
            .post(app.api("/posts"))
            .json(&text_post(&format!("flood {i}")))
            .send()
            .await
            .unwrap();
        answers.push(answer(response).await);
    }
    answers
}

async fn stored_posts(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM posts")
        .fetch_one(&app.sqlite().await)
        .await
        .unwrap()
}

/// The refusals of a flood: every answer after the first `admitted` is a 429 saying `limit`,
/// with a `Retry-After` no longer than one post's interval at `per_minute`.
fn assert_cut_off(answers: &[Answer], admitted: usize, per_minute: u64, limit: &str) {
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, admitted, "posts let through");
    assert!(
        answers[..admitted].iter().all(|a| a.status == 201),
        "the burst comes first"
    );
    for refused in &answers[admitted..] {
        assert_eq!(refused.status, 429);
        let wait = refused.retry_after.expect("Retry-After on every 429");
        assert!((1..=60 / per_minute).contains(&wait), "Retry-After {wait}");
        let (code, message) = refused.error.as_ref().unwrap();
        assert_eq!(*code, ErrorCode::RateLimited);
        assert!(message.contains(limit), "{message}");
        assert!(
            message.contains(&format!("Try again in {wait} s")),
            "{message}"
        );
    }
}

#[tokio::test]
async fn three_hundred_text_posts_from_one_author_stop_at_the_authors_rate() {
    let app = spawn_app_with(None, |c| c.limits.text_posts_per_minute = 10).await;
    let author = client_from(2, true);
    let answers = text_flood(&app, &author, 300).await;
    assert_cut_off(&answers, 10, 10, "You can write 10 posts per minute");
    assert_eq!(stored_posts(&app).await, 10, "nothing refused was stored");

    // Another author, from another address, is not affected.
    let other = client_from(3, true);
    let response = other
        .post(app.api("/posts"))
        .json(&text_post("mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn cookieless_text_posts_from_one_address_stop_at_the_addresss_rate() {
    let app = spawn_app_with(None, |c| c.limits.text_posts_per_minute = 10).await;
    // No cookie: each request is a new author, whom the per-author rate never stops.
    let flood = client_from(4, false);
    let answers = text_flood(&app, &flood, 300).await;
    assert_cut_off(
        &answers,
        30,
        30,
        "Your address can send 30 posts per minute",
    );
    assert_eq!(stored_posts(&app).await, 30);

    let neighbour = client_from(5, false);
    let response = neighbour
        .post(app.api("/posts"))
        .json(&text_post("mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "another address is not affected");
}

#[tokio::test]
async fn cookieless_ai_posts_from_one_address_stop_at_the_addresss_queue_cap() {
    // Slow answers, one at a time: what is admitted stays queued or running.
    let slow = FakeConfig {
        tokens_per_second: 2.0,
        length: 1_000,
        ..FakeConfig::default()
    };
    let app = spawn_app_with(Some(slow), |c| {
        c.jobs.concurrency = 1;
        c.limits.queued_per_author = 3;
        c.limits.queued_per_address = 4;
    })
    .await;
    let ask = |client: reqwest::Client| {
        let url = app.api("/ai/posts");
        async move {
            let body = NewAiPost {
                author_name: "Nobody".into(),
                prompt: "tell me everything".into(),
                ..NewAiPost::default()
            };
            answer(client.post(url).json(&body).send().await.unwrap()).await
        }
    };

    let flood = client_from(6, false);
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(ask(flood.clone()).await);
    }
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 4, "the address's cap, not the whole queue");
    for refused in &answers[4..] {
        assert_eq!(refused.status, 429);
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        let (code, message) = refused.error.as_ref().unwrap();
        assert_eq!(*code, ErrorCode::RateLimited);
        assert!(
            message.starts_with("Your address already has 4 AI posts waiting or being written")
                && message.contains("the limit is 4 per address"),
            "names the address's limit: {message}"
        );
    }

    // Each job row holds the address it was asked from.
    let keys: Vec<Option<String>> =
        sqlx::query_scalar("SELECT client_key FROM ai_generation_jobs ORDER BY id")
            .fetch_all(&app.sqlite().await)
            .await
            .unwrap();
    assert_eq!(keys, vec![Some("127.0.0.6".to_owned()); 4]);

    // Another address is still admitted, and an author with a cookie meets their own limit
    // first, in their own words.
    let author = client_from(7, true);
    for _ in 0..3 {
        assert_eq!(ask(author.clone()).await.status, 201);
    }
    let own = ask(author.clone()).await;
    assert_eq!(own.status, 429);
    let (_, message) = own.error.unwrap();
    assert!(message.starts_with("You already have 3"), "{message}");
}

/// The model list and `/readyz` ask the model servers, and anyone may call them: 300 calls at
/// once (150 of each, on the real binary) are all answered, while the model server is asked for
/// its models a few times, not once a call.
#[tokio::test]
async fn a_flood_of_model_list_and_readiness_calls_is_not_passed_on_to_the_model_server() {
    let fake = crate::test_app::fake_ollama(200.0, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let app =
        crate::process::AppProcess::start(dir.path(), 0, &[("AIWALL_OLLAMA__URL", fake.url())])
            .await;
    let c = reqwest::Client::new();
    let before = fake.stats().model_listings;
    let started = std::time::Instant::now();
    let calls = (0..300).map(|i| {
        let path = if i % 2 == 0 {
            "/api/v1/ai/models"
        } else {
            "/readyz"
        };
        c.get(format!("{}{path}", app.url)).send()
    });
    let answers = futures::future::join_all(calls).await;
    let seconds = started.elapsed().as_secs();
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    let asked = fake.stats().model_listings - before;
    println!("300 calls in {seconds} s: the model server listed its models {asked} times");
    // One shared refresh a second at most, and the watcher's own (every 30 s).
    assert!(
        asked <= seconds + 3,
        "{asked} listings for 300 calls in {seconds} s"
    );
}
