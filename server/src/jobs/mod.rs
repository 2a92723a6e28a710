//! Generation jobs: the service the HTTP layer calls (submit, stop, retry, forget) and the
//! FIFO queue with its positions. The work itself is done by [`runner`].
mod estimate;
mod runner;
mod throttle;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
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
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

/// The job service, shared by the HTTP handlers and the runner.
pub struct Jobs {
    db: Db,
    hub: Hub,
    ollama: OllamaClient,
    config: Arc<Config>,
    /// Queued job ids in FIFO order; a job's position is its rank here, counting from 1.
    queue: Mutex<BTreeSet<i64>>,
    running: Mutex<HashMap<i64, Running>>,
    wake: Notify,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Jobs {
    /// Recovers what a crash left running, loads the queue and starts the runner.
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
            queue: Mutex::new(BTreeSet::new()),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        for row in jobs.db.unfinished_jobs().await? {
            jobs.lock_queue().insert(row.id);
            jobs.hub.track(row.to_view(None));
        }
        jobs.publish_positions();
        let runner = Arc::clone(&jobs);
        jobs.tasks.spawn(async move { runner.dispatch().await });
        Ok(jobs)
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, BTreeSet<i64>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job that was just stored as queued: put it in line and wake the runner.
    pub fn submit(&self, row: &JobRow) -> JobView {
        let position = {
            let mut queue = self.lock_queue();
            queue.insert(row.id);
            queue
                .iter()
                .position(|&id| id == row.id)
                .map(|i| i as u32 + 1)
        };
        let view = row.to_view(position);
        self.hub.track(view.clone());
        self.wake.notify_one();
        view
    }

    /// The live state of a job: from the hub while it is unfinished, else from its row.
    pub fn view(&self, row: &JobRow) -> JobView {
        self.hub
            .current(row.id)
            .unwrap_or_else(|| row.to_view(None))
    }

    pub fn queued_count(&self) -> usize {
        self.lock_queue().len()
    }

    /// Jobs waiting or running: what the queue limit counts.
    pub fn backlog(&self) -> usize {
        self.lock_queue().len() + self.lock_running().len()
    }

    /// Stops a job: a queued one ends at once; a running one drops its Ollama request and ends
    /// as `cancelled`. Returns false when the job had already finished.
    pub async fn cancel(&self, job_id: i64) -> DbResult<bool> {
        if let Some(running) = self.lock_running().get(&job_id) {
            *running.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(StopReason::Cancelled);
            running.token.cancel();
            return Ok(true);
        }
        match self
            .db
            .end_job(job_id, JobStatus::Cancelled, "Stopped by its author.", None)
            .await?
        {
            Some(row) => {
                self.lock_queue().remove(&job_id);
                self.hub.finish(row.to_view(None));
                self.publish_positions();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Puts a failed or cancelled job back in the queue, from the beginning.
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
        self.lock_queue().remove(&job_id);
        self.hub.forget(job_id);
        self.publish_positions();
        Ok(())
    }

    /// Tells every queued job its place in line (only those whose place changed).
    fn publish_positions(&self) {
        let queue: Vec<i64> = self.lock_queue().iter().copied().collect();
        for (i, id) in queue.into_iter().enumerate() {
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
            let running: Vec<i64> = self.lock_running().keys().copied().collect();
            tracing::warn!(
                ?running,
                "shutdown grace period over; requeueing running jobs"
            );
            for running in self.lock_running().values() {
                *running.reason.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(StopReason::Shutdown);
                running.token.cancel();
            }
            self.tasks.wait().await;
        }
    }
}
