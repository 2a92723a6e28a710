//! The dispatch loop: goes down the queue and starts every job for which the pool has a free
//! place on a model server that has its model (so a job whose servers are all busy or down
//! holds up none that could run elsewhere); fails the jobs that no server here can run, and
//! those that waited too long for an unreachable one; then sleeps until a job arrives, a slot
//! frees up or a server comes back.
use std::{sync::Arc, time::Duration};

use app::types::{Failure, JobStatus};
use tracing::Instrument;

use super::{
    queue::{StopHandle, StopReason},
    view::job_view,
    Jobs,
};
use crate::{
    backend::BackendError,
    db::{Claimant, Written},
    metrics,
    pool::Slot,
};

/// After the database refused a claim: wait a moment rather than spin on it.
const CLAIM_RETRY_DELAY: Duration = Duration::from_secs(1);
/// After a claim found its model server full (its slots taken by other instances) or the job
/// being claimed by another: look again this soon, whatever wakes dispatch meanwhile.
const NOT_NOW_DELAY: Duration = Duration::from_millis(250);

/// What came of one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claimed {
    /// The job runs here now, or is gone (ended or claimed elsewhere).
    Settled,
    /// The job is still waiting: its server's slots are all taken, over all instances.
    NotNow,
    /// The database refused the claim.
    Refused,
}
/// The longest sleep with nothing to do: a safety net under the wake-ups.
const IDLE_CHECK: Duration = Duration::from_secs(60);
/// While jobs wait, how often their expected starts are looked at again (the running jobs'
/// estimates move; only a start that moved enough is told).
const STARTS_CHECK: Duration = Duration::from_secs(5);

/// What one pass down the queue decided.
#[derive(Default)]
struct Plan {
    /// Jobs to start now, each with the slot it takes.
    starts: Vec<(i64, Slot)>,
    /// Jobs (with their model) that no server here may run.
    nowhere: Vec<(i64, String)>,
}

impl Jobs {
    pub(super) async fn dispatch(self: Arc<Self>) {
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            // What the waiting jobs' expected starts are worked out from.
            self.load_missing_histories().await;
            let Plan { starts, nowhere } = self.plan();
            let mut full: Vec<String> = Vec::new();
            for (job_id, slot) in starts {
                if full.contains(&slot.member().name) {
                    continue;
                }
                let backend = slot.member().name.clone();
                match self.start_run(job_id, slot).await {
                    Claimed::Settled => {}
                    Claimed::NotNow => full.push(backend),
                    Claimed::Refused => {
                        tokio::select! {
                            _ = tokio::time::sleep(CLAIM_RETRY_DELAY) => {}
                            _ = self.shutdown.cancelled() => return,
                        }
                    }
                }
            }
            if !full.is_empty() {
                // The slots let go above woke dispatch already: without this pause it would
                // ask the database again at once.
                tokio::select! {
                    _ = tokio::time::sleep(NOT_NOW_DELAY) => {}
                    _ = self.shutdown.cancelled() => return,
                }
            }
            for (job_id, model) in nowhere {
                self.fail_nowhere(job_id, &model).await;
            }
            let next_due = self.fail_overdue().await;
            let idle = if self.queue().waiting_count() > 0 {
                STARTS_CHECK
            } else {
                IDLE_CHECK
            };
            tokio::select! {
                _ = self.pool.changed() => {}
                _ = tokio::time::sleep(next_due.unwrap_or(idle).min(idle)) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// The waiting jobs that can start now, each with the slot it takes, and those no server
    /// here may run; the places of the others are published.
    fn plan(&self) -> Plan {
        let queue = self.queue();
        let mut plan = Plan::default();
        for (job_id, model) in queue.waiting_models() {
            if let Some(slot) = self.pool.place(model) {
                plan.starts.push((job_id, slot));
            } else if self.pool.candidates(model).is_empty() {
                plan.nowhere.push((job_id, model.to_string()));
            }
        }
        self.publish_positions(&queue);
        plan
    }

    /// Claims a waiting job for `slot`'s server and starts its run.
    async fn start_run(self: &Arc<Self>, job_id: i64, slot: Slot) -> Claimed {
        let backend = slot.member().name.clone();
        let claimant = Claimant {
            backend: &backend,
            slots: slot.member().concurrency,
            owner: &self.owner,
            lease_ms: self.config.jobs.lease_ms,
        };
        match self.db.claim_job(job_id, &claimant).await {
            Ok(Some(row)) => {
                metrics::job_claimed(row.started_at.unwrap_or(row.queued_at) - row.queued_at);
                let stop = StopHandle::new(row.runs);
                {
                    let mut queue = self.queue();
                    queue.start(row.id, stop.clone());
                    // Claimed as the server began to stop (after `shutdown` looked at the
                    // running jobs, or with no grace): the run hands the job straight back.
                    if self.shutdown.is_cancelled() {
                        stop.stop(StopReason::Shutdown);
                    }
                    self.hub.track(job_view(&row, None));
                    self.publish_positions(&queue);
                }
                let jobs = Arc::clone(self);
                let span =
                    tracing::info_span!("job", job_id = row.id, model = %row.model, %backend);
                self.tasks
                    .spawn(async move { jobs.run(row, stop, slot).await }.instrument(span));
                Claimed::Settled
            }
            Ok(None) => {
                // Cancelled, deleted or claimed elsewhere since it entered the line: it leaves.
                // A job still queued waits for a slot its server has free over all instances.
                match self.db.job(job_id).await {
                    Ok(Some(row)) if row.status == JobStatus::Queued && row.stop_requested => {
                        if let Err(e) = self.cancel_stopped_in_line(job_id).await {
                            tracing::warn!(job_id, error = %e, "cannot end a stopped job");
                        }
                        Claimed::Settled
                    }
                    Ok(Some(row)) if row.status == JobStatus::Queued => Claimed::NotNow,
                    // Ended, or claimed by another instance: the hub follows its row.
                    Ok(Some(row)) => {
                        self.follow_row(&row, None);
                        Claimed::Settled
                    }
                    _ => {
                        self.leave_queue(job_id);
                        self.hub.forget(job_id);
                        Claimed::Settled
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, delay = ?CLAIM_RETRY_DELAY, "cannot claim the next job; trying again");
                Claimed::Refused
            }
        }
    }

    /// Fails a job whose model no server here is configured to run.
    async fn fail_nowhere(&self, job_id: i64, model: &str) {
        let error = BackendError::ModelNotInstalled {
            model: model.to_string(),
        };
        match self
            .db
            .fail_job(
                job_id,
                &error.to_string(),
                Failure::ModelMissing,
                Written::default(),
            )
            .await
        {
            Ok(Some(row)) => {
                self.leave_queue(job_id);
                self.hub.finish(job_view(&row, None));
            }
            Ok(None) => self.leave_queue(job_id),
            Err(e) => tracing::error!(job_id, error = %e, "cannot fail a job no server can run"),
        }
    }
}
