//! The generation pipeline end to end over real HTTP: the server streams from the fake Ollama,
//! persists throttled progress, and pushes it to SSE watchers.

use std::time::Duration;

use app::types::{
    EventName, Failure, JobEvent, JobStatus, JobView, NewAiPost, Post, PostPage, ProgressEvent,
    WallEvent,
};
use fake_ollama::FakeConfig;
use serde::Deserialize;
use server::db::Engine;

use crate::{
    sse::{job_event, wall_event},
    test_app::{
        ai_prompt, browser, create_ai_post, fast_fake, on_each_engine, spawn_app_on, TestApp,
    },
};

const WAIT: Duration = Duration::from_secs(10);

/// Follows a job's SSE stream to its end: (progress events, the terminal event and its id).
async fn follow(app: &TestApp, job_id: i64) -> (Vec<ProgressEvent>, (JobEvent, String)) {
    let events = app
        .sse(&format!("/ai/generation/{job_id}/progress"), None)
        .await
        .collect(WAIT)
        .await;
    let (last, before) = events.split_last().expect("at least a terminal event");
    let progress = before
        .iter()
        .map(|e| match job_event(e) {
            JobEvent::Progress(p) => p,
            other => panic!("only progress before the end, not {other:?}"),
        })
        .collect();
    let end = job_event(last);
    assert!(
        end.is_terminal(),
        "the stream ends with done or error: {end:?}"
    );
    (progress, (end, last.id.clone()))
}

/// The statistics of the fake's final chunk, in Ollama's own field names.
#[derive(Debug, Deserialize)]
struct OllamaFinalChunk {
    prompt_eval_count: u32,
    eval_count: u32,
    load_duration: u64,
    prompt_eval_duration: u64,
    eval_duration: u64,
    total_duration: u64,
}

on_each_engine! {
    async fn a_generation_streams_monotonic_progress_then_done_with_ollamas_statistics(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 100.0,
                length: 60,
                ..FakeConfig::default()
            }),
            |_| {},
        )
        .await;
        let (post_id, job_id) = app
            .ai_post_with(NewAiPost {
                author_name: "Ann".into(),
                prompt: "Tell me about the sea".into(),
                max_tokens: Some(200),
                ..NewAiPost::default()
            })
            .await;
        let (progress, (done, done_id)) = follow(&app, job_id).await;

        let JobEvent::Done(done) = done else {
            panic!("done, not {done:?}")
        };
        assert_eq!(done_id, "end");
        let expected_text = FakeConfig {
            length: 60,
            ..FakeConfig::default()
        }
        .text();

        // Monotonic progress, and the deltas add up to the text exactly.
        assert!(progress.len() >= 5, "several updates: {}", progress.len());
        let mut text = String::new();
        let (mut tokens, mut percent) = (0, 0.0);
        // Every progress event carries the seed's fields (`tokens_per_second`, `elapsed_time`,
        // `last_update_at`...): reading it into `ProgressEvent` fails without them.
        for p in &progress {
            assert_eq!(
                p.text_offset,
                text.len(),
                "each event continues where the last ended"
            );
            text.push_str(&p.text_delta);
            let (t, pc) = (p.progress.current_tokens, p.progress.percent);
            assert!(
                t >= tokens && pc >= percent,
                "monotonic: {t} after {tokens}, {pc} after {percent}"
            );
            assert!(pc < 100.0, "never 100 before done");
            (tokens, percent) = (t, pc);
        }
        assert_eq!(text, expected_text);
        // The model's first answer: its max length bounds the bar, but says nothing of when it
        // ends ("estimating…"; `estimates.rs` has the time left once there is history).
        assert!(
            progress
                .iter()
                .all(|p| p.progress.estimated_time_remaining.is_none()),
            "no time left without history"
        );
        assert!(
            progress.iter().any(|p| p.progress.percent > 0.0),
            "a percent from the max length"
        );

        // The statistics are the fake's final chunk.
        let finals = app.fake.as_ref().unwrap().final_chunks();
        let last: OllamaFinalChunk = serde_json::from_value(finals.last().unwrap().clone()).unwrap();
        let stats = &done.stats;
        assert_eq!(stats.input_tokens, Some(last.prompt_eval_count));
        assert_eq!(stats.output_tokens, Some(last.eval_count));
        assert_eq!(
            stats.total_tokens,
            Some(last.prompt_eval_count + last.eval_count)
        );
        for (what, ours, theirs) in [
            ("load_duration", stats.load_duration_ns, last.load_duration),
            (
                "prompt_eval_duration",
                stats.prompt_eval_duration_ns,
                last.prompt_eval_duration,
            ),
            ("eval_duration", stats.eval_duration_ns, last.eval_duration),
            (
                "total_duration",
                stats.total_duration_ns,
                last.total_duration,
            ),
        ] {
            assert_eq!(ours, Some(theirs), "{what}");
        }
        assert_eq!(stats.done_reason, "stop");

        // The post shows the content; the job row keeps everything.
        let post: Post = app.get(&format!("/posts/{post_id}")).await;
        assert_eq!(post.text, expected_text);
        let job = post.job.expect("an AI post has its job");
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.progress.percent, 100.0);

        // A finished job gives its terminal event at once; a reconnect after it gets 204.
        let (progress, (done, _)) = follow(&app, job_id).await;
        assert!(progress.is_empty());
        assert!(matches!(done, JobEvent::Done(_)), "{done:?}");
        let again = app
            .client
            .get(app.api(&format!("/ai/generation/{job_id}/progress")))
            .header("Last-Event-ID", "end")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 204);
    }
}

