//! Generation jobs: the service the HTTP layer calls (submit, stop, retry, forget), and the
//! line of waiting jobs with their positions. The work itself is done by [`runner`].
//!
//! The line (in memory, FIFO by the time a job entered it) decides what runs next: the runner
//! only claims the job at its head, so nothing runs before `submit` put it in line. The line and
//! the set of running jobs sit under one lock, and the runner moves a job from one to the other
//! under it, so a Stop never misses a job that is being claimed.
mod estimate;
mod runner;
mod throttle;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use app::types::{JobStatus, JobView};
use tokio::sync::{Notify, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    db::{Db, DbResult, JobRow},
    hub::Hub,
    ollama::OllamaClient,
};

pub use estimate::Estimator;

/// Why a running job is being stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// Its author pressed Stop (or deleted the post).
    Cancelled,
    /// The server is shutting down: the job goes back to the queue.
    Shutdown,
}

struct Running {
    /// Which run of the job this is: a Retry's run must not be forgotten when the previous
    /// run's task finishes.
    run: i64,
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Running {
    fn stop(&self, reason: StopReason) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.token.cancel();
    }
}

/// Where every unfinished job is: waiting in line (ordered by place, then id), or running.
#[derive(Default)]
struct Lines {
    waiting: BTreeSet<(i64, i64)>,
    running: HashMap<i64, Running>,
}

impl Lines {
    fn position(&self, job_id: i64) -> Option<u32> {
        self.waiting
            .iter()
            .position(|&(_, id)| id == job_id)
            .map(|i| i as u32 + 1)
    }

    fn leave(&mut self, job_id: i64) {
        self.waiting.retain(|&(_, id)| id != job_id);
    }
}

/// The job service, shared by the HTTP handlers and the runner.
pub struct Jobs {
    db: Db,
    hub: Hub,
    ollama: OllamaClient,
    config: Arc<Config>,
    lines: Mutex<Lines>,
    wake: Notify,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Jobs {
    /// Recovers what a crash left running, loads the line and starts the runner.
    pub async fn start(
        db: Db,
        hub: Hub,
        ollama: OllamaClient,
        config: Arc<Config>,
    ) -> DbResult<Arc<Self>> {
        let recovered = db.recover_interrupted(config.jobs.max_attempts).await?;
        if !recovered.requeued.is_empty() || !recovered.failed.is_empty() {
            tracing::warn!(requeued = ?recovered.requeued, failed = ?recovered.failed, "recovered jobs interrupted by a restart");
        }
        let jobs = Arc::new(Self {
            slots: Arc::new(Semaphore::new(config.jobs.concurrency.max(1))),
            db,
            hub,
            ollama,
            config,
            lines: Mutex::new(Lines::default()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        for row in jobs.db.unfinished_jobs().await? {
            jobs.submit(&row);
        }
        let runner = Arc::clone(&jobs);
        jobs.tasks.spawn(async move { runner.dispatch().await });
        Ok(jobs)
    }

    fn lines(&self) -> MutexGuard<'_, Lines> {
        // A panic while holding this lock cannot leave the two sets half-updated.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job that was just stored as queued (new, retried or recovered): put it in line and
    /// wake the runner.
    pub fn submit(&self, row: &JobRow) -> JobView {
        let view = {
            let mut lines = self.lines();
            lines.waiting.insert((row.queued_at, row.id));
            let view = row.to_view(lines.position(row.id));
            self.hub.track(view.clone());
            self.publish_positions(&lines);
            view
        };
        self.wake.notify_one();
        view
    }

    /// The job at the head of the line, if any.
    fn next_in_line(&self) -> Option<i64> {
        self.lines().waiting.first().map(|&(_, id)| id)
    }

    /// Takes a job out of the line that can no longer run (cancelled or deleted meanwhile).
    fn drop_from_line(&self, job_id: i64) {
        let mut lines = self.lines();
        lines.leave(job_id);
        self.publish_positions(&lines);
    }

    /// Moves a claimed job from the line to the running set and announces it.
    fn start_running(&self, row: &JobRow) -> Running {
        let running = Running {
            run: row.runs,
            token: CancellationToken::new(),
            reason: Arc::default(),
        };
        let mut lines = self.lines();
        lines.leave(row.id);
        lines.running.insert(
            row.id,
            Running {
                run: row.runs,
                token: running.token.clone(),
                reason: Arc::clone(&running.reason),
            },
        );
        self.hub.track(row.to_view(None));
        self.publish_positions(&lines);
        running
    }

    /// Forgets a run that has ended (but not a newer run of the same job, after a Retry).
    fn stop_running(&self, job_id: i64, run: i64) {
        let mut lines = self.lines();
        if lines.running.get(&job_id).is_some_and(|r| r.run == run) {
            lines.running.remove(&job_id);
        }
    }

    /// The live state of a job: from the hub while it is unfinished, else from its row.
    pub fn view(&self, row: &JobRow) -> JobView {
        self.hub
            .current(row.id)
            .unwrap_or_else(|| row.to_view(None))
    }

    /// Jobs waiting or running: what the queue limit counts.
    pub fn backlog(&self) -> usize {
        let lines = self.lines();
        lines.waiting.len() + lines.running.len()
    }

    pub fn queued_count(&self) -> usize {
        self.lines().waiting.len()
    }

    /// Whether the server has begun shutting down (and so takes no new generations).
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops a job: a queued one ends at once; a running one drops its Ollama request and ends
    /// as `cancelled`. Returns false when the job had already finished.
    pub async fn cancel(&self, job_id: i64) -> DbResult<bool> {
        // A job can be between the line and the running set only while its claim is written;
        // look again then.
        for _ in 0..50 {
            if let Some(running) = self.lines().running.get(&job_id) {
                running.stop(StopReason::Cancelled);
                return Ok(true);
            }
            if let Some(row) = self
                .db
                .cancel_queued_job(job_id, "Stopped by its author.")
                .await?
            {
                self.drop_from_line(job_id);
                self.hub.finish(row.to_view(None));
                return Ok(true);
            }
            match self.db.job(job_id).await? {
                Some(row) if !row.status().is_terminal() => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Puts a failed or cancelled job back in line, at its end, from the beginning.
    pub async fn retry(&self, job_id: i64) -> DbResult<Option<JobView>> {
        Ok(self
            .db
            .requeue_job(job_id, true)
            .await?
            .map(|row| self.submit(&row)))
    }

    /// Stops and forgets a job whose post is being deleted.
    pub async fn forget(&self, job_id: i64) -> DbResult<()> {
        self.cancel(job_id).await?;
        self.hub.forget(job_id);
        Ok(())
    }

    /// Tells every waiting job its place in line (only those whose place changed). Called with
    /// the line locked, so that two changes of the line cannot publish out of order.
    fn publish_positions(&self, lines: &Lines) {
        for (i, &(_, id)) in lines.waiting.iter().enumerate() {
            let position = Some(i as u32 + 1);
            if self
                .hub
                .current(id)
                .is_some_and(|v| v.queue_position != position && v.status == JobStatus::Queued)
            {
                self.hub.update(id, |v| v.queue_position = position);
            }
        }
    }

    /// Stops taking work, gives running generations `grace` to finish, then hands the rest
    /// back to the queue (they run again after the restart).
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            {
                let lines = self.lines();
                let running: Vec<i64> = lines.running.keys().copied().collect();
                tracing::warn!(
                    ?running,
                    "shutdown grace period over; requeueing running jobs"
                );
                for job in lines.running.values() {
                    job.stop(StopReason::Shutdown);
                }
            }
            self.tasks.wait().await;
        }
    }
}
