//! What the public reads about the model server: "the model server", never its address, which
//! only the log has; and only the models the wall offers. Against the real binary.

use std::time::Duration;

use app::types::{ErrorBody, ErrorCode, JobStatus, ModelList, NewAiPost};

use crate::{
    process::AppProcess,
    sse::wait_terminal_at,
    test_app::{create_ai_post, fake_ollama, read, unused_url},
};

/// Everything a visitor can read that could name the model server: a failed job, `/readyz`,
/// the model list and the page.
async fn public_texts(base: &str, job_id: Option<i64>) -> Vec<(String, String)> {
    let c = reqwest::Client::new();
    let mut texts = Vec::new();
    for path in ["/readyz", "/api/v1/ai/models", "/"] {
        let body = c
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        texts.push((path.to_owned(), body));
    }
    if let Some(job_id) = job_id {
        let job = wait_terminal_at(&c, base, job_id, Duration::from_secs(10)).await;
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        texts.push((
            format!("job {job_id}'s error"),
            job.error.unwrap_or_default(),
        ));
    }
    texts
}

#[tokio::test]
async fn the_model_servers_address_is_in_the_log_and_in_no_public_message() {
    // A URL that answers, but not as Ollama (every path 404s without Ollama's error body), and
    // a URL where nothing listens.
    let fake = fake_ollama(200.0, 5).await;
    let wrong_path = format!("{}/not-ollama", fake.url());
    let nobody = unused_url();
    for (ollama_url, fails_a_job) in [(wrong_path, true), (nobody, false)] {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("AIWALL_OLLAMA__URL", ollama_url.clone()),
            ("AIWALL_JOBS__MAX_ATTEMPTS", "1".into()),
        ];
        let app = AppProcess::start(dir.path(), 0, &env).await;
        let job_id = if fails_a_job {
            let post = NewAiPost {
                author_name: "Eve".into(),
                prompt: "where do you live?".into(),
                ..NewAiPost::default()
            };
            Some(
                create_ai_post(&reqwest::Client::new(), &app.url, &post)
                    .await
                    .1,
            )
        } else {
            None
        };
        // host:port alone: a message that named the server without the path leaks it too.
        let address = ollama_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap();
        let texts = public_texts(&app.url, job_id).await;
        for (what, text) in &texts {
            assert!(!text.contains(address), "{what} names {address}: {text}");
        }
        let readyz = &texts[0].1;
        assert!(readyz.contains("the model server"), "{readyz}");
        assert!(
            app.log().contains(address),
            "the operator finds the address in the log:\n{}",
            app.log()
        );
    }
}

#[tokio::test]
async fn only_the_offered_models_are_listed_and_accepted() {
    // The fake has llama3.2:1b and qwen2.5:0.5b; the wall offers the first and one it lacks.
    let fake = fake_ollama(200.0, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AIWALL_OLLAMA__URL", fake.url()),
        (
            "AIWALL_OLLAMA__ALLOWED_MODELS",
            r#"["llama3.2:1b","mistral:7b"]"#.into(),
        ),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let c = reqwest::Client::new();
    let models: ModelList = read(
        c.get(format!("{}/api/v1/ai/models", app.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        models.models,
        ["llama3.2:1b"],
        "offered and installed: not qwen2.5 (installed, not offered), not mistral (not installed)"
    );
    let ask = |model: &str| {
        let body = NewAiPost {
            author_name: "Eve".into(),
            prompt: "hi".into(),
            model: Some(model.into()),
            max_tokens: None,
        };
        c.post(format!("{}/api/v1/ai/posts", app.url))
            .json(&body)
            .send()
    };
    let refused = ask("qwen2.5:0.5b").await.unwrap();
    assert_eq!(refused.status(), 400);
    let ErrorBody { error } = read(refused).await;
    assert_eq!(error.code, ErrorCode::Validation);
    assert_eq!(
        error.message,
        "The model qwen2.5:0.5b is not offered here. This wall offers these models: llama3.2:1b, mistral:7b."
    );
    assert_eq!(ask("llama3.2:1b").await.unwrap().status(), 201);
    assert_eq!(
        ask("mistral:7b").await.unwrap().status(),
        201,
        "offered: its post tells the author to pull it"
    );
    let asked = fake
        .wait_for_stats(Duration::from_secs(10), |s| s.chat_requests >= 2)
        .await
        .expect("the two accepted posts reach the model server");
    assert_eq!(
        asked.per_model.keys().collect::<Vec<_>>(),
        ["llama3.2:1b", "mistral:7b"],
        "the refused model was never asked for"
    );
}