on_each_engine! {
    async fn sse_responses_carry_headers_against_buffering(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let (_, job_id) = app.ai_post("hi").await;
        let response = app
            .client
            .get(app.api(&format!("/ai/generation/{job_id}/progress")))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["x-accel-buffering"], "no");
        assert_eq!(headers["cache-control"], "no-cache");
    }
}

/// The job fails with the detail saying `says` and the class `class`, on the stream and stored.
async fn failed_with(app: &TestApp, prompt: &str, model: &str, says: &str, class: Failure) {
    let (_, job_id) = app
        .ai_post_with(NewAiPost {
            author_name: "Ann".into(),
            prompt: prompt.into(),
            model: Some(model.into()),
            max_tokens: None,
        })
        .await;
    let (_, (end, _)) = follow(app, job_id).await;
    let JobEvent::Error(end) = end else {
        panic!("error, not {end:?}")
    };
    let message = end.message;
    assert!(message.contains(says), "{message:?} should say {says:?}");
    assert_eq!(end.failure, Some(class), "{message}");
    let job = app.job(job_id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error, Some(message));
    assert_eq!(job.failure, Some(class));
}

on_each_engine! {
    async fn every_ollama_failure_ends_as_a_clear_error(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |c| {
            c.jobs.max_attempts = 1;
            c.generation.allowed_models = vec!["llama3.2:1b".into(), "nonexistent:7b".into()];
        })
        .await;
        failed_with(
            &app,
            "hi",
            "nonexistent:7b",
            "model nonexistent:7b is not installed on the model server",
            Failure::ModelMissing,
        )
        .await;
        failed_with(
            &app,
            "hi #fake:error-after=5",
            "llama3.2:1b",
            "an error was encountered while running the model",
            Failure::BrokeOff,
        )
        .await;
        failed_with(
            &app,
            "hi #fake:stall-after=3",
            "llama3.2:1b",
            "stopped sending data",
            Failure::Stalled,
        )
        .await;
        failed_with(
            &app,
            "hi #fake:status=500 #fake:message=GPU%20on%20fire",
            "llama3.2:1b",
            "GPU on fire",
            Failure::Busy,
        )
        .await;
        failed_with(
            &app,
            "hi #fake:status=400 #fake:message=think%20value%20not%20supported",
            "llama3.2:1b",
            "think value not supported",
            Failure::Refused,
        )
        .await;

        // An unreachable server is waited for, `jobs.outage_wait_secs` long.
        let unreachable = spawn_app_on(engine, None, |c| c.jobs.outage_wait_secs = 1).await;
        let wait = unreachable.config.jobs.outage_wait_secs;
        failed_with(
            &unreachable,
            "hi",
            "llama3.2:1b",
            &format!("The model server was unreachable for {wait} s while this post waited"),
            Failure::Unreachable,
        )
        .await;
        let wall: PostPage = unreachable.get("/posts").await;
        let address = unreachable.config.ollama.url.trim_start_matches("http://");
        assert!(
            !serde_json::to_string(&wall).unwrap().contains(address),
            "the model server's address is for the log only"
        );
    }
}

