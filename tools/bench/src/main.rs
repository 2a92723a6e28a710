//! `wall-bench`: starts the release `aiwall` binary against a fake Ollama (in-process, on a thread of its own) that
//! stamps every token with the time it left, opens N jobs × M SSE watchers, and prints:
//! token-to-watcher latency (p50, p99, max), database writes per job per second, and the
//! server's CPU and memory per watcher. A benchmark, not a test: it prints figures.
//!
//! With `--wall N` the watchers are N browsers' wall streams (`/api/v1/wall/events`, the path
//! browsers really use) instead of M per-job streams per job; each follows every job to its
//! end, and the bench adds the bytes and events each watcher got per second.
//!
//! With `--instances K` it starts K instances on a fresh PostgreSQL database instead of one
//! on SQLite: jobs are posted and watchers spread round the instances, and the latency is
//! also given apart for watchers on the instance that runs the job and on the others (the
//! bus's cost), with the bus's notifications per job per second.
mod counter;
mod frames;
mod process;
mod store;

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
    /// Watch through N wall streams (what browsers use) instead of per-job streams.
    #[arg(long)]
    wall: Option<usize>,
    /// With `--wall`: every K-th watcher reads its events as a browser does (decodes and folds
    /// them, and measures latency); the others only read the bytes and watch for the jobs' end,
    /// to tell the server's cost from this client's own.
    #[arg(long, default_value_t = 1)]
    fold_every: usize,
    /// The wall stream's version: 2 (what the page reads) or 1 (every event whole).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    wall_version: u8,
    /// Instead of following the jobs: once they have finished (a page of answers), hold this
    /// many idle wall streams, in steps (e.g. 1000,5000,10000), and give the server's memory per
    /// stream at each: (RSS with N - RSS with none) / N.
    #[arg(long, value_delimiter = ',')]
    idle: Vec<usize>,
    /// Tokens per second per job (the fake Ollama's pace).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 250)]
    tokens: u32,
    /// The server binary to run.
    #[arg(long, default_value = "target/release/aiwall")]
    server: String,
    /// Instances of the server, on one PostgreSQL database (more than 1 needs PostgreSQL).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Run on PostgreSQL: the server to make a fresh database on (dropped after). With more
    /// than one instance, `TEST_POSTGRES_URL` or postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    postgres: Option<String>,
}

/// The fake Ollama on a thread and runtime of its own: its tokens leave on time (and are stamped
/// when they do) however busy the watchers keep this process's runtime.
struct OwnThread {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl OwnThread {
    fn start(config: FakeConfig) -> Result<Self, Box<dyn std::error::Error>> {
        let (started, url) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return drop(started.send(Err(e.to_string()))),
            };
            runtime.block_on(async move {
                match FakeOllama::start(config).await {
                    Ok(fake) => {
                        drop(started.send(Ok(fake.url())));
                        let _ = stopped.await;
                        fake.stop().await;
                    }
                    Err(e) => drop(started.send(Err(e.to_string()))),
                }
            });
        });
        let url = url.recv()??;
        Ok(Self { url, stop, thread })
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn stop(self) {
        let _ = self.stop.send(());
        drop(self.thread.join());
    }
}

