//! Output without a size cap (issue 11, item 3): a default `num_predict` on every request, a
//! hard cap on the answer's bytes that holds against a bad upstream (against the real binary),
//! and a wall whose page, JSON and live snapshot fold long answers.
use std::time::Duration;

use app::types::{JobStatus, JobView, NewAiPost, Post, PostPage};
use fake_ollama::{FakeConfig, FakeOllama};

use crate::{
    process::AppProcess,
    sse::wait_terminal_at,
    test_app::{browser, create_ai_post, fast_fake, spawn_app_with},
};

/// The byte cap by default, as the shipped configuration has it.
const CAP: usize = 64 * 1024;

fn post(prompt: &str) -> NewAiPost {
    NewAiPost {
        author_name: "T".into(),
        prompt: prompt.into(),
        ..NewAiPost::default()
    }
}

#[tokio::test]
async fn a_post_without_a_max_length_asks_for_the_default_num_predict() {
    let app = spawn_app_with(Some(fast_fake()), |_| {}).await;
    let (_, job_id) = app.ai_post("#fake:tokens=2000 #fake:rate=0").await;
    let job = app.wait_terminal(job_id).await;
    let stats = job.stats.expect("completed");
    // The fake stops at the request's num_predict and says so, as Ollama does.
    assert_eq!(
        (
            stats.output_tokens,
            stats.done_reason.as_str(),
            stats.cut_at_bytes
        ),
        (Some(1024), "length", None),
        "the request carried no num_predict of 1024"
    );
    let chunks = app.fake.as_ref().unwrap().final_chunks();
    assert_eq!(chunks.last().unwrap()["eval_count"], 1024);
}

/// Starts the real binary against `fake`, writes one AI post and waits for its end.
async fn answer_from_the_real_binary(fake: &FakeOllama, prompt: &str) -> JobView {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AIWALL_OLLAMA__URL", fake.url())];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    let client = browser();
    let (_, job_id) = create_ai_post(&client, &app.url, &post(prompt)).await;
    wait_terminal_at(&client, &app.url, job_id, Duration::from_secs(30)).await
}

/// The job ended `completed` at the cap, cut there, and the model server was hung up on.
async fn assert_cut_at_the_cap(fake: &FakeOllama, job: &JobView) {
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let stats = job.stats.as_ref().unwrap();
    assert_eq!(
        (stats.done_reason.as_str(), stats.cut_at_bytes),
        ("length", Some(65_536))
    );
    assert!(
        job.text.len() <= CAP && job.text.len() > CAP - 4,
        "{} bytes kept",
        job.text.len()
    );
    let gone = fake
        .wait_for_stats(Duration::from_secs(10), |s| s.disconnected == 1)
        .await;
    assert!(gone.is_ok(), "the request was not dropped: {gone:?}");
    assert_eq!(fake.stats().completed, 0, "the upstream ran to its end");
}

#[tokio::test]
async fn an_upstream_that_streams_without_end_is_cut_at_the_byte_cap() {
    let fake = FakeOllama::start(fast_fake()).await.unwrap();
    let job = answer_from_the_real_binary(
        &fake,
        "#fake:ignore-num-predict #fake:tokens=1000000 #fake:rate=0",
    )
    .await;
    assert_cut_at_the_cap(&fake, &job).await;
}

#[tokio::test]
async fn an_upstream_that_sends_giant_chunks_is_cut_at_the_byte_cap() {
    let fake = FakeOllama::start(fast_fake()).await.unwrap();
    let job = answer_from_the_real_binary(
        &fake,
        "#fake:ignore-num-predict #fake:tokens=20 #fake:token-bytes=1000000 #fake:rate=0",
    )
    .await;
    assert_cut_at_the_cap(&fake, &job).await;
}

/// Bytes of the wall: its page, its JSON, and its live stream's first event.
const PAGE_BOUND: usize = 512 * 1024;

// Threads of its own for the server and the in-process fake: twenty answers streamed unpaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_of_the_longest_answers_is_a_page_of_bounded_size() {
    let fake = FakeConfig {
        ignore_num_predict: true,
        ..fast_fake()
    };
    let app = spawn_app_with(Some(fake), |_| {}).await;
    let page_size = app.config.limits.page_size;
    let mut jobs = Vec::new();
    for i in 0..page_size {
        jobs.push(
            app.ai_post(&format!("long {i} #fake:tokens=100000 #fake:rate=0"))
                .await,
        );
    }
    for (_, job_id) in &jobs {
        let job = app.wait_terminal(*job_id).await;
        assert_eq!(job.status, JobStatus::Completed);
    }

    let page = app.page().await;
    let json = app
        .client
        .get(app.api("/posts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    println!("page {} bytes, posts JSON {} bytes", page.len(), json.len());
    assert!(page.len() < PAGE_BOUND, "the page is {} bytes", page.len());
    assert!(
        json.len() < PAGE_BOUND,
        "the posts JSON is {} bytes",
        json.len()
    );
    let snapshot = app
        .sse("/wall/events", None)
        .await
        .next_within(Duration::from_secs(10))
        .await
        .unwrap();
    println!("wall snapshot {} bytes", snapshot.data.len());
    assert!(
        snapshot.data.len() < PAGE_BOUND,
        "the snapshot is {} bytes",
        snapshot.data.len()
    );

    // Folded, and said so; the post's own address has the whole answer.
    let listed: PostPage = serde_json::from_str(&json).unwrap();
    let (post_id, _) = jobs[0];
    let folded = listed.posts.iter().find(|p| p.id == post_id).unwrap();
    let view = folded.job.as_ref().unwrap();
    assert!(
        view.folded && view.text.len() < 8 * 1024,
        "{} bytes",
        view.text.len()
    );
    let whole: Post = app.get(&format!("/posts/{post_id}")).await;
    let whole = whole.job.unwrap();
    assert!(!whole.folded);
    assert!(whole.text.len() > CAP - 4 && whole.text.starts_with(&view.text));
}