on_each_engine! {
    async fn a_generation_past_its_deadline_fails(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 10.0,
                length: 100,
                ..FakeConfig::default()
            }),
            |c| {
                c.generation.deadline_secs = 1;
                c.jobs.max_attempts = 1;
            },
        )
        .await;
        failed_with(
            &app,
            "a long one",
            "llama3.2:1b",
            "the reply took longer than the 1 s deadline",
            Failure::TooSlow,
        )
        .await;
        let job_id = app.ai_post("again").await.1;
        let job = app.wait_terminal(job_id).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(
            job.error
                .as_deref()
                .unwrap()
                .to_lowercase()
                .contains("longer than"),
            "{job:?}"
        );
    }
}

on_each_engine! {
    async fn reconnecting_with_last_event_id_misses_nothing_and_doubles_nothing(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 60.0,
                length: 90,
                ..FakeConfig::default()
            }),
            |_| {},
        )
        .await;
        let (_, job_id) = app.ai_post("resume me").await;
        let path = format!("/ai/generation/{job_id}/progress");
        let mut text = String::new();
        let mut last_id = None;
        let mut stream = app.sse(&path, None).await;
        // Read a few events, then drop the connection mid-generation.
        let mut seen = 0;
        while seen < 4 {
            let e = stream.next_within(WAIT).await.unwrap();
            if let JobEvent::Progress(p) = job_event(&e) {
                assert_eq!(p.text_offset, text.len());
                text.push_str(&p.text_delta);
                last_id = Some(e.id.clone());
                seen += 1;
            }
        }
        // A second watcher shows when the job has written past what the first one read: the first
        // misses that text while it is away.
        let mut witness = app.sse(&path, None).await;
        drop(stream);
        witness
            .until(WAIT, "text past the first watcher's", |e| {
                match job_event(e) {
                    JobEvent::Progress(p) => {
                        (p.text_offset + p.text_delta.len() > text.len()).then_some(())
                    }
                    end => panic!("the job ended before the first watcher missed anything: {end:?}"),
                }
            })
            .await;
        drop(witness);
        let resumed = app.sse(&path, last_id.as_deref()).await.collect(WAIT).await;
        for e in &resumed {
            if let JobEvent::Progress(p) = job_event(e) {
                assert_eq!(
                    p.text_offset,
                    text.len(),
                    "resumes exactly where it stopped"
                );
                text.push_str(&p.text_delta);
            }
        }
        let JobEvent::Done(done) = job_event(resumed.last().unwrap()) else {
            panic!("the resumed stream ends with done: {resumed:?}")
        };
        assert_eq!(text, done.text);
    }
}

on_each_engine! {
    async fn a_hundred_watchers_all_get_the_same_terminal_event(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 50.0,
                length: 40,
                ..FakeConfig::default()
            }),
            |_| {},
        )
        .await;
        let (_, job_id) = app.ai_post("popular").await;
        let path = format!("/ai/generation/{job_id}/progress");
        let mut watchers = Vec::new();
        for _ in 0..100 {
            watchers.push(app.sse(&path, None).await);
        }
        let ends = futures::future::join_all(
            watchers
                .into_iter()
                .map(|w| async move { w.collect(WAIT).await.pop().unwrap() }),
        )
        .await;
        let first = &ends[0];
        assert!(matches!(job_event(first), JobEvent::Done(_)), "{first:?}");
        for end in &ends {
            assert_eq!((&end.event, &end.data), (&first.event, &first.data));
        }
    }
}

