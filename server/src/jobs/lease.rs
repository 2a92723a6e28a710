//! Leases, on PostgreSQL: every `jobs.lease_renew_ms` this instance renews the lease of each
//! run it has, stops the runs whose lease went elsewhere (or whose job was stopped on another
//! instance), gives the jobs of instances that stopped renewing to the queue again, reads the
//! line from the database, and lets go of finished jobs whose end it missed. An instance that
//! cannot reach the database for a whole lease stops its runs: another instance will run those
//! jobs. Leases are renewed until the last run here has ended, through the shutdown's grace.
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use app::types::JobStatus;

use super::{
    queue::{StopHandle, StopReason},
    view::job_view,
    Jobs,
};
use crate::{
    db::{DbResult, Interrupted},
    metrics,
};

impl Jobs {
    /// Keeps the leases until `done` (after the last run here ended).
    pub(super) async fn keep_leases(&self, done: CancellationToken) {
        let renew = self.config.lease_renew();
        let lease = self.config.lease();
        let mut renewed_at = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(renew) => {}
                () = done.cancelled() => return,
            }
            let asked = Instant::now();
            // A database that does not answer at all (a half-open connection) must not hold
            // the runs past their lease either.
            let left = lease.saturating_sub(renewed_at.elapsed());
            match tokio::time::timeout(left, self.renew_leases(asked)).await {
                Ok(Ok(())) => renewed_at = asked,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the leases of this instance's jobs");
                    if renewed_at.elapsed() >= lease {
                        self.lose_all_leases();
                    }
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        "the database did not answer the renewal of the leases within the lease"
                    );
                    self.lose_all_leases();
                    continue;
                }
            }
            if self.shutdown.is_cancelled() {
                // Stopping: no new work is taken, only the runs here are kept alive.
                continue;
            }
            if let Err(e) = self.rescue().await {
                tracing::warn!(error = %e, "cannot rescue the jobs of lost instances");
            }
            if let Err(e) = self.reload_queue().await {
                tracing::warn!(error = %e, "cannot read the line of waiting jobs");
            }
            if let Err(e) = self.let_go_of_ended().await {
                tracing::warn!(error = %e, "cannot check the jobs followed from other instances");
            }
        }
    }

    /// Renews the lease of each run here claimed before `asked`; stops those whose lease went
    /// elsewhere, and those stopped on another instance.
    async fn renew_leases(&self, asked: Instant) -> DbResult<()> {
        // A run stopped for another reason is still storing its end: it keeps its lease.
        let lost = |run: &StopHandle| run.is_stopped() && run.reason() == StopReason::LeaseLost;
        let runs: Vec<_> = self
            .queue()
            .running_jobs()
            .filter(|(_, run)| run.claimed < asked && !lost(run))
            .map(|(id, run)| (id, run.clone()))
            .collect();
        for (id, run) in runs {
            let lease_ms = self.config.jobs.lease_ms;
            match self
                .db
                .renew_lease(id, run.run, &self.owner, lease_ms)
                .await?
            {
                Some(false) => {}
                Some(true) => run.stop(StopReason::Cancelled),
                None if self.handed_back(id, run.run).await? => {}
                None => {
                    tracing::warn!(
                        job_id = id,
                        "this instance lost the job's lease; its run stops here"
                    );
                    metrics::lease_lost();
                    run.stop(StopReason::LeaseLost);
                }
            }
        }
        Ok(())
    }

    /// Whether run `run` of job `id` is this instance's own, handed back to the line just now
    /// (its server went away) and on its way there: no lease to renew, none lost.
    async fn handed_back(&self, id: i64, run: u32) -> DbResult<bool> {
        Ok(self.db.job(id).await?.is_some_and(|row| {
            row.status == JobStatus::Queued && row.runs == run && self.runs_here(&row)
        }))
    }

    /// A whole lease passed without reaching the database: every run here stops, since
    /// another instance may have taken its job.
    fn lose_all_leases(&self) {
        for (id, run) in self.queue().running_jobs() {
            if !run.is_stopped() {
                tracing::warn!(
                    job_id = id,
                    "no word from the database for a whole lease; this run stops"
                );
                metrics::lease_lost();
                run.stop(StopReason::LeaseLost);
            }
        }
    }

    /// Gives the jobs of instances that stopped renewing their leases to the queue again.
    async fn rescue(&self) -> DbResult<()> {
        let recovered = self
            .db
            .recover_interrupted(self.config.jobs.max_attempts, Interrupted::Expired)
            .await?;
        metrics::jobs_rescued(recovered.requeued.len());
        self.announce(
            &recovered,
            "rescued jobs whose instance stopped renewing their lease",
        )
        .await
    }

    /// Ends in the hub the jobs followed from other instances that have ended, their note
    /// missed (the bus dropped it, or their instance died between its write and its note).
    async fn let_go_of_ended(&self) -> DbResult<()> {
        let followed: Vec<i64> = {
            let queue = self.queue();
            self.hub
                .tracked()
                .into_iter()
                .filter(|&id| queue.running(id).is_none() && !queue.is_waiting(id))
                .collect()
        };
        if followed.is_empty() {
            return Ok(());
        }
        let unfinished = self.db.unfinished_ids().await?;
        for id in followed.into_iter().filter(|id| !unfinished.contains(id)) {
            match self.db.job(id).await? {
                Some(row) => self.hub.finish_remote(job_view(&row, None)),
                None => self.hub.forget(id),
            }
        }
        Ok(())
    }
}
