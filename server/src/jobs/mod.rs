//! Generation jobs: the service the HTTP layer calls (admit, submit, stop, retry, forget) and
//! the queue of waiting jobs with their positions. [`dispatch`] starts runs, [`run`] does one.
//!
//! The line of waiting jobs is the database's ([`Db::queued_jobs`], FIFO by the time a job
//! entered it); this instance keeps it in memory, updated as jobs come and go here and on the
//! other instances (the bus), and read again from the database at every lease renewal. Dispatch
//! goes down the line and claims every job for which the [`Pool`] has a free place on a model
//! server that has its model, so a job whose servers are all busy holds up none that could
//! run elsewhere; the claim itself counts the server's slots over all instances. The waiting
//! jobs and the running ones sit under one lock, and dispatch moves a job from one to the
//! other under it, so a Stop never misses a job that is being claimed. A job whose every
//! server is unreachable waits, and fails after `jobs.outage_wait_secs` ([`outage`]).
//!
//! Each run holds a lease on its job ([`lease`]); a job whose instance died is run again by
//! another, and a Stop asked on one instance reaches the instance that runs the job.
mod admission;
#[cfg(test)]
mod calibration;
mod cap;
mod dispatch;
mod estimate;
pub mod fold;
mod forecast;
mod history;
mod lease;
mod line;
mod live;
mod outage;
mod publisher;
mod queue;
mod remote;
mod run;
mod starts;
mod throttle;
mod view;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use app::types::{JobStatus, JobView};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    client_addr::ClientKey,
    config::Config,
    db::{Db, DbResult, Engine, Interrupted, JobRow},
    hub::Hub,
    limits::Limits,
    pool::Pool,
};

pub use admission::{Admission, AdmissionError};
pub use estimate::Estimator;
pub use view::job_view;

use queue::{Queue, StopHandle, StopReason, Waiting};

/// A Stop that finds its job neither waiting nor running looks again this often, this many
/// times: the job is between the two only while its claim is being written.
const CLAIM_WAIT_STEP: Duration = Duration::from_millis(10);
const CLAIM_WAIT_STEPS: u32 = 50;

/// The job service, shared by the HTTP handlers and the runs.
pub struct Jobs {
    db: Db,
    hub: Hub,
    pool: Arc<Pool>,
    config: Arc<Config>,
    limits: Arc<Limits>,
    queue: Mutex<Queue>,
    /// This instance's id: the owner of the jobs it runs.
    owner: Arc<str>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Ends the lease keeper, once the last run here has ended.
    leases_done: CancellationToken,
    /// What each model has done lately (see `starts`).
    histories: Mutex<starts::Histories>,
}

