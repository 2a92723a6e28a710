//! Three release binaries on one PostgreSQL behind nginx, as `deploy/nginx.conf` ships: twenty
//! AI posts from four browsers spread over the instances; watchers on every instance see every
//! job's progress and end; the instance running three jobs is killed with SIGKILL and another
//! runs them again within the lease; a Stop sent through one instance stops a job running on
//! another; and no post is lost or made twice.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::types::{JobStatus, PostPage, WallEvent};
use server::db::scratch::ScratchDb;
use sqlx::Connection;

use crate::{
    deadline::eventually,
    instances::{instance, LEASE_MS, RENEW_MS},
    nginx::Nginx,
    process::AppProcess,
    sse::{wait_progress_at, wait_terminal_at, wall_event, SseStream},
    test_app::{ai_prompt, browser, create_ai_post, fake_ollama, free_port},
};

const WAIT: Duration = Duration::from_secs(60);
/// Instance `id` of the wall on `database` behind nginx, on the model server at `ollama`,
/// which runs `slots` generations at once.
fn behind_nginx(
    id: &str,
    database: &ScratchDb,
    ollama: &str,
    slots: u32,
) -> Vec<(&'static str, String)> {
    let mut env = instance(id, database, ollama.to_string());
    env.extend([
        (
            "AIWALL_SERVER__TRUSTED_PROXIES",
            r#"["127.0.0.1"]"#.to_string(),
        ),
        ("AIWALL_JOBS__CONCURRENCY", slots.to_string()),
        ("AIWALL_LIMITS__AI_POSTS_PER_MINUTE", "60".into()),
        // The four browsers all come from 127.0.0.1: one address.
        ("AIWALL_LIMITS__QUEUED_PER_ADDRESS", "40".into()),
    ]);
    env
}

/// What a wall stream showed of each job: progress seen, and an end.
#[derive(Default)]
struct Seen {
    progress: HashSet<i64>,
    ended: HashSet<i64>,
}

/// Follows the wall stream of the instance at `base` in the background.
async fn watch_wall(base: &str) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut stream = SseStream::open(&browser(), &format!("{base}/api/v1/wall/events"), None).await;
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        // Until the stream ends: a's breaks when it is killed.
        while let Some(event) = stream.next_or_end().await {
            let mut seen = record.lock().unwrap();
            match wall_event(&event) {
                WallEvent::Progress(p) => drop(seen.progress.insert(p.job_id)),
                WallEvent::Done(d) => drop(seen.ended.insert(d.job_id)),
                WallEvent::Error(e) => drop(seen.ended.insert(e.job_id)),
                _ => {}
            }
        }
    });
    seen
}

/// The instance (its id) that runs job `job` now, from the database.
async fn owner(database: &ScratchDb, job: i64) -> Option<String> {
    let mut db = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query_scalar(
        "SELECT owner FROM ai_generation_jobs WHERE id = $1 AND status IN ('loading', 'generating')",
    )
    .bind(job)
    .fetch_optional(&mut db)
    .await
    .unwrap()
    .flatten()
}