/// SQLite only: the writes are counted by a trigger.
#[tokio::test]
async fn progress_is_written_at_most_once_per_interval_plus_status_changes() {
    // 3 s of generation at 100 tokens/s, with a 500 ms write interval and many watchers.
    let app = spawn_app_on(
        Engine::Sqlite,
        Some(FakeConfig {
            tokens_per_second: 100.0,
            length: 300,
            ..FakeConfig::default()
        }),
        |_| {},
    )
    .await;
    let pool = app.sqlite().await;
    sqlx::query("CREATE TABLE job_writes (n INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TRIGGER count_job_writes AFTER UPDATE ON ai_generation_jobs BEGIN INSERT INTO job_writes VALUES (1); END")
        .execute(&pool)
        .await
        .unwrap();
    let (_, job_id) = app.ai_post("count my writes").await;
    let path = format!("/ai/generation/{job_id}/progress");
    let mut watchers = Vec::new();
    for _ in 0..20 {
        watchers.push(app.sse(&path, None).await);
    }
    for w in watchers {
        w.collect(WAIT).await;
    }
    let job = app.job(job_id).await;
    assert_eq!(job.status, JobStatus::Completed);
    let writes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_writes")
        .fetch_one(&pool)
        .await
        .unwrap();
    let seconds = job.progress.elapsed_time as f64 / 1000.0;
    // claim (loading) + generating + completion are status changes; the rest is throttled.
    let allowed = (seconds / 0.5).ceil() as i64 + 3;
    println!("{writes} writes in {seconds:.2} s (allowed {allowed})");
    assert!(
        writes <= allowed,
        "{writes} writes in {seconds:.2} s; at most {allowed} allowed"
    );
    assert!(
        writes >= 5,
        "progress is persisted during the generation, not only at the end ({writes})"
    );
}

