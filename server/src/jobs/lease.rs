//! Leases, on PostgreSQL: every `jobs.lease_renew_ms` this instance renews the lease of each
//! job it runs, stops the runs whose lease went elsewhere (or that were stopped on another
//! instance), gives the jobs of instances that stopped renewing to the queue again, and reads
//! the line from the database. An instance that cannot reach the database for a whole lease
//! stops its runs: another instance will run those jobs.
use std::{collections::HashMap, time::Instant};

use super::{queue::StopReason, Jobs};
use crate::{db::Interrupted, metrics};

impl Jobs {
    pub(super) async fn keep_leases(&self) {
        let renew = self.config.lease_renew();
        let lease = self.config.lease();
        let mut renewed_at = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(renew) => {}
                () = self.shutdown.cancelled() => return,
            }
            let asked = Instant::now();
            match self
                .db
                .renew_leases(&self.owner, self.config.jobs.lease_ms)
                .await
            {
                Ok(held) => {
                    renewed_at = asked;
                    self.follow_leases(asked, &held);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the leases of this instance's jobs");
                    if renewed_at.elapsed() >= lease {
                        self.lose_all_leases();
                    }
                    continue;
                }
            }
            match self
                .db
                .recover_interrupted(self.config.jobs.max_attempts, Interrupted::Expired)
                .await
            {
                Ok(recovered) => {
                    metrics::jobs_rescued(recovered.requeued.len());
                    if let Err(e) = self
                        .announce(
                            &recovered,
                            "rescued jobs whose instance stopped renewing their lease",
                        )
                        .await
                    {
                        tracing::warn!(error = %e, "cannot announce the rescued jobs");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot rescue the jobs of lost instances"),
            }
            if let Err(e) = self.reload_queue().await {
                tracing::warn!(error = %e, "cannot read the line of waiting jobs");
            }
        }
    }

    /// Stops each run claimed before `asked` whose lease was not renewed (another instance has
    /// its job now) or whose job was stopped on another instance.
    fn follow_leases(&self, asked: Instant, held: &[(i64, u32, bool)]) {
        let held: HashMap<i64, (u32, bool)> = held
            .iter()
            .map(|&(id, run, stop)| (id, (run, stop)))
            .collect();
        for (id, run) in self.queue().running_jobs() {
            match held.get(&id) {
                Some(&(held_run, true)) if held_run == run.run => run.stop(StopReason::Cancelled),
                Some(&(held_run, _)) if held_run == run.run => {}
                _ if run.claimed >= asked => {}
                _ => {
                    tracing::warn!(
                        job_id = id,
                        "this instance lost the job's lease; its run stops here"
                    );
                    metrics::lease_lost();
                    run.stop(StopReason::LeaseLost);
                }
            }
        }
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
}
