//! `notify-bench`: the ceiling of notifying commits on this machine's PostgreSQL. A transaction
//! that sent a NOTIFY takes a database-wide lock at commit, so such commits are serialised; the
//! live bus between instances sends one per running job per push interval. For 1, 4 and 16
//! connections, for 3 s each, it counts commits per second of: a progress-like UPDATE alone; the
//! UPDATE and a `pg_notify` in one transaction; a `pg_notify` alone. A listener counts what it
//! receives, and how late. A benchmark, not a test: it prints figures.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures::future::join_all;
use hdrhistogram::Histogram;
use sqlx::{postgres::PgListener, Connection, Executor, PgConnection};

#[derive(Parser, Debug)]
#[command(about = "Measure PostgreSQL's ceiling of notifying commits")]
struct Args {
    /// The database to measure on (a scratch table is made there and dropped).
    #[arg(
        long,
        env = "TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    url: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

#[derive(Clone, Copy, Debug)]
enum Commit {
    Update,
    UpdateAndNotify,
    Notify,
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A payload the size the bus sends for a small text delta.
fn payload(worker: usize) -> String {
    format!(
        r#"{{"job":{worker},"run":1,"seq":{},"delta":"{}"}}"#,
        unix_micros(),
        "x".repeat(120)
    )
}

async fn worker(url: String, table: String, id: usize, kind: Commit, until: Instant) -> u64 {
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let update = format!("UPDATE {table} SET n = n + 1, text = $2 WHERE id = $1");
    let mut done = 0;
    while Instant::now() < until {
        let id_bind = i64::try_from(id).unwrap_or_default();
        match kind {
            Commit::Update => {
                sqlx::query(&update)
                    .bind(id_bind)
                    .bind(payload(id))
                    .execute(&mut conn)
                    .await
                    .expect("update");
            }
            Commit::UpdateAndNotify => {
                let mut tx = conn.begin().await.expect("begin");
                sqlx::query(&update)
                    .bind(id_bind)
                    .bind(payload(id))
                    .execute(&mut *tx)
                    .await
                    .expect("update");
                sqlx::query("SELECT pg_notify('aiwall_bench', $1)")
                    .bind(payload(id))
                    .execute(&mut *tx)
                    .await
                    .expect("notify");
                tx.commit().await.expect("commit");
            }
            Commit::Notify => {
                sqlx::query("SELECT pg_notify('aiwall_bench', $1)")
                    .bind(payload(id))
                    .execute(&mut conn)
                    .await
                    .expect("notify");
            }
        }
        done += 1;
    }
    done
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let table = format!("notify_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&args.url).await?;
    admin
        .execute(
            format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, n BIGINT, text TEXT)").as_str(),
        )
        .await?;
    admin
        .execute(
            format!("INSERT INTO {table} SELECT g, 0, '' FROM generate_series(0, 63) g").as_str(),
        )
        .await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    println!(
        "PostgreSQL {version}, {} s per row, payload ~{} bytes",
        args.seconds,
        payload(0).len()
    );
    println!(
        "{:<22} {:>6} {:>12} {:>10} {:>12} {:>12}",
        "commit", "conns", "commits/s", "received", "lag p50 ms", "lag p99 ms"
    );
    for kind in [Commit::Update, Commit::UpdateAndNotify, Commit::Notify] {
        for conns in [1, 4, 16] {
            let mut listener = PgListener::connect(&args.url).await?;
            listener.listen("aiwall_bench").await?;
            let until = Instant::now() + Duration::from_secs(args.seconds);
            let listening = tokio::spawn(async move {
                let mut lag = Histogram::<u64>::new(3).expect("histogram");
                let mut received = 0u64;
                let stop = until + Duration::from_secs(2);
                while let Ok(Ok(n)) = tokio::time::timeout_at(stop.into(), listener.recv()).await {
                    received += 1;
                    let sent: Option<i64> = n
                        .payload()
                        .split("\"seq\":")
                        .nth(1)
                        .and_then(|rest| rest.split(',').next())
                        .and_then(|s| s.parse().ok());
                    if let Some(sent) = sent {
                        let _ = lag.record(u64::try_from(unix_micros() - sent).unwrap_or(0));
                    }
                }
                (received, lag)
            });
            let started = Instant::now();
            let counts =
                join_all((0..conns).map(|id| {
                    tokio::spawn(worker(args.url.clone(), table.clone(), id, kind, until))
                }))
                .await;
            let elapsed = started.elapsed().as_secs_f64();
            let commits: u64 = counts.into_iter().map(|c| c.unwrap_or(0)).sum();
            let (received, lag) = listening.await?;
            let ms = |q| lag.value_at_quantile(q) as f64 / 1000.0;
            let (p50, p99) = if received > 0 {
                (format!("{:.2}", ms(0.5)), format!("{:.2}", ms(0.99)))
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "{:<22} {:>6} {:>12.0} {:>10} {:>12} {:>12}",
                format!("{kind:?}"),
                conns,
                commits as f64 / elapsed,
                received,
                p50,
                p99
            );
        }
    }
    admin
        .execute(format!("DROP TABLE {table}").as_str())
        .await?;
    Ok(())
}
