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
use crate::{backend::BackendError, db::Written, metrics, pool::Slot};

/// After the database refused a claim: wait a moment rather than spin on it.
const CLAIM_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The longest sleep with nothing to do: a safety net under the wake-ups.
const IDLE_CHECK: Duration = Duration::from_secs(60);

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
            let Plan { starts, nowhere } = self.plan();
            for (job_id, slot) in starts {
                if !self.start_run(job_id, slot).await {
                    tokio::select! {
                        _ = tokio::time::sleep(CLAIM_RETRY_DELAY) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
            for (job_id, model) in nowhere {
                self.fail_nowhere(job_id, &model).await;
            }
            let next_due = self.fail_overdue().await;
            tokio::select! {
                _ = self.pool.changed() => {}
                _ = tokio::time::sleep(next_due.unwrap_or(IDLE_CHECK).min(IDLE_CHECK)) => {}
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

    /// Claims a waiting job for `slot`'s server and starts its run. False when the database
    /// refused the claim (the job stays in the queue).
    async fn start_run(self: &Arc<Self>, job_id: i64, slot: Slot) -> bool {
        let backend = slot.member().name.clone();
        match self.db.claim_job(job_id, &backend).await {
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
                true
            }
            Ok(None) => {
                // Cancelled or deleted since it entered the queue: it leaves. A job still
                // queued (a server that lost the database to this one handed it back just now)
                // stays for the next pass.
                let queued = matches!(
                    self.db.job(job_id).await,
                    Ok(Some(row)) if row.status == JobStatus::Queued
                );
                if !queued {
                    self.leave_queue(job_id);
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, delay = ?CLAIM_RETRY_DELAY, "cannot claim the next job; trying again");
                false
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
