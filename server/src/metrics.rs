//! What the server counts for Prometheus, named once here, and `/metrics` on its own address
//! (`server.metrics_addr`, off by default), rendered by `metrics-exporter-prometheus`.
//!
//! The call sites use the functions below; without the exporter installed (tests, or the
//! endpoint off) they cost next to nothing.
use std::{sync::OnceLock, time::Duration};

use app::types::{FinalStats, JobStatus, Progress};
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::db::Db;

/// Jobs by status, counted in the database at each scrape (so every instance reports the
/// same, whole wall).
const JOBS: &str = "aiwall_jobs";
const QUEUE_WAIT: &str = "aiwall_queue_wait_seconds";
const FIRST_TOKEN: &str = "aiwall_time_to_first_token_seconds";
const TOKENS_PER_SECOND: &str = "aiwall_tokens_per_second";
const GENERATION: &str = "aiwall_generation_seconds";
const JOBS_ENDED: &str = "aiwall_jobs_ended_total";
const STREAMS: &str = "aiwall_sse_streams";
const EVENTS: &str = "aiwall_sse_events_sent_total";
const DB_WRITES: &str = "aiwall_db_writes_total";
const RESCUED: &str = "aiwall_jobs_rescued_total";
const INSTANCE: &str = "aiwall_instance";
const BUS_SENT: &str = "aiwall_bus_notifications_sent_total";
const BUS_RECEIVED: &str = "aiwall_bus_notifications_received_total";
const BUS_LAG: &str = "aiwall_bus_lag_seconds";
const BUS_RESYNCS: &str = "aiwall_bus_resyncs_total";
const LEASES_LOST: &str = "aiwall_leases_lost_total";

/// Seconds: from a frame to a long model load.
const SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
const RATE_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0];

/// The process's exporter: one recorder per process, however many servers a test starts.
static EXPORTER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the exporter (once per process) and returns its handle.
pub fn exporter() -> Result<PrometheusHandle, String> {
    EXPORTER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(TOKENS_PER_SECOND.into()), RATE_BUCKETS)
                })
                .map_err(|e| e.to_string())?;
            let handle = builder.install_recorder().map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
}

/// The `# HELP` and `# TYPE` of each metric.
fn describe() {
    describe_gauge!(
        JOBS,
        "Jobs in each status, counted in the database (the whole wall)."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from entering the queue to a claim (a job handed back keeps its first time)."
    );
    describe_histogram!(
        FIRST_TOKEN,
        Unit::Seconds,
        "Time from the request to the first token, per completed job."
    );
    describe_histogram!(TOKENS_PER_SECOND, "Writing speed of each completed job.");
    describe_histogram!(
        GENERATION,
        Unit::Seconds,
        "Generation time of each completed job."
    );
    describe_counter!(
        JOBS_ENDED,
        "Jobs whose run on this instance ended them, by how they ended."
    );
    describe_gauge!(STREAMS, "Open SSE streams on this instance, by kind.");
    describe_counter!(EVENTS, "SSE events sent by this instance, by stream kind.");
    describe_counter!(
        DB_WRITES,
        "Write statements this instance sent to the database (counted when sent), by query."
    );
    describe_counter!(
        RESCUED,
        "Interrupted jobs put back in the queue: at start, or after their instance's lease ran out."
    );
    describe_counter!(BUS_SENT, "Notifications this instance sent to the others.");
    describe_counter!(
        BUS_RECEIVED,
        "Notifications this instance heard from the others, by kind."
    );
    describe_histogram!(
        BUS_LAG,
        "From a notification's sending to its hearing here (the instances' clocks included)."
    );
    describe_counter!(
        BUS_RESYNCS,
        "Times this instance (re)connected its listener and read the live state from the database."
    );
    describe_counter!(
        LEASES_LOST,
        "Runs this instance stopped because its lease on their job was lost."
    );
    describe_gauge!(INSTANCE, "1, labelled with this instance's id.");
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    db: Db,
    instance: String,
    shutdown: CancellationToken,
) {
    gauge!(INSTANCE, "instance" => instance).set(1.0);
    let upkeep = handle.clone();
    let stop_upkeep = shutdown.clone();
    tokio::spawn(async move {
        // Histograms are drained into their buckets here as well as at each scrape.
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = every.tick() => upkeep.run_upkeep(),
                _ = stop_upkeep.cancelled() => return,
            }
        }
    });
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state((handle, db));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the metrics endpoint stopped");
    }
}