on_each_engine! {
    async fn the_wall_stream_starts_with_a_snapshot_then_carries_posts_and_progress(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let mut wall = app.sse("/wall/events", None).await;
        let first = wall_event(&wall.next_within(WAIT).await.unwrap());
        assert!(matches!(first, WallEvent::Snapshot(_)), "{first:?}");
        let (post_id, job_id) = app.ai_post("on the wall").await;
        let mut names = Vec::new();
        loop {
            let event = wall_event(&wall.next_within(WAIT).await.unwrap());
            names.push(event.name());
            match event {
                WallEvent::Post(post) => assert_eq!(post.id, post_id),
                WallEvent::Done(done) => {
                    assert_eq!(done.job_id, job_id);
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(names[0], EventName::Job, "the new job is announced");
        assert!(
            names.contains(&EventName::Post) && names.contains(&EventName::Progress),
            "{names:?}"
        );
    }
}

on_each_engine! {
    async fn the_wall_gets_each_settled_block_of_the_answer_once_and_ends_with_the_servers_rendering(engine) {
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let mut wall = app.sse("/wall/events", None).await;
        wall.next_within(WAIT).await.unwrap();
        let (_, job_id) = app
            .ai_post(
                "md #fake:rate=100 #fake:tokens=11 \
                 #fake:output=%23 Title%0A%0AFirst paragraph here.%0A%0A- a%0A- b%0A%0ALast words",
            )
            .await;
        let mut blocks: Vec<String> = Vec::new();
        let mut sent = Vec::new();
        let done = loop {
            match wall_event(&wall.next_within(WAIT).await.unwrap()) {
                WallEvent::Job(view) if view.id == job_id => blocks = view.blocks,
                WallEvent::Progress(p) if p.job_id == job_id => {
                    if let Some(patch) = p.html {
                        assert!(patch.apply(&mut blocks), "every patch fits: {patch:?}");
                        sent.extend(patch.blocks);
                    }
                }
                WallEvent::Done(done) if done.job_id == job_id => break done,
                _ => {}
            }
        };
        assert_eq!(
            done.blocks,
            [
                "<h1>Title</h1>\n",
                "<p>First paragraph here.</p>\n",
                "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n",
                "<p>Last words</p>\n"
            ]
        );
        assert_eq!(
            blocks, done.blocks,
            "the patches add up to the final rendering"
        );
        assert_eq!(done.html, done.blocks.concat());
        let title_sent = sent
            .iter()
            .filter(|b| b.as_str() == "<h1>Title</h1>\n")
            .count();
        assert_eq!(
            title_sent, 1,
            "a settled block crosses the wire once: {sent:#?}"
        );
        assert_eq!(
            app.job(job_id).await.blocks,
            done.blocks,
            "GET renders the same"
        );
    }
}

/// A wall with one generation slot, held for five seconds by the first AI post of Ann (who has
/// the cookie, from an earlier post: her posts wait in her own turns) while a line forms behind
/// it: the app, and that job once claimed.
async fn one_slot_held_by_ann(engine: Engine) -> (TestApp, i64) {
    let app = spawn_app_on(
        engine,
        Some(FakeConfig {
            tokens_per_second: 100.0,
            length: 10,
            ..FakeConfig::default()
        }),
        |c| c.jobs.concurrency = 1,
    )
    .await;
    let hello = serde_json::json!({"author_name": "Ann", "text": "hello"});
    assert_eq!(app.post_json("/posts", &hello).await.status(), 201);
    let a1 = app.ai_post("first #fake:rate=10 #fake:tokens=50").await.1;
    crate::deadline::eventually(WAIT, "Ann's first claimed", || async {
        (app.job(a1).await.status != JobStatus::Queued).then_some(())
    })
    .await;
    (app, a1)
}

/// The jobs' places in the line, in the order given.
async fn places(app: &TestApp, ids: &[i64]) -> Vec<Option<u32>> {
    let mut places = Vec::new();
    for &id in ids {
        places.push(app.job(id).await.queue_position);
    }
    places
}

on_each_engine! {
    async fn queued_jobs_know_their_place_and_clients_are_served_in_turn(engine) {
        let (app, a1) = one_slot_held_by_ann(engine).await;
        // Bob has the cookie too (from an earlier post): his posts wait in his own turns. (A
        // browser's very first post, without it, waits in its address's.)
        let bob = browser();
        let hello = serde_json::json!({"author_name": "Bob", "text": "hello"});
        let response = bob.post(app.api("/posts")).json(&hello).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let a2 = app.ai_post("second").await.1;
        let a3 = app.ai_post("third").await.1;
        assert_eq!(places(&app, &[a2, a3]).await, [Some(1), Some(2)]);

        let b1 = create_ai_post(&bob, &app.url, &ai_prompt("Bob's first")).await.1;
        // No cookie: each post makes a new author, but both wait in their address's turn.
        let anonymous = reqwest::Client::new();
        let c1 = create_ai_post(&anonymous, &app.url, &ai_prompt("one")).await.1;
        let c2 = create_ai_post(&anonymous, &app.url, &ai_prompt("two")).await.1;
        assert_eq!(
            places(&app, &[a2, b1, c1, a3, c2]).await,
            [Some(1), Some(2), Some(3), Some(4), Some(5)],
            "everyone's first, then everyone's second: Ann's third went from 2nd to 4th"
        );

        let mut finished = Vec::new();
        for id in [a1, a2, a3, b1, c1, c2] {
            let job = app.wait_terminal(id).await;
            assert_eq!(job.status, JobStatus::Completed);
            finished.push((job.progress.last_update_at, id));
        }
        finished.sort_unstable();
        let order: Vec<i64> = finished.into_iter().map(|(_, id)| id).collect();
        assert_eq!(order, [a1, a2, b1, c1, a3, c2], "run in the order of their places");
    }
}

on_each_engine! {
    async fn a_client_taking_a_fresh_cookie_after_each_post_without_one_gains_no_turn(engine) {
        let (app, _a1) = one_slot_held_by_ann(engine).await;
        let a2 = app.ai_post("second").await.1;
        // Each browser posts once without the cookie (and gets one), once with it, and is
        // thrown away: four posts, each a turn after the last.
        let mut theirs = Vec::new();
        for _ in 0..2 {
            let fresh = browser();
            for prompt in ["without the cookie", "with the cookie just given"] {
                theirs.push(create_ai_post(&fresh, &app.url, &ai_prompt(prompt)).await.1);
            }
        }
        let a3 = app.ai_post("third").await.1;
        assert_eq!(
            places(&app, &[a2, theirs[0], theirs[1], a3, theirs[2], theirs[3]]).await,
            [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)],
            "Ann's third goes ahead of their third and fourth"
        );
    }
}

on_each_engine! {
    async fn the_author_can_stop_and_retry_and_others_get_403(engine) {
        let app = spawn_app_on(
            engine,
            Some(FakeConfig {
                tokens_per_second: 20.0,
                length: 200,
                ..FakeConfig::default()
            }),
            |_| {},
        )
        .await;
        let (_, job_id) = app.ai_post("stop me").await;
        let path = format!("/ai/generation/{job_id}/progress");
        let mut stream = app.sse(&path, None).await;
        while !matches!(
            job_event(&stream.next_within(WAIT).await.unwrap()),
            JobEvent::Progress(ProgressEvent {
                status: JobStatus::Generating,
                ..
            })
        ) {}

        let stranger = browser();
        let cancel = app.api(&format!("/ai/generation/{job_id}/cancel"));
        assert_eq!(stranger.post(&cancel).send().await.unwrap().status(), 403);
        assert_eq!(app.client.post(&cancel).send().await.unwrap().status(), 202);
        let end = job_event(&stream.collect(WAIT).await.pop().unwrap());
        let JobEvent::Error(end) = end else {
            panic!("error, not {end:?}")
        };
        assert_eq!(end.status, JobStatus::Cancelled);
        assert_eq!(app.job(job_id).await.status, JobStatus::Cancelled);
        let dropped = app
            .fake
            .as_ref()
            .unwrap()
            .wait_for_stats(WAIT, |s| s.disconnected >= 1)
            .await;
        assert!(
            dropped.is_ok(),
            "the Ollama request was dropped: {dropped:?}"
        );

        let retry = app.api(&format!("/ai/generation/{job_id}/retry"));
        assert_eq!(stranger.post(&retry).send().await.unwrap().status(), 403);
        let response = app.client.post(&retry).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let queued: JobView = crate::test_app::read(response).await;
        assert_eq!(queued.id, job_id);
        let job = app.wait_terminal(job_id).await;
        assert_eq!(job.status, JobStatus::Completed);
    }
}

on_each_engine! {
    async fn a_nul_character_in_an_answer_is_kept_as_a_replacement_character(engine) {
        // PostgreSQL's text cannot hold U+0000; the answer must not jam the job there, and both
        // engines must store what watchers were sent.
        let app = spawn_app_on(engine, Some(fast_fake()), |_| {}).await;
        let (post_id, job_id) = app.ai_post("hi #fake:output=before%00after").await;
        let (_, (end, _)) = follow(&app, job_id).await;
        let JobEvent::Done(done) = end else {
            panic!("done, not {end:?}")
        };
        // The fake writes its output once per token.
        assert!(done.text.starts_with("before\u{FFFD}after"), "{:?}", done.text);
        assert!(!done.text.contains('\0'), "{:?}", done.text);
        let job = app.job(job_id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.text, done.text);
        let post: Post = app.get(&format!("/posts/{post_id}")).await;
        assert_eq!(post.text, done.text, "stored as it was sent");
    }
}