/// The key every instance signs cookies with (one wall, several instances).
const COOKIE_KEY: &str = concat!(
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
);

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let watchers_total = match (args.wall, args.idle.last()) {
        (_, Some(_)) => 1,
        (Some(n), None) => n,
        (None, None) => args.jobs * args.watchers,
    };
    // Every watcher is a connection on both ends; the server inherits the raised limit.
    rlimit::increase_nofile_limit(u64::MAX)?;

    // The model "loads" for a few seconds, so every watcher is connected before tokens flow.
    let load_ms = 3000 + watchers_total as u64 * 2;
    let fake = OwnThread::start(FakeConfig {
        tokens_per_second: args.rate,
        length: args.tokens,
        load_delay_ms: load_ms,
        stamp_tokens: true,
        ..FakeConfig::default()
    })?;
    let dir = tempfile::Builder::new()
        .prefix("wall-bench")
        .disable_cleanup(std::env::var_os("BENCH_KEEP").is_some())
        .tempdir()?;
    let instances = args.instances.max(1);
    let postgres = args.postgres.clone().or_else(|| {
        (instances > 1).then(|| {
            std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
        })
    });
    let store = match &postgres {
        Some(url) => store::Store::postgres(url).await?,
        None => store::Store::sqlite(&dir.path().join("bench.db")),
    };
    let mut servers = Vec::new();
    let mut metrics = Vec::new();
    for i in 0..instances {
        let home = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir_all(&home)?;
        let metrics_port = process::free_port()?;
        let env = [
            ("AIWALL_SERVER__INSTANCE_ID", format!("bench-{i}")),
            ("AIWALL_SERVER__COOKIE_KEY", COOKIE_KEY.to_string()),
            (
                "AIWALL_SERVER__METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            ),
        ];
        let server = process::Server::start(
            &args.server,
            &home,
            store.url(),
            &fake.url(),
            args.jobs,
            &env,
        )?;
        server.wait_ready().await?;
        servers.push(server);
        metrics.push(format!("http://127.0.0.1:{metrics_port}/metrics"));
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    println!(
        "{} instance(s) {:?} on {}, fake Ollama {}, {} jobs, {}, {} tok/s, {} tokens each",
        instances,
        urls,
        store.engine(),
        fake.url(),
        args.jobs,
        match args.wall {
            Some(n) => format!("{n} wall watchers"),
            None => format!("{} watchers each", args.watchers),
        },
        args.rate,
        args.tokens
    );

    // Count every write to the jobs table, independently of the server's own code.
    store.count_writes().await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let loaded_at = tokio::time::Instant::now() + Duration::from_millis(load_ms);
    let mut job_ids = Vec::new();
    for i in 0..args.jobs {
        let url = &urls[i % instances];
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
    if !args.idle.is_empty() {
        let wall = format!("{}/api/v{}/wall/events", urls[0], args.wall_version);
        let follower = Arc::new(tokio::sync::Semaphore::new(0));
        let followed = watch_wall(http.clone(), wall.clone(), job_ids, 0, follower).await?;
        let missed: u64 = followed.iter().map(|s| s.missed).sum();
        println!(
            "a page of {} answers written ({missed} events missed)",
            args.jobs
        );
        idle_cost(&servers[0], &wall, &args.idle).await?;
        for server in servers {
            server.stop();
        }
        fake.stop();
        store.drop_database().await?;
        return if missed == 0 {
            Ok(())
        } else {
            Err("a watcher missed text".into())
        };
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before: u64 = servers
        .iter()
        .map(|s| s.rss_kib().unwrap_or_default())
        .sum();
    // The tokens flow once the model has "loaded": the CPU from then on is the generation's
    // alone (the figures over the whole run also hold the wait for it).
    let pids: Vec<String> = servers.iter().map(|s| s.pid.to_string()).collect();
    let generating = tokio::spawn(async move {
        tokio::time::sleep_until(loaded_at).await;
        let server: u64 = pids
            .iter()
            .map(|pid| process::cpu_ticks(pid).unwrap_or_default())
            .sum();
        (
            Instant::now(),
            server,
            process::cpu_ticks("self").unwrap_or_default(),
        )
    });
    let cpu_before: u64 = servers
        .iter()
        .map(|s| s.cpu_ticks().unwrap_or_default())
        .sum();

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    let per_job = if args.wall.is_some() {
        0
    } else {
        args.watchers
    };
    for w in 0..args.wall.unwrap_or(0) {
        let http = http.clone();
        let instance = w % instances;
        let url = format!("{}/api/v{}/wall/events", urls[instance], args.wall_version);
        let seen = Arc::clone(&seen);
        let connected = Arc::clone(&connected);
        let jobs = job_ids.clone();
        tasks.push(tokio::spawn(async move {
            if w % args.fold_every.max(1) == 0 {
                for s in watch_wall(http, url, jobs, instance, connected).await? {
                    seen.lock().map_err(|_| "poisoned")?.push(s);
                }
            } else {
                let counted =
                    counter::count(&url, jobs.len(), move || connected.add_permits(1)).await?;
                seen.lock().map_err(|_| "poisoned")?.push(Seen {
                    job_id: jobs.first().copied().unwrap_or_default(),
                    instance,
                    latencies: Vec::new(),
                    bytes: counted.bytes,
                    events: counted.events,
                    missed: 0,
                    resynced: counted.resynced,
                });
            }
            Ok::<(), String>(())
        }));
    }
    for (j, &job_id) in job_ids.iter().enumerate() {
        for w in 0..per_job {
            let http = http.clone();
            let instance = (j * args.watchers + w) % instances;
            let url = format!("{}/api/v1/ai/generation/{job_id}/progress", urls[instance]);
            let seen = Arc::clone(&seen);
            let connected = Arc::clone(&connected);
            tasks.push(tokio::spawn(async move {
                let latencies = watch(http, url, connected).await?;
                seen.lock().map_err(|_| "poisoned")?.push(Seen {
                    job_id,
                    instance,
                    latencies,
                    bytes: 0,
                    events: 0,
                    missed: 0,
                    resynced: false,
                });
                Ok::<(), String>(())
            }));
        }
    }
    // All watchers connected (their first event arrived) before measuring memory.
    let _all = connected.acquire_many(watchers_total as u32).await?;
    let rss_connected: u64 = servers
        .iter()
        .map(|s| s.rss_kib().unwrap_or_default())
        .sum();
    let started = Instant::now();
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_ticks: u64 = servers
        .iter()
        .map(|s| s.cpu_ticks().unwrap_or_default())
        .sum::<u64>()
        - cpu_before;
    let (generating_from, server_then, own_then) = generating.await?;
    let generating_secs_here = generating_from.elapsed().as_secs_f64();
    let server_now: u64 = servers
        .iter()
        .map(|s| s.cpu_ticks().unwrap_or_default())
        .sum();
    let share = |ticks: u64| {
        ticks as f64 / process::clock_ticks() as f64 / generating_secs_here.max(0.001) * 100.0
    };
    let (server_busy, own_busy) = (
        share(server_now.saturating_sub(server_then)),
        share(process::cpu_ticks("self")?.saturating_sub(own_then)),
    );
    let writes = store.writes().await?;
    let generating_secs = store.average_generation_secs().await?;
    let statuses = store.statuses().await?;
    let owners = store.owners().await?;

    // Every watcher has finished: the figures are ours alone now.
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| "poisoned")?);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut local = h.clone();
    let mut remote = h.clone();
    for s in &seen {
        let runner = owners.get(&s.job_id).map(String::as_str);
        let here = runner == Some(format!("bench-{}", s.instance).as_str());
        for &v in &s.latencies {
            let v = v.min(60_000_000);
            h.record(v)?;
            if here {
                local.record(v)?
            } else {
                remote.record(v)?
            }
        }
    }
    let ms = |v: u64| v as f64 / 1000.0;
    let writes_per_job_s = writes as f64 / args.jobs as f64 / generating_secs.max(0.001);
    let per_watcher_kib = (rss_connected.saturating_sub(rss_before)) as f64 / watchers_total as f64;
    let cpu_secs = cpu_ticks as f64 / process::clock_ticks() as f64;
    println!();
    println!("jobs: {statuses:?}; watchers that failed: {failed}");
    let delivered: u64 = seen.iter().map(|s| s.events).sum();
    let missed: u64 = seen.iter().map(|s| s.missed).sum();
    let resynced = seen.iter().filter(|s| s.resynced).count();
    if resynced > 0 {
        println!("watchers that fell behind and took a fresh snapshot: {resynced}");
    }
    if let Some(n) = args.wall {
        let bytes: u64 = seen.iter().map(|s| s.bytes).sum();
        let n = n.max(1) as f64;
        println!(
            "wall streams (v{}): {:.0} bytes and {:.1} events per watcher per second ({:.0} KB and {:.0} events each in {wall:.1} s); events missed: {missed}",
            args.wall_version,
            bytes as f64 / n / wall,
            delivered as f64 / n / wall,
            bytes as f64 / n / 1000.0,
            delivered as f64 / n
        );
    }
    println!("token -> watcher latency over {} tokens seen: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms   (target p99 < 50 ms)", h.len(), ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()));
    if instances > 1 {
        for (what, h) in [
            ("on the job's own instance", &local),
            ("on another instance (through the bus)", &remote),
        ] {
            println!(
                "  watchers {what}: {} tokens, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            );
        }
        let mut sent = 0.0;
        for url in &metrics {
            let text = http.get(url).send().await?.text().await?;
            sent += sample(&text, "aiwall_bus_notifications_sent_total").unwrap_or_default();
        }
        println!(
            "bus: {sent:.0} notifications sent, {:.1} per job per second of generation   (at most 1000 / push_interval_ms + status changes)",
            sent / args.jobs as f64 / generating_secs.max(0.001)
        );
    }
    println!("database writes: {writes} in all, {writes_per_job_s:.2} per job per second of generation ({generating_secs:.1} s each)   (target <= 2.5)");
    println!("server memory: {rss_before} KiB before watchers, {rss_connected} KiB with {watchers_total} connected: {per_watcher_kib:.1} KiB per watcher   (target < 20 KB)");
    println!(
        "server CPU: {cpu_secs:.2} s over {wall:.1} s = {:.0}% of one core; {:.1} µs per watcher per second; {:.1} µs per token delivered to a watcher",
        cpu_secs / wall * 100.0,
        cpu_secs * 1e6 / watchers_total as f64 / wall,
        cpu_secs * 1e6 / h.len().max(1) as f64
    );
    println!(
        "while the tokens flowed (the last {generating_secs_here:.1} s): server {server_busy:.0}%, this client (watchers and fake Ollama) {own_busy:.0}% of one core, of {} cores",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    if args.wall.is_some() {
        println!(
            "server CPU per wall event delivered: {:.2} µs ({delivered} events)",
            cpu_secs * 1e6 / delivered.max(1) as f64
        );
    }
    for server in servers {
        server.stop();
    }
    fake.stop();
    store.drop_database().await?;
    if failed > 0 || missed > 0 {
        return Err(format!("{failed} watchers failed, {missed} events missed").into());
    }
    Ok(())
}

/// Holds idle wall streams in steps of `levels` and prints the server's memory per stream.
async fn idle_cost(
    server: &process::Server,
    url: &str,
    levels: &[usize],
) -> Result<(), Box<dyn std::error::Error>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let rss_none = server.rss_kib()?;
    println!("idle wall streams: server RSS {rss_none} KiB with none");
    println!("| idle wall streams | server RSS | per stream |");
    println!("|---|---|---|");
    // Connections opened at once, at most (the listen queue is finite).
    let opening = Arc::new(tokio::sync::Semaphore::new(256));
    let mut held = Vec::new();
    for &n in levels {
        let mut opened = Vec::new();
        for _ in held.len()..n {
            let (http, url, opening) = (http.clone(), url.to_owned(), Arc::clone(&opening));
            opened.push(tokio::spawn(async move {
                let _permit = opening.acquire_owned().await.map_err(|e| e.to_string())?;
                hold(http, url).await
            }));
        }
        for task in opened {
            held.push(task.await??);
        }
        let rss = server.rss_kib()?;
        println!(
            "| {n} | {:.1} MiB | {:.2} KiB |",
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_none) as f64 / n.max(1) as f64
        );
    }
    Ok(())
}