async fn render(State((handle, db)): State<(PrometheusHandle, Db)>) -> impl IntoResponse {
    match db.job_counts().await {
        Ok(counts) => {
            for status in JobStatus::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                gauge!(JOBS, "status" => status.as_str()).set(as_f64(n));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the jobs for /metrics"),
    }
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}

/// A job was claimed after waiting `waited_ms` in the queue.
pub fn job_claimed(waited_ms: i64) {
    histogram!(QUEUE_WAIT).record(as_f64(waited_ms.max(0)) / 1000.0);
}

/// A job ended `status`; a completed one with its statistics.
pub fn job_ended(status: JobStatus, completed: Option<(&FinalStats, &Progress)>) {
    counter!(JOBS_ENDED, "status" => status.as_str()).increment(1);
    let Some((stats, progress)) = completed else {
        return;
    };
    if let Some(ms) = stats.time_to_first_token_ms {
        histogram!(FIRST_TOKEN).record(as_f64(ms) / 1000.0);
    }
    if progress.tokens_per_second > 0.0 {
        histogram!(TOKENS_PER_SECOND).record(progress.tokens_per_second);
    }
    histogram!(GENERATION).record(as_f64(progress.elapsed_time) / 1000.0);
}

/// Jobs a restart (or a lost instance) left running that were put back in the queue.
pub fn jobs_rescued(n: usize) {
    counter!(RESCUED).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// Notifications sent to the other instances.
pub fn bus_sent(n: usize) {
    counter!(BUS_SENT).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// A notification heard from another instance, `lag_ms` after it was sent.
pub fn bus_received(kind: &'static str, lag_ms: i64) {
    counter!(BUS_RECEIVED, "kind" => kind).increment(1);
    histogram!(BUS_LAG).record(as_f64(lag_ms.max(0)) / 1000.0);
}

/// The listener (re)connected and read the live state from the database.
pub fn bus_resynced() {
    counter!(BUS_RESYNCS).increment(1);
}

/// A run stopped because its instance lost the job's lease.
pub fn lease_lost() {
    counter!(LEASES_LOST).increment(1);
}

/// A write to the database, by what it wrote.
pub fn db_write(what: &'static str) {
    counter!(DB_WRITES, "query" => what).increment(1);
}

/// The kinds of live stream, by what they follow.
#[derive(Clone, Copy, Debug)]
pub enum StreamKind {
    /// `/api/v1/ai/generation/{id}/progress`.
    Job,
    /// `/api/v1/wall/events`.
    Wall,
}

impl StreamKind {
    fn as_str(self) -> &'static str {
        match self {
            StreamKind::Job => "job",
            StreamKind::Wall => "wall",
        }
    }
}

/// `n` events went out on streams of `kind`, counted once for many streams (the wall's pump
/// counts a round of writes at once, not each watcher's).
pub fn events_sent(kind: StreamKind, n: usize) {
    if n > 0 {
        counter!(EVENTS, "kind" => kind.as_str()).increment(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// Counts an open stream for as long as it lives, and the events sent on it. The handles are
/// looked up once per stream, not once per event: an event goes to every watcher.
pub struct OpenStream {
    open: Gauge,
    events: Counter,
}

impl OpenStream {
    pub fn new(kind: StreamKind) -> Self {
        let open = gauge!(STREAMS, "kind" => kind.as_str());
        open.increment(1.0);
        Self {
            open,
            events: counter!(EVENTS, "kind" => kind.as_str()),
        }
    }

    /// An event went out on this stream.
    pub fn sent(&self) {
        self.events.increment(1);
    }

    /// `n` events went out on this stream at once.
    pub fn sent_many(&self, n: usize) {
        self.events.increment(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A count or duration as a metric's value (exact far past any count the wall reaches).
#[allow(clippy::cast_precision_loss)]
fn as_f64<T: Into<i128>>(n: T) -> f64 {
    n.into() as f64
}
