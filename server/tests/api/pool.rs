//! A pool of model servers against the real `aiwall` binary: three fake servers as processes
//! (two speaking Ollama's API, one OpenAI-compatible, llama.cpp-style), one generation at a
//! time each, given as one `AIWALL_BACKENDS` TOML string. Jobs spread over the pool, a model
//! only one server has runs only there, a server killed under a reply hands its job to another
//! without spending an attempt, and it takes work again once it is back; a job stopped as its
//! server dies stays stopped until Retry; a job whose server answers busy goes on at once on a
//! free one, and never bounces between servers that are all busy; a server that lacks a model
//! it listed hands the job to one that has it, and the two moves never bounce between servers.
use std::{collections::HashMap, time::Duration};

use app::types::{JobStatus, JobView, NewAiPost, Readiness, WallEvent};
use tokio::time::Instant;

use crate::{
    deadline::eventually,
    fake_process::FakeProcess,
    process::AppProcess,
    sse::{wall_event, SseStream},
    test_app::{create_ai_post, job_at},
};

const MODEL: &str = "llama3.2:1b";
/// Only the first server has it.
const ONLY_ON_A: &str = "qwen3:4b";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Three fakes: `gpu-a` (Ollama, both models), `gpu-b` (Ollama), `llama` (OpenAI-compatible).
async fn three_fakes(pace: &[&str]) -> [FakeProcess; 3] {
    let both = format!("{MODEL},{ONLY_ON_A}");
    let with = |more: [&str; 4]| -> Vec<String> {
        more.iter().chain(pace).map(ToString::to_string).collect()
    };
    [
        FakeProcess::start(&with(["--api", "ollama", "--models", &both])).await,
        FakeProcess::start(&with(["--api", "ollama", "--models", MODEL])).await,
        FakeProcess::start(&with(["--api", "openai", "--models", MODEL])).await,
    ]
}