/// One idle wall stream, once its snapshot has arrived whole.
async fn hold(http: reqwest::Client, url: String) -> Result<reqwest::Response, String> {
    let mut response = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut tail: Vec<u8> = Vec::new();
    let mut in_snapshot = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        tail.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(&tail);
        if !in_snapshot {
            if let Some(at) = text.find("event: snapshot\n") {
                in_snapshot = true;
                tail.drain(..at);
            }
        }
        if in_snapshot && String::from_utf8_lossy(&tail).contains("\n\n") {
            return Ok(response);
        }
        if !in_snapshot {
            // Keep what may be the start of the snapshot's name.
            let keep = tail.len().saturating_sub(32);
            tail.drain(..keep);
        } else {
            let keep = tail.len().saturating_sub(4);
            tail.drain(..keep);
        }
    }
    Err("the stream ended before its snapshot".into())
}

/// What one watcher saw of one job: each token's latency (µs), on which instance; and for a
/// wall watcher (on its first job's entry) the bytes and events of its whole stream.
struct Seen {
    job_id: i64,
    instance: usize,
    latencies: Vec<u64>,
    bytes: u64,
    events: u64,
    /// Events whose text or blocks did not follow on from what the watcher had.
    missed: u64,
    /// The watcher fell behind and the server sent it a fresh snapshot (on its first job's
    /// entry).
    resynced: bool,
}

