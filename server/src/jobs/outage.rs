//! An outage of the model server as the job service lives it: a run that finds the server
//! gone puts its job back in the queue and says since when; dispatch then claims nothing,
//! probes the server with backoff, fails the jobs that have waited `jobs.outage_wait_secs`,
//! and resumes by itself once the server answers. Every waiting job's view says since when
//! the server is unreachable, until it is back.
//!
//! The outage lives in memory only: after a restart the first run that meets it starts it
//! again, and the jobs' waits count from then.
use std::{sync::Arc, time::Duration};

use app::types::{Failure, JobStatus};
use backon::{BackoffBuilder, ExponentialBuilder};

use super::{view::job_view, Jobs};
use crate::{
    backend::{BackendError, Fault},
    db::now_ms,
};

/// The first probe of a server that just went away, and the longest pause between two: a
/// restarting Ollama is back within seconds, and a probe costs one small GET.
const PROBE_FIRST_DELAY: Duration = Duration::from_millis(250);
const PROBE_MAX_DELAY: Duration = Duration::from_secs(5);
/// How long the check after a broken reply may take; past it the server counts as there.
const GONE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Jobs {
    /// Since when (Unix ms) the model server is unreachable, if it is.
    pub fn unreachable_since(&self) -> Option<i64> {
        *self.outage.borrow()
    }

    /// A run found the model server unreachable: dispatch stops claiming (the first report
    /// starts the outage; later ones find it started).
    pub(super) fn server_unreachable(&self) {
        let began = self.outage.send_if_modified(|since| {
            if since.is_some() {
                return false;
            }
            *since = Some(now_ms());
            true
        });
        if began {
            tracing::warn!("the model server is unreachable; no job is claimed until it answers");
        }
    }

    /// After a reply broke off: whether the model server went away (it refuses connections
    /// now), rather than this one reply failing.
    pub(super) async fn server_gone(&self) -> bool {
        match tokio::time::timeout(GONE_CHECK_TIMEOUT, self.ollama.version()).await {
            Ok(Err(e)) => is_gone(&e),
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// Dispatch during an outage: probes the server with backoff until it answers, failing
    /// the jobs that waited too long meanwhile. False when the server shuts down first.
    pub(super) async fn wait_out_outage(self: &Arc<Self>, since: i64) -> bool {
        self.mark_waiting(Some(since));
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(PROBE_FIRST_DELAY)
            .with_max_delay(PROBE_MAX_DELAY)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let next_due = self.fail_overdue(since).await;
            let delay = delays.next().unwrap_or(PROBE_MAX_DELAY);
            let pause = next_due.map_or(delay, |due| delay.min(due));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.cancelled() => return false,
            }
            match self.ollama.version().await {
                Ok(_) => break,
                Err(e) if is_gone(&e) => {
                    tracing::debug!(error = %e, "the model server is still unreachable")
                }
                // It answers, if not well: the jobs meet whatever it is, as their own fault.
                Err(e) => {
                    tracing::warn!(error = %e, "the model server answers again, with an error");
                    break;
                }
            }
        }
        let down_ms = now_ms().saturating_sub(since);
        self.outage.send_replace(None);
        self.mark_waiting(None);
        tracing::info!(
            down_ms,
            "the model server answers again; claiming jobs again"
        );
        true
    }

    /// Sets (or clears) "unreachable since" on every waiting job's view.
    fn mark_waiting(&self, since: Option<i64>) {
        let queue = self.queue();
        for (_, id) in queue.waiting() {
            if self
                .hub
                .current(id)
                .is_some_and(|v| v.status == JobStatus::Queued && v.unreachable_since != since)
            {
                self.hub.update(id, |v| v.unreachable_since = since);
            }
        }
    }

    /// Fails every waiting job that has waited `jobs.outage_wait_secs` for the server during
    /// the outage that began at `since` (from then, or from when it entered the queue). Returns
    /// how long until the next one is due, if any job waits.
    async fn fail_overdue(&self, since: i64) -> Option<Duration> {
        let wait = self.config.outage_wait();
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let waiting: Vec<(i64, i64)> = self
            .queue()
            .waiting()
            .map(|(queued_at, id)| (queued_at.max(since).saturating_add(wait_ms), id))
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
                .fail_job(id, &message, Failure::Unreachable, "")
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

/// Whether an error of a call to the model server means nobody is there.
fn is_gone(error: &BackendError) -> bool {
    error.handling().pauses_claiming || error.fault() == Fault::ConnectionBroken
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