#[tokio::test]
async fn three_instances_behind_nginx_share_every_job_survive_a_kill_9_and_stop_across() {
    let fake = fake_ollama(50.0, 60).await;
    let ollama = fake.url();
    let database = ScratchDb::create().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // a runs three generations at most; the model server six in all, over every instance.
    let mut a =
        AppProcess::start_release(dirs[0].path(), 0, &behind_nginx("a", &database, &ollama, 3))
            .await;
    let author = browser();
    let mut long = Vec::new();
    for i in 0..3 {
        long.push(
            create_ai_post(
                &author,
                &a.url,
                &ai_prompt(&format!("long {i} #fake:rate=10 #fake:tokens=100")),
            )
            .await
            .1,
        );
    }
    let mut runs = Vec::new();
    for &job in &long {
        let p = wait_progress_at(&author, &a.url, job, WAIT, "writing on a", |p| {
            p.progress.current_tokens >= 2
        })
        .await;
        runs.push(p.run);
    }
    let metrics_port = free_port();
    let mut env_b = behind_nginx("b", &database, &ollama, 6);
    env_b.push((
        "AIWALL_SERVER__METRICS_ADDR",
        format!("127.0.0.1:{metrics_port}"),
    ));
    let b = AppProcess::start_release(dirs[1].path(), 0, &env_b).await;
    let c = AppProcess::start_release(dirs[2].path(), 0, &behind_nginx("c", &database, &ollama, 6))
        .await;
    let nginx = Nginx::start_deployed(&[&a.url, &b.url, &c.url]).await;
    let walls = [
        watch_wall(&a.url).await,
        watch_wall(&b.url).await,
        watch_wall(&c.url).await,
    ];

    // Seventeen more through nginx, from four browsers; one of them long enough to be stopped.
    let browsers: Vec<reqwest::Client> = (0..4).map(|_| browser()).collect();
    let mut posted: Vec<(usize, i64, i64)> = Vec::new();
    for i in 0..17 {
        let text = if i == 5 {
            "to be stopped #fake:rate=5 #fake:tokens=300".to_string()
        } else {
            format!("short {i}")
        };
        let who = i % browsers.len();
        let (post, job) = create_ai_post(&browsers[who], &nginx.url, &ai_prompt(&text)).await;
        posted.push((who, post, job));
    }
    let (stopper, _, to_stop) = posted[5];

    // a dies with its three jobs; b or c runs them again, once their leases run out.
    a.kill9().await;
    let killed = Instant::now();
    let mut rescued = Vec::new();
    for (&job, &run) in long.iter().zip(&runs) {
        wait_progress_at(
            &author,
            &b.url,
            job,
            WAIT,
            "written again after a died",
            |p| p.run > run,
        )
        .await;
        rescued.push(killed.elapsed());
    }
    let slowest = *rescued.iter().max().unwrap();
    assert!(
        slowest < Duration::from_millis(LEASE_MS + 2 * RENEW_MS + 3_000),
        "rescued after {rescued:?}\n{}\n{}",
        b.log(),
        c.log()
    );

    // Stop, sent to the instance that does not run the job.
    let runner = eventually(WAIT, "the long job running", || owner(&database, to_stop)).await;
    let other = if runner == "b" { &c.url } else { &b.url };
    let cancel = browsers[stopper]
        .post(format!("{other}/api/v1/ai/generation/{to_stop}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let stopped = wait_terminal_at(&browsers[stopper], other, to_stop, WAIT).await;
    assert_eq!(stopped.status, JobStatus::Cancelled, "{stopped:?}");

    // Every job ends, seen alike on both surviving instances.
    let all: Vec<i64> = long
        .iter()
        .copied()
        .chain(posted.iter().map(|p| p.2))
        .collect();
    for &job in &all {
        let on_b = wait_terminal_at(&author, &b.url, job, WAIT).await;
        let on_c = wait_terminal_at(&author, &c.url, job, WAIT).await;
        let expected = if job == to_stop {
            JobStatus::Cancelled
        } else {
            JobStatus::Completed
        };
        assert_eq!(
            (on_b.status, on_c.status),
            (expected, expected),
            "job {job}: {on_b:?}"
        );
        assert_eq!(on_b.text, on_c.text);
    }
    for (name, wall) in [("b", &walls[1]), ("c", &walls[2])] {
        let wall = Arc::clone(wall);
        eventually(
            WAIT,
            &format!("every job's progress and end on {name}'s wall"),
            || {
                let wall = Arc::clone(&wall);
                let all = all.clone();
                async move {
                    let seen = wall.lock().unwrap();
                    // The three long jobs were claimed before the walls opened: their ends count.
                    let posted_progress = all[3..].iter().all(|j| seen.progress.contains(j));
                    (posted_progress && all.iter().all(|j| seen.ended.contains(j))).then_some(())
                }
            },
        )
        .await;
    }

    // Nothing lost, nothing twice: twenty AI posts, each once, through nginx.
    let page: PostPage = nginx_get(&author, &format!("{}/api/v1/posts?limit=50", nginx.url)).await;
    let ids: Vec<i64> = page.posts.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 20);

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aiwall_bus_notifications_received_total"),
        "{metrics}"
    );
    let per_job: HashMap<&str, usize> = [
        ("b", b.log().matches("job completed").count()),
        ("c", c.log().matches("job completed").count()),
    ]
    .into();
    eprintln!("rescued after kill -9: {rescued:?}; completed per instance: {per_job:?}");
    eprintln!("/metrics of b:\n{metrics}");
    drop(nginx);
}

async fn nginx_get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> T {
    let response = client.get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}