/// One browser's wall stream: follows every job in `jobs` to its end, folding every event into
/// its jobs with the browser's own rules (`app::live::apply`); what it saw of each. Text that did
/// not follow on from what it had, or that differs from the final answer, counts as missed.
async fn watch_wall(
    http: reqwest::Client,
    url: String,
    jobs: Vec<i64>,
    instance: usize,
    connected: Arc<tokio::sync::Semaphore>,
) -> Result<Vec<Seen>, String> {
    use app::live::apply::{self, Applied};
    use app::types::{JobView, WallEvent};
    let response = http.get(&url).send().await.map_err(|e| e.to_string());
    let response = match response {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            connected.add_permits(1);
            return Err(format!("HTTP {}", r.status()));
        }
        Err(e) => {
            connected.add_permits(1);
            return Err(e);
        }
    };
    let mut response = response;
    let mut frames = frames::Frames::default();
    let mut seen: Vec<Seen> = jobs
        .iter()
        .map(|&job_id| Seen {
            job_id,
            instance,
            latencies: Vec::new(),
            bytes: 0,
            events: 0,
            missed: 0,
            resynced: false,
        })
        .collect();
    let mut views: std::collections::HashMap<i64, JobView> = std::collections::HashMap::new();
    let mut ended = std::collections::HashSet::new();
    let (mut bytes, mut count, mut missed, mut announced) = (0u64, 0u64, 0u64, false);
    let (mut snapshots, mut resynced) = (0, false);
    'reading: while ended.len() < jobs.len() {
        let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? else {
            break;
        };
        bytes += chunk.len() as u64;
        frames.push(&chunk);
        while let Some(event) = frames.next()? {
            if ended.len() == jobs.len() {
                break 'reading;
            }
            if !announced {
                announced = true;
                connected.add_permits(1);
            }
            count += 1;
            let now = unix_micros();
            let mut stamps = |job_id: i64, delta: &str| {
                if let Some(s) = seen.iter_mut().find(|s| s.job_id == job_id) {
                    for stamp in delta.split_whitespace() {
                        if let Some(t) = stamp.strip_prefix('t').and_then(|t| t.parse::<u64>().ok())
                        {
                            s.latencies.push(now.saturating_sub(t).max(1));
                        }
                    }
                }
            };
            let applied =
                match WallEvent::decode(event.name, event.data).map_err(|e| e.to_string())? {
                    WallEvent::Snapshot(s) => {
                        views.extend(s.posts.into_iter().filter_map(|p| p.job).map(|j| (j.id, j)));
                        views.extend(s.jobs.into_iter().map(|j| (j.id, j)));
                        snapshots += 1;
                        if snapshots > 1 {
                            // Fell behind: the jobs that ended meanwhile end here.
                            resynced = true;
                            ended.extend(
                                views
                                    .values()
                                    .filter(|v| jobs.contains(&v.id) && v.status.is_terminal())
                                    .map(|v| v.id),
                            );
                        }
                        Applied::Updated
                    }
                    WallEvent::Job(view) => {
                        views.insert(view.id, view);
                        Applied::Updated
                    }
                    WallEvent::Progress(p) => {
                        stamps(p.job_id, &p.text_delta);
                        views
                            .get_mut(&p.job_id)
                            .map_or(Applied::Gap, |v| apply::progress(v, &p))
                    }
                    WallEvent::Delta(d) => {
                        stamps(d.job_id, &d.text_delta);
                        views
                            .get_mut(&d.job_id)
                            .map_or(Applied::Gap, |v| apply::delta(v, &d))
                    }
                    WallEvent::Done(d) => {
                        ended.insert(d.job_id);
                        match views.get(&d.job_id) {
                            Some(v) if v.text == d.text && v.blocks == d.blocks => Applied::Updated,
                            _ => Applied::Gap,
                        }
                    }
                    WallEvent::Error(e) => {
                        ended.insert(e.job_id);
                        Applied::Updated
                    }
                    WallEvent::Post(_) | WallEvent::PostDeleted(_) => Applied::Updated,
                };
            if applied == Applied::Gap {
                missed += 1;
            }
        }
    }
    if !announced {
        connected.add_permits(1);
    }
    if let Some(first) = seen.first_mut() {
        first.bytes = bytes;
        first.events = count;
        first.missed = missed;
        first.resynced = resynced;
    }
    Ok(seen)
}

/// The value of the sample `name` (without labels) in Prometheus's text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// One watcher: follows a job's progress to its end and returns each token's latency (µs).
async fn watch(
    http: reqwest::Client,
    url: String,
    connected: Arc<tokio::sync::Semaphore>,
) -> Result<Vec<u64>, String> {
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
    Ok(local)
}
