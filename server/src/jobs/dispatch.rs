//! The dispatch loop: whenever a slot is free (at most `jobs.concurrency` at once), claims the
//! job at the head of the queue and starts its run; sleeps until woken when the queue is empty,
//! and claims nothing while the model server is unreachable (it probes it instead).
use std::{sync::Arc, time::Duration};

use tracing::Instrument;

use super::{queue::StopHandle, view::job_view, Jobs};

/// After the database refused a claim: wait a moment rather than spin on it.
const CLAIM_RETRY_DELAY: Duration = Duration::from_secs(1);

impl Jobs {
    pub(super) async fn dispatch(self: Arc<Self>) {
        let mut outage = self.outage.subscribe();
        loop {
            let unreachable_since = *outage.borrow_and_update();
            if let Some(since) = unreachable_since {
                if self.wait_out_outage(since).await {
                    continue;
                }
                return;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                // A run found the server gone while every slot was taken.
                _ = outage.changed() => continue,
                _ = self.shutdown.cancelled() => return,
            };
            if self.shutdown.is_cancelled() {
                return;
            }
            let Some(next) = self.queue().head() else {
                drop(permit);
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = outage.changed() => continue,
                    _ = self.shutdown.cancelled() => return,
                }
            };
            match self.db.claim_job(next).await {
                Ok(Some(row)) => {
                    let stop = StopHandle::new(row.runs);
                    {
                        let mut queue = self.queue();
                        queue.start(row.id, stop.clone());
                        self.hub.track(job_view(&row, None));
                        self.publish_positions(&queue);
                    }
                    let jobs = Arc::clone(&self);
                    let span = tracing::info_span!("job", job_id = row.id, model = %row.model);
                    self.tasks.spawn(
                        async move {
                            jobs.run(row, stop).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {
                    // Cancelled or deleted since it entered the queue.
                    drop(permit);
                    self.leave_queue(next);
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, delay = ?CLAIM_RETRY_DELAY, "cannot claim the next job; trying again");
                    tokio::time::sleep(CLAIM_RETRY_DELAY).await;
                }
            }
        }
    }
}