/// The wall on the three fakes (gpu-a, gpu-b, llama), in a directory of its own (kept alive
/// by the caller), once `/readyz` lists every server with its models.
async fn wall_on(fakes: &[FakeProcess; 3]) -> (tempfile::TempDir, AppProcess) {
    let dir = tempfile::tempdir().unwrap();
    let backends = format!(
        r#"[{{name = "gpu-a", kind = "ollama", url = "{}"}}, {{name = "gpu-b", kind = "ollama", url = "{}"}}, {{name = "llama", kind = "openai", url = "{}"}}]"#,
        fakes[0].url(),
        fakes[1].url(),
        fakes[2].url()
    );
    let env = [
        ("AIWALL_BACKENDS", backends),
        (
            "AIWALL_GENERATION__ALLOWED_MODELS",
            format!(r#"["{MODEL}","{ONLY_ON_A}"]"#),
        ),
        ("AIWALL_JOBS__RETRY_BASE_MS", "200".into()),
        ("AIWALL_LIMITS__QUEUED_PER_AUTHOR", "20".into()),
        ("AIWALL_LIMITS__QUEUED_PER_ADDRESS", "40".into()),
        ("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "120".into()),
    ];
    let app = AppProcess::start(dir.path(), 0, &env).await;
    pool_listed(&app.url).await;
    (dir, app)
}

async fn ai_post(client: &reqwest::Client, url: &str, prompt: &str, model: &str) -> i64 {
    let body = NewAiPost {
        author_name: "Pool".into(),
        prompt: prompt.into(),
        model: Some(model.into()),
        ..NewAiPost::default()
    };
    create_ai_post(client, url, &body).await.1
}

async fn readiness(url: &str) -> Readiness {
    reqwest::get(format!("{url}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `/readyz` lists every server with the models it has.
async fn pool_listed(url: &str) {
    eventually(Duration::from_secs(10), "every server listed", || async {
        let ready = readiness(url).await;
        (ready.backends.len() == 3 && ready.backends.iter().all(|b| b.ok && !b.models.is_empty()))
            .then_some(())
    })
    .await;
}

/// One job's run as the wall saw it: where, and when it started and ended (test clock).
#[derive(Debug, Clone)]
struct Run {
    backend: String,
    started: Duration,
    ended: Option<Duration>,
}

/// The pool of [`three_fakes`], serving 10 tokens at 40 tok/s, where gpu-a answers every chat
/// request with the failure `failure` gives (`--failure` and what follows it), and a wall on it
/// that has listed them all.
async fn pool_where_gpu_a_answers(
    failure: &[&str],
) -> ([FakeProcess; 3], tempfile::TempDir, AppProcess) {
    let args = |more: &[&str]| -> Vec<String> {
        let pace = ["--tokens-per-second", "40", "--length", "10"];
        more.iter().chain(&pace).map(ToString::to_string).collect()
    };
    let fakes = [
        FakeProcess::start(&args(
            &[
                &["--api", "ollama", "--models", MODEL, "--failure"],
                failure,
            ]
            .concat(),
        ))
        .await,
        FakeProcess::start(&args(&["--api", "ollama", "--models", MODEL])).await,
        FakeProcess::start(&args(&["--api", "openai", "--models", MODEL])).await,
    ];
    let (dir, app) = wall_on(&fakes).await;
    (fakes, dir, app)
}

/// The job once the wall shows it with `status`, asked until `within` is over.
async fn job_in(
    c: &reqwest::Client,
    url: &str,
    job_id: i64,
    status: JobStatus,
    within: Duration,
) -> JobView {
    eventually(within, &format!("job {job_id} {status:?}"), || async {
        let job = job_at(c, url, job_id).await;
        (job.status == status).then_some(job)
    })
    .await
}

/// The server's log line for a job moved to another server.
const MOVED: &str = "the model server cannot take the job now; it goes on on another";
/// The server's log line for a wait before the next try on the same server.
const WAITED: &str = "transient model server failure; retrying";

/// How many times the server's log says it moved a job and waited to try again, once it has
/// waited `waits` times.
async fn moves_and_waits(app: &AppProcess, waits: usize) -> (usize, usize) {
    let count = |line: &str| app.log().matches(line).count();
    eventually(
        Duration::from_secs(20),
        &format!("{waits} waits"),
        || async { (count(WAITED) >= waits).then_some(()) },
    )
    .await;
    (count(MOVED), count(WAITED))
}

/// The id of the first job the wall stream shows writing on `backend`, `tokens` in.
async fn writing_on(wall: &mut SseStream, backend: &str, tokens: u32) -> i64 {
    wall.until(
        Duration::from_secs(10),
        &format!("a job writing on {backend}"),
        |event| match wall_event(event) {
            WallEvent::Progress(p)
                if p.backend.as_deref() == Some(backend) && p.progress.current_tokens >= tokens =>
            {
                Some(p.job_id)
            }
            _ => None,
        },
    )
    .await
}

#[tokio::test]
async fn nine_jobs_run_three_at_a_time_across_the_pool_and_a_model_one_server_has_runs_only_there()
{
    let fakes = three_fakes(&["--tokens-per-second", "40", "--length", "24"]).await;
    let (_dir, app) = wall_on(&fakes).await;
    let c = client();
    let mut wall = SseStream::open(&c, &format!("{}/api/v1/wall/events", app.url), None).await;
    let t0 = Instant::now();
    let mut jobs = Vec::new();
    for i in 0..9 {
        jobs.push((
            ai_post(&c, &app.url, &format!("pool job {i}"), MODEL).await,
            MODEL,
        ));
    }
    for i in 0..2 {
        jobs.push((
            ai_post(&c, &app.url, &format!("only on a {i}"), ONLY_ON_A).await,
            ONLY_ON_A,
        ));
    }
    let mut runs: HashMap<i64, Run> = HashMap::new();
    let mut max_running = 0;
    wall.until(Duration::from_secs(60), "every job's end", |event| {
        let now = t0.elapsed();
        match wall_event(event) {
            WallEvent::Progress(p) if p.status.is_running() => {
                let backend = p.backend.clone().expect("a running job names its server");
                let run = runs.entry(p.job_id).or_insert(Run {
                    backend: backend.clone(),
                    started: now,
                    ended: None,
                });
                assert_eq!(
                    run.backend, backend,
                    "job {} moved without a failure",
                    p.job_id
                );
            }
            WallEvent::Done(done) => {
                if let Some(run) = runs.get_mut(&done.job_id) {
                    run.ended = Some(now);
                }
            }
            WallEvent::Error(e) => {
                panic!("job {} ended with {:?}: {}", e.job_id, e.status, e.message)
            }
            _ => {}
        }
        let running = runs.values().filter(|r| r.ended.is_none()).count();
        max_running = max_running.max(running);
        (runs.len() == jobs.len() && runs.values().all(|r| r.ended.is_some())).then_some(())
    })
    .await;
    let mut timeline: Vec<(i64, &Run)> = runs.iter().map(|(id, r)| (*id, r)).collect();
    timeline.sort_by_key(|(_, r)| r.started);
    for (id, run) in &timeline {
        println!(
            "job {id:>2} on {:<6} {:>6} ms → {:>6} ms",
            run.backend,
            run.started.as_millis(),
            run.ended.unwrap_or_default().as_millis()
        );
    }
    // One generation at a time on each server, never more.
    for backend in ["gpu-a", "gpu-b", "llama"] {
        let mut on: Vec<&Run> = runs.values().filter(|r| r.backend == backend).collect();
        on.sort_by_key(|r| r.started);
        assert!(!on.is_empty(), "{backend} ran no job");
        for pair in on.windows(2) {
            assert!(
                pair[0].ended.unwrap() <= pair[1].started,
                "{backend} ran two at once: {pair:?}"
            );
        }
    }
    assert_eq!(max_running, 3, "three at a time across the pool");
    for (job_id, model) in &jobs {
        if *model == ONLY_ON_A {
            assert_eq!(
                runs[job_id].backend, "gpu-a",
                "job {job_id} for {ONLY_ON_A}"
            );
        }
        let job = job_at(&c, &app.url, *job_id).await;
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.backend.as_deref(), Some(runs[job_id].backend.as_str()));
        assert!(
            job.stats
                .as_ref()
                .is_some_and(|s| s.output_tokens == Some(24)),
            "{:?}",
            job.stats
        );
    }
}

#[tokio::test]
async fn a_server_killed_under_a_reply_hands_its_job_to_another_and_takes_work_again_once_back() {
    let mut fakes = three_fakes(&["--tokens-per-second", "20", "--length", "60"]).await;
    let (_dir, app) = wall_on(&fakes).await;
    let c = client();
    let mut wall = SseStream::open(&c, &format!("{}/api/v1/wall/events", app.url), None).await;
    let first = ai_post(&c, &app.url, "the first", MODEL).await;
    let second = ai_post(&c, &app.url, "the second", MODEL).await;
    // The first goes to gpu-a, the second to gpu-b (equal load: the first configured).
    let on_b = writing_on(&mut wall, "gpu-b", 5).await;
    assert!([first, second].contains(&on_b));
    fakes[1].kill9().await;
    let killed = Instant::now();
    let (moved_to, failover) = wall
        .until(
            Duration::from_secs(15),
            "the job writing on another server",
            |event| match wall_event(event) {
                WallEvent::Progress(p)
                    if p.job_id == on_b
                        && p.progress.current_tokens > 0
                        && p.backend.as_deref().is_some_and(|b| b != "gpu-b") =>
                {
                    Some((p.backend.clone().unwrap(), killed.elapsed()))
                }
                _ => None,
            },
        )
        .await;
    println!(
        "failover: gpu-b killed → job {on_b} writing on {moved_to} after {} ms",
        failover.as_millis()
    );
    assert_eq!(moved_to, "llama", "the free server takes it");
    let ready = readiness(&app.url).await;
    let b = ready.backends.iter().find(|b| b.name == "gpu-b").unwrap();
    assert!(!b.ok && b.down_since.is_some(), "{b:?}");
    let body = reqwest::get(format!("{}/readyz", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !body.contains(&fakes[1].url()),
        "/readyz names servers, never their addresses: {body}"
    );
    let job = job_in(
        &c,
        &app.url,
        on_b,
        JobStatus::Completed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(job.attempt, 1, "dying with its server spent no attempt");
    assert_eq!(
        job.run, 2,
        "the move is a new run: watchers start its text afresh, never splice two replies"
    );
    assert_eq!(job.backend.as_deref(), Some("llama"));

    // Back: a probe finds it, and it takes work again.
    fakes[1].restart().await;
    eventually(
        Duration::from_secs(15),
        "gpu-b answers again on /readyz",
        || async {
            let ready = readiness(&app.url).await;
            ready
                .backends
                .iter()
                .any(|b| b.name == "gpu-b" && b.ok && b.down_since.is_none())
                .then_some(())
        },
    )
    .await;
    let mut again = Vec::new();
    for i in 0..3 {
        again.push(ai_post(&c, &app.url, &format!("after the return {i}"), MODEL).await);
    }
    let mut backends = Vec::new();
    for job_id in again {
        let job = job_in(
            &c,
            &app.url,
            job_id,
            JobStatus::Completed,
            Duration::from_secs(30),
        )
        .await;
        backends.push(job.backend.unwrap());
    }
    assert!(
        backends.iter().any(|b| b == "gpu-b"),
        "gpu-b took work again: {backends:?}"
    );
}

/// Stop pressed the moment a job's server dies, while the runner hands the job back to the
/// queue: whichever comes first, the job ends stopped, no free server picks it up afterwards,
/// and Retry runs it to the end on a server that is up.
#[tokio::test]
async fn a_job_stopped_as_its_server_dies_stays_stopped_and_runs_again_on_retry() {
    // Long replies (20 s): the other two servers stay busy while the killed one's job waits.
    let mut fakes = three_fakes(&["--tokens-per-second", "20", "--length", "400"]).await;
    let (_dir, app) = wall_on(&fakes).await;
    let c = client();
    let mut wall = SseStream::open(&c, &format!("{}/api/v1/wall/events", app.url), None).await;
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(ai_post(&c, &app.url, &format!("busy {i}"), MODEL).await);
    }
    let on_b = writing_on(&mut wall, "gpu-b", 3).await;
    let action = |job: i64, what: &str| {
        c.post(format!("{}/api/v1/ai/generation/{job}/{what}", app.url))
            .send()
    };
    fakes[1].kill9().await;
    let stop = action(on_b, "cancel").await.unwrap();
    assert_eq!(
        stop.status(),
        202,
        "Stop is taken whatever the runner is doing"
    );
    let stopped = job_in(
        &c,
        &app.url,
        on_b,
        JobStatus::Cancelled,
        Duration::from_secs(10),
    )
    .await;

    // Free the other two servers. A job posted after them runs at once: had the stopped job
    // gone back to the queue, it would have run first.
    for &job in jobs.iter().filter(|&&job| job != on_b) {
        assert_eq!(action(job, "cancel").await.unwrap().status(), 202);
    }
    let later = ai_post(&c, &app.url, "after the stop #fake:tokens=5", MODEL).await;
    job_in(
        &c,
        &app.url,
        later,
        JobStatus::Completed,
        Duration::from_secs(20),
    )
    .await;
    let still = job_at(&c, &app.url, on_b).await;
    assert_eq!(still.status, JobStatus::Cancelled, "{still:?}");
    assert_eq!(still.run, stopped.run, "it never ran again by itself");

    let retry = action(on_b, "retry").await.unwrap();
    assert_eq!(retry.status(), 200);
    let done = job_in(
        &c,
        &app.url,
        on_b,
        JobStatus::Completed,
        Duration::from_secs(40),
    )
    .await;
    assert_ne!(done.backend.as_deref(), Some("gpu-b"), "gpu-b is down");
}

/// A server that answers busy (503 with Retry-After: 30) while others have a free place: the
/// job goes on at once on one of them, spending no attempt, rather than waiting out the 30 s.
#[tokio::test]
async fn a_job_whose_server_answers_busy_goes_on_at_once_on_a_free_one() {
    // gpu-a, the first configured, takes the first job; it answers every chat request busy.
    let (_fakes, _dir, app) =
        pool_where_gpu_a_answers(&["status=503:server busy", "--retry-after", "30"]).await;
    let c = client();
    let job_id = ai_post(&c, &app.url, "to a busy server", MODEL).await;
    app.wait_for_log(MOVED, Duration::from_secs(10)).await;
    // Well before the 30 s the busy server asked for.
    let job = job_in(
        &c,
        &app.url,
        job_id,
        JobStatus::Completed,
        Duration::from_secs(15),
    )
    .await;
    assert_ne!(job.backend.as_deref(), Some("gpu-a"), "{job:?}");
    assert_eq!(job.attempt, 1, "a busy answer spends no attempt");
    assert_eq!(job.run, 1, "the same run, on another server");
}

/// Every server busy: the job moves to each once, then waits as the last asked (its
/// Retry-After), and only after a wait moves on again; it never bounces between them.
#[tokio::test]
async fn a_job_that_finds_every_server_busy_waits_rather_than_bouncing_between_them() {
    let busy = [
        "--failure",
        "status=503:server busy",
        "--retry-after",
        "1",
        "--models",
        MODEL,
    ];
    let with = |api: &str| -> Vec<String> {
        ["--api", api]
            .iter()
            .chain(&busy)
            .map(ToString::to_string)
            .collect()
    };
    let fakes = [
        FakeProcess::start(&with("ollama")).await,
        FakeProcess::start(&with("ollama")).await,
        FakeProcess::start(&with("openai")).await,
    ];
    let (_dir, app) = wall_on(&fakes).await;
    let c = client();
    let job_id = ai_post(&c, &app.url, "to busy servers", MODEL).await;
    let (moves, waits) = moves_and_waits(&app, 3).await;
    println!("every server busy: {moves} moves and {waits} waits");
    // Two moves before the first wait (to the other two), at most two after each wait.
    assert!(
        moves >= 2 && moves <= 2 * (waits + 1),
        "{moves} moves, {waits} waits"
    );
    let job = job_at(&c, &app.url, job_id).await;
    assert!(
        job.status.is_running() && job.attempt == 1,
        "it waits, spending nothing: {job:?}"
    );
}

/// A server whose list names a model it then answers 404 for (its list out of date): the job
/// goes on at once on a server that has it, spending no attempt, and the wall stops sending
/// that model there until the server lists it again.
#[tokio::test]
async fn a_server_that_lacks_a_model_it_listed_hands_the_job_to_one_that_has_it() {
    let (_fakes, _dir, app) = pool_where_gpu_a_answers(&["status=404:model not found"]).await;
    let c = client();
    for prompt in ["the first", "the second"] {
        let job_id = ai_post(&c, &app.url, prompt, MODEL).await;
        let job = eventually(Duration::from_secs(15), "the job completes", || async {
            let job = job_at(&c, &app.url, job_id).await;
            (job.status.is_terminal()).then_some(job)
        })
        .await;
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        assert_ne!(job.backend.as_deref(), Some("gpu-a"), "{job:?}");
        assert_eq!(job.attempt, 1, "{job:?}");
    }
    // Only the first moved: the second went straight to a server that has the model.
    assert_eq!(app.log().matches(MOVED).count(), 1);
}

/// A server that lacks the model hands the job to one that answers busy: the job waits on the
/// busy one and never goes back to the one that lacks it (the two moves cannot bounce).
#[tokio::test]
async fn a_job_moved_off_a_server_lacking_its_model_never_goes_back_there_when_the_next_is_busy() {
    let args = |more: &[&str]| -> Vec<String> { more.iter().map(ToString::to_string).collect() };
    let fakes = [
        FakeProcess::start(&args(&[
            "--api",
            "ollama",
            "--models",
            MODEL,
            "--failure",
            "status=404:model not found",
        ]))
        .await,
        FakeProcess::start(&args(&[
            "--api",
            "ollama",
            "--models",
            MODEL,
            "--failure",
            "status=503:server busy",
            "--retry-after",
            "1",
        ]))
        .await,
        // Another model only: the job cannot go there.
        FakeProcess::start(&args(&["--api", "openai", "--models", ONLY_ON_A])).await,
    ];
    let (_dir, app) = wall_on(&fakes).await;
    let c = client();
    let job_id = ai_post(&c, &app.url, "lacking, then busy", MODEL).await;
    let (moves, _) = moves_and_waits(&app, 3).await;
    assert_eq!(moves, 1, "gpu-a → gpu-b, and no more");
    let job = job_at(&c, &app.url, job_id).await;
    assert!(job.status.is_running() && job.attempt == 1, "{job:?}");
    assert_eq!(job.backend.as_deref(), Some("gpu-b"));
}