impl Jobs {
    /// Recovers what a crash left running (on PostgreSQL: what this instance, `owner`, ran,
    /// and what any instance left with its lease run out), loads the queue and starts
    /// dispatching, and on PostgreSQL keeping the leases.
    pub async fn start(
        db: Db,
        hub: Hub,
        pool: Arc<Pool>,
        config: Arc<Config>,
        limits: Arc<Limits>,
        owner: &str,
    ) -> DbResult<Arc<Self>> {
        let shared = db.engine() == Engine::Postgres;
        let which = if shared {
            Interrupted::OwnOrExpired(owner)
        } else {
            Interrupted::All
        };
        let recovered = db
            .recover_interrupted(config.jobs.max_attempts, which)
            .await?;
        crate::metrics::jobs_rescued(recovered.requeued.len());
        let jobs = Arc::new(Self {
            db,
            hub,
            pool,
            config,
            limits,
            queue: Mutex::new(Queue::default()),
            owner: owner.into(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            leases_done: CancellationToken::new(),
            histories: Mutex::default(),
        });
        // The line first: it holds the jobs recovery just put back, which `announce` then
        // finds waiting already.
        for row in jobs.db.queued_jobs().await? {
            jobs.submit(&row);
        }
        jobs.announce(&recovered, "recovered jobs interrupted by a restart")
            .await?;
        jobs.pool.watch(&jobs.tasks, jobs.shutdown.clone());
        let dispatcher = Arc::clone(&jobs);
        jobs.tasks.spawn(async move { dispatcher.dispatch().await });
        if shared {
            // Not one of `tasks`: it keeps the leases of the runs `shutdown` waits for.
            let keeper = Arc::clone(&jobs);
            let done = jobs.leases_done.clone();
            tokio::spawn(async move { keeper.keep_leases(done).await });
        }
        Ok(jobs)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue half-updated.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job that was just stored as queued (new, retried or recovered): put it in the queue
    /// and wake dispatch.
    pub fn submit(&self, row: &JobRow) -> JobView {
        let view = self.enter_locked(&mut self.queue(), row);
        self.pool.wake();
        view
    }

    /// Puts `row` in the queue and tells its watchers (and the jobs behind it) their places.
    fn enter_locked(&self, queue: &mut Queue, row: &JobRow) -> JobView {
        queue.enter(Waiting::of(row));
        self.hub.track(job_view(row, None));
        self.publish_positions(queue);
        self.hub
            .current(row.id)
            .unwrap_or_else(|| job_view(row, None))
    }

    /// A run handed its job back (`row`, queued again): it moves from running to waiting in one
    /// step under the queue lock, unless the run was stopped before that (false: the caller
    /// ends it), so that a Stop finds it either running or waiting, never lost in between.
    fn requeue(&self, row: &JobRow, stop: &StopHandle) -> bool {
        {
            let mut queue = self.queue();
            queue.finish(row.id, row.runs);
            if stop.is_stopped() {
                return false;
            }
            self.enter_locked(&mut queue, row);
        }
        self.pool.wake();
        true
    }

    /// Takes a job out of the queue that can no longer run (cancelled or deleted meanwhile).
    fn leave_queue(&self, job_id: i64) {
        let mut queue = self.queue();
        queue.leave(job_id);
        self.publish_positions(&queue);
    }

    /// The live state of a job: from the hub while it is unfinished, else from its row.
    pub fn view(&self, row: &JobRow) -> JobView {
        self.hub
            .current(row.id)
            .unwrap_or_else(|| job_view(row, None))
    }

    pub fn queued_count(&self) -> usize {
        self.queue().waiting_count()
    }

    /// Whether the server has begun shutting down (and so takes no new generations).
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops a job: a queued one ends at once; a running one drops its Ollama request and ends
    /// as `cancelled`, on whichever instance runs it. Returns false when the job had already
    /// finished.
    pub async fn cancel(&self, job_id: i64) -> DbResult<bool> {
        for _ in 0..CLAIM_WAIT_STEPS {
            if let Some(running) = self.queue().running(job_id) {
                running.stop(StopReason::Cancelled);
                return Ok(true);
            }
            if let Some(row) = self
                .db
                .cancel_queued_job(job_id, crate::db::STOPPED_BY_AUTHOR)
                .await?
            {
                self.leave_queue(job_id);
                self.hub.finish(job_view(&row, None));
                return Ok(true);
            }
            match self.db.job(job_id).await? {
                Some(row) if row.status.is_running() && !self.runs_here(&row) => {
                    // Another instance runs it: the request stays in the row until that
                    // runner (or, should it die, the instance that rescues the job) ends it.
                    if self.db.request_stop(job_id).await? {
                        if let Some(outbox) = self.hub.outbox() {
                            outbox.stop(job_id);
                        }
                        return Ok(true);
                    }
                }
                Some(row) if !row.status.is_terminal() => tokio::time::sleep(CLAIM_WAIT_STEP).await,
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Puts a failed or cancelled job back in the queue, at its end, from the beginning, asked
    /// now from `address` (whose waiting posts it counts among).
    pub async fn retry(&self, job_id: i64, address: ClientKey) -> DbResult<Option<JobView>> {
        Ok(self
            .db
            .retry_job(job_id, &address.to_string())
            .await?
            .map(|row| self.submit(&row)))
    }

    /// Stops and forgets a job whose post is being deleted.
    pub async fn forget(&self, job_id: i64) -> DbResult<()> {
        self.cancel(job_id).await?;
        self.hub.forget(job_id);
        Ok(())
    }

    /// Tells every waiting job its place in the line, what it waits for, when it is expected
    /// to start and the time left until it is expected to end (only those for which that
    /// changed). A job's line is the waiting jobs ahead of it that need one of the
    /// same model servers. Called with the queue locked, so that two changes of it cannot
    /// publish out of order.
    fn publish_positions(&self, queue: &Queue) {
        let starts = self.expected_starts(queue);
        let now = crate::db::now_ms();
        for (id, place) in line::places(&self.pool, queue) {
            let expected = starts.get(&id).copied().unwrap_or_default();
            if self.hub.current(id).is_some_and(|v| {
                v.status == JobStatus::Queued
                    && ((v.queue_position, &v.waiting_for, v.unreachable_since)
                        != (
                            Some(place.position),
                            &Some(place.waiting_for.clone()),
                            place.unreachable_since,
                        )
                        || starts::moved(v.expected_start_at, expected.start, now)
                        || starts::moved(v.progress.ends_at(), expected.end, now))
            }) {
                self.hub.update(id, |v| {
                    v.queue_position = Some(place.position);
                    v.waiting_for = Some(place.waiting_for);
                    v.unreachable_since = place.unreachable_since;
                    v.expected_start_at = expected.start;
                    // From the moment of posting, the time left is the wait and the run.
                    v.progress.estimated_time_remaining = expected
                        .end
                        .map(|end| u64::try_from(end - now).unwrap_or_default());
                    v.progress.estimated_time_remaining_low = None;
                    v.progress.estimated_time_remaining_high = None;
                    v.progress.last_update_at = now;
                });
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
                let queue = self.queue();
                let running: Vec<i64> = queue.running_jobs().map(|(id, _)| id).collect();
                tracing::warn!(
                    ?running,
                    "shutdown grace period over; handing running jobs back to the queue"
                );
                for (_, job) in queue.running_jobs() {
                    job.stop(StopReason::Shutdown);
                }
            }
            self.tasks.wait().await;
        }
        self.leases_done.cancel();
    }
}
