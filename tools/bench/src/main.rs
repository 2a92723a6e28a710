//! `wall-bench`: starts the release `aiwall` binary against an in-process fake Ollama that
//! stamps every token with the time it left, opens N jobs × M SSE watchers, and prints:
//! token-to-watcher latency (p50, p99, max), database writes per job per second, and the
//! server's CPU and memory per watcher. A benchmark, not a test: it prints figures.
mod process;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use app::types::{JobEvent, NewAiPost, Post};
use clap::Parser;
use eventsource_stream::Eventsource;
use fake_ollama::{FakeConfig, FakeOllama};
use futures::StreamExt;
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(about = "Measure AI Wall's live progress push")]
struct Args {
    /// Concurrent generation jobs.
    #[arg(long, default_value_t = 50)]
    jobs: usize,
    /// SSE watchers per job.
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Tokens per second per job (the fake Ollama's pace).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 250)]
    tokens: u32,
    /// The server binary to run.
    #[arg(long, default_value = "target/release/aiwall")]
    server: String,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let watchers_total = args.jobs * args.watchers;
    // Every watcher is a connection on both ends; the server inherits the raised limit.
    rlimit::increase_nofile_limit(u64::MAX)?;

    // The model "loads" for a few seconds, so every watcher is connected before tokens flow.
    let load_ms = 3000 + watchers_total as u64 * 2;
    let fake = FakeOllama::start(FakeConfig {
        tokens_per_second: args.rate,
        length: args.tokens,
        load_delay_ms: load_ms,
        stamp_tokens: true,
        ..FakeConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let server = process::Server::start(&args.server, dir.path(), &db, &fake.url(), args.jobs)?;
    server.wait_ready().await?;
    let url = server.url.clone();
    println!(
        "server {} (pid {}), fake Ollama {}, {} jobs x {} watchers, {} tok/s, {} tokens each",
        url,
        server.pid,
        fake.url(),
        args.jobs,
        args.watchers,
        args.rate,
        args.tokens
    );

    // Count every write to the jobs table, independently of the server's own code.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("CREATE TABLE bench_writes (n INTEGER)")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE TRIGGER bench_count AFTER UPDATE ON ai_generation_jobs BEGIN INSERT INTO bench_writes VALUES (1); END").execute(&pool).await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut job_ids = Vec::new();
    for i in 0..args.jobs {
        let new = NewAiPost {
            author_name: format!("bench {i}"),
            prompt: format!("benchmark {i}"),
            model: Some("llama3.2:1b".into()),
            max_tokens: None,
        };
        let post: Post = http
            .post(format!("{url}/api/v1/ai/posts"))
            .json(&new)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        job_ids.push(post.job.ok_or("no job")?.id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_kib()?;
    let cpu_before = server.cpu_ticks()?;

    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for &job_id in &job_ids {
        for _ in 0..args.watchers {
            let http = http.clone();
            let url = format!("{url}/api/v1/ai/generation/{job_id}/progress");
            let latencies = Arc::clone(&latencies);
            let connected = Arc::clone(&connected);
            tasks.push(tokio::spawn(async move {
                watch(http, url, latencies, connected).await
            }));
        }
    }
    // All watchers connected (their first event arrived) before measuring memory.
    let _all = connected.acquire_many(watchers_total as u32).await?;
    let rss_connected = server.rss_kib()?;
    let started = Instant::now();
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_ticks = server.cpu_ticks()? - cpu_before;
    let writes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bench_writes")
        .fetch_one(&pool)
        .await?;
    let generating_secs: f64 =
        sqlx::query_scalar("SELECT AVG(elapsed_time) / 1000.0 FROM ai_generation_jobs")
            .fetch_one(&pool)
            .await?;
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM ai_generation_jobs GROUP BY status")
            .fetch_all(&pool)
            .await?;

    // Every watcher has finished: the histogram is ours alone now.
    let h = Arc::try_unwrap(latencies)
        .map_err(|_| "a watcher still holds the histogram")?
        .into_inner()
        .map_err(|_| "poisoned")?;
    let ms = |v: u64| v as f64 / 1000.0;
    let writes_per_job_s = writes as f64 / args.jobs as f64 / generating_secs.max(0.001);
    let per_watcher_kib = (rss_connected.saturating_sub(rss_before)) as f64 / watchers_total as f64;
    let cpu_secs = cpu_ticks as f64 / process::clock_ticks() as f64;
    println!();
    println!("jobs: {statuses:?}; watchers that failed: {failed}");
    println!("token -> watcher latency over {} tokens seen: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms   (target p99 < 50 ms)", h.len(), ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()));
    println!("database writes: {writes} in all, {writes_per_job_s:.2} per job per second of generation ({generating_secs:.1} s each)   (target <= 2.5)");
    println!("server memory: {rss_before} KiB before watchers, {rss_connected} KiB with {watchers_total} connected: {per_watcher_kib:.1} KiB per watcher   (target < 20 KB)");
    println!(
        "server CPU: {cpu_secs:.2} s over {wall:.1} s = {:.0}% of one core; {:.1} µs per watcher per second; {:.1} µs per token delivered to a watcher",
        cpu_secs / wall * 100.0,
        cpu_secs * 1e6 / watchers_total as f64 / wall,
        cpu_secs * 1e6 / h.len().max(1) as f64
    );
    server.stop();
    fake.stop().await;
    Ok(())
}

/// One watcher: follows a job's progress to its end and records each token's latency.
async fn watch(
    http: reqwest::Client,
    url: String,
    latencies: Arc<Mutex<Histogram<u64>>>,
    connected: Arc<tokio::sync::Semaphore>,
) -> Result<(), String> {
    let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        connected.add_permits(1);
        return Err(format!("HTTP {}", response.status()));
    }
    let mut events = response.bytes_stream().eventsource();
    let mut announced = false;
    let mut local = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        if !announced {
            announced = true;
            connected.add_permits(1);
        }
        match JobEvent::decode(&event.event, &event.data).map_err(|e| e.to_string())? {
            JobEvent::Progress(progress) => {
                let now = unix_micros();
                for stamp in progress.text_delta.split_whitespace() {
                    if let Some(t) = stamp.strip_prefix('t').and_then(|t| t.parse::<u64>().ok()) {
                        local.push(now.saturating_sub(t).max(1));
                    }
                }
            }
            JobEvent::Done(_) | JobEvent::Error(_) => break,
        }
    }
    if !announced {
        connected.add_permits(1);
    }
    let mut h = latencies.lock().map_err(|_| "poisoned")?;
    for v in local {
        h.record(v.min(60_000_000)).map_err(|e| e.to_string())?;
    }
    Ok(())
}
