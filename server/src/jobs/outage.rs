//! Jobs that wait for an unreachable model server: every server that may run its model is
//! down (the pool probes them, and dispatch starts the job as soon as one answers). One that
//! has waited `jobs.outage_wait_secs` so (from when the last of its servers went away, or from
//! when it entered the queue) fails, with a message that says so.
//!
//! Outages live in memory only: after a restart the first run or probe that meets one starts
//! it again, and the jobs' waits count from then.
use std::time::Duration;

use app::types::{Failure, JobStatus, WaitingFor};

use super::{view::job_view, Jobs};
use crate::db::{now_ms, Written};

impl Jobs {
    /// Fails every waiting job that has waited `jobs.outage_wait_secs` for an unreachable
    /// server. Returns how long until the next one is due, if any job waits for one.
    pub(super) async fn fail_overdue(&self) -> Option<Duration> {
        let wait = self.config.outage_wait();
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let waiting: Vec<(i64, i64)> = self
            .queue()
            .waiting()
            .filter_map(|(queued_at, id)| {
                let view = self.hub.current(id)?;
                let since = view.unreachable_since?;
                (view.status == JobStatus::Queued
                    && matches!(view.waiting_for, Some(WaitingFor::Server { .. })))
                .then(|| (queued_at.max(since).saturating_add(wait_ms), id))
            })
            .collect();
        let message = outage_message(wait);
        let mut next_due = None::<i64>;
        for (due, id) in waiting {
            if due > now {
                next_due = Some(next_due.map_or(due, |d| d.min(due)));
                continue;
            }
            match self
                .db
                .fail_job(id, &message, Failure::Unreachable, Written::default())
                .await
            {
                Ok(Some(row)) => {
                    tracing::warn!(job_id = id, "the job waited too long for the model server");
                    self.leave_queue(id);
                    self.hub.finish(job_view(&row, None));
                }
                // Ended (or deleted) meanwhile: its own path takes it out of the queue.
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(job_id = id, error = %e, "cannot fail a job that waited too long; trying again")
                }
            }
        }
        next_due.map(|due| Duration::from_millis(u64::try_from(due - now).unwrap_or_default()))
    }
}

/// The reason a job that waited out `wait` for the model server shows.
pub(super) fn outage_message(wait: Duration) -> String {
    let secs = wait.as_secs();
    let how_long = if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    };
    format!(
        "The model server was unreachable for {how_long} while this post waited; giving up. \
         Press Retry to try again."
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::outage_message;

    #[test]
    fn the_message_says_how_long_it_waited() {
        assert_eq!(
            outage_message(Duration::from_secs(1800)),
            "The model server was unreachable for 30 min while this post waited; giving up. \
             Press Retry to try again."
        );
        assert!(outage_message(Duration::from_secs(2)).contains("for 2 s while"));
        assert!(outage_message(Duration::from_secs(90)).contains("for 90 s while"));
    }
}
