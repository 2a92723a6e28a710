//! One run of a job: its attempts (requests to the model server) one after another, with
//! backoff after a transient failure, each streamed into the job's live state; then its end,
//! stored until the database takes it. What each failure costs is the table in
//! [`crate::backend::Fault`]; a server found gone sends the job back to the queue.
use std::time::{Duration, Instant};

use app::types::{Failure, FinalStats, JobStatus, Progress};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::time::sleep_until;

use super::{
    cap,
    estimate::{expected_length, Estimator},
    live::Live,
    publisher::Publisher,
    queue::{StopHandle, StopReason},
    view::job_view,
    Jobs,
};
use crate::{
    allowed_models::same_model,
    backend::{self, BackendError, ChatEvent, ChatRequest},
    db::{now_ms, DbResult, JobCompletion, JobRow},
};

/// Completed jobs of the same model that the length estimate looks back on.
const HISTORY: u32 = 20;
/// Asking Ollama which models are loaded only refines the phase shown ("Loading the model" or
/// "Reading the prompt"): it must never hold up the request itself.
const MODEL_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between two attempts, however many failed: Ollama restarts in seconds.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Storing a job's end is tried again, from this delay up to the next, until the database
/// takes it: a job must not end in memory only.
const STORE_END_FIRST_DELAY: Duration = Duration::from_millis(200);
const STORE_END_MAX_DELAY: Duration = Duration::from_secs(5);

/// How one run of a job ended, with the text it wrote and its last progress.
struct RunEnd {
    outcome: Outcome,
    text: String,
    progress: Progress,
}

enum Outcome {
    Completed(FinalStats),
    /// The technical detail, and its class.
    Failed(String, Failure),
    Stopped(StopReason),
    /// The model server is unreachable: back to the queue at its place, to wait for it there.
    /// `spent`: the try counts (the reply broke off partway: this job may be what brought the
    /// server down, and must not do so for ever); a request refused before any reply does not.
    WaitForServer {
        spent: bool,
    },
}

/// How one attempt (one request to the model server) ended.
enum AttemptEnd {
    Done(backend::FinalStats),
    Failed(BackendError),
    Stopped,
}

impl Jobs {
    /// Runs a claimed job to its end and stores that end.
    pub(super) async fn run(&self, row: JobRow, stop: StopHandle) {
        tracing::info!(attempt = row.attempt, run = row.runs, "job started");
        let end = self.run_attempts(&row, &stop).await;
        self.store_end(&row, &end, &stop).await;
        // Only now: a Stop that comes while the end is being stored finds the job still
        // running (and changes nothing) rather than cancelling a finished answer.
        self.queue().finish(row.id, row.runs);
    }

    async fn run_attempts(&self, row: &JobRow, stop: &StopHandle) -> RunEnd {
        let recent = self
            .db
            .recent_output_lengths(&row.model, HISTORY)
            .await
            .unwrap_or_default();
        let expected = expected_length(row.max_tokens, &recent);
        let retries_left = self.config.jobs.max_attempts.saturating_sub(row.attempt);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.config.jobs.retry_base_ms))
            .with_max_delay(RETRY_MAX_DELAY)
            .with_jitter()
            .with_max_times(usize::try_from(retries_left).unwrap_or(usize::MAX))
            .build();
        // Retries that spend no attempt (the server busy): as long as it stays busy for less
        // than `jobs.outage_wait_secs` in a row.
        let mut free_backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.config.jobs.retry_base_ms))
            .with_max_delay(RETRY_MAX_DELAY)
            .with_jitter()
            .without_max_times()
            .build();
        let mut busy_since = None::<Instant>;
        let started = Instant::now();
        let mut live = Live::new(row.id, row.attempt, Estimator::new(started, expected));
        let mut publisher = Publisher::new(
            self.hub.clone(),
            self.db.clone(),
            self.config.push_interval(),
            self.config.progress_db_interval(),
        );
        publisher.phase_changed(&mut live).await;

        loop {
            let error = match self.attempt(row, &mut live, &mut publisher, stop).await {
                AttemptEnd::Done(stats) => {
                    publisher.flush_to_watchers(&mut live).await;
                    let stats = final_stats(&stats, &live);
                    // Ollama's count is the truth; the live count was of streamed chunks.
                    let mut progress = live.progress(Instant::now());
                    progress.elapsed_time = millis(started.elapsed());
                    progress.current_tokens = stats.output_tokens;
                    progress.tokens_per_second = stats.tokens_per_second();
                    return RunEnd {
                        outcome: Outcome::Completed(stats),
                        text: live.text,
                        progress,
                    };
                }
                AttemptEnd::Stopped => return stopped(&mut live, stop),
                AttemptEnd::Failed(error) => error,
            };
            let handling = error.handling();
            let gone = handling.pauses_claiming
                || (error.fault().may_mean_gone()
                    && tokio::select! {
                        gone = self.server_gone() => gone,
                        _ = stop.stopped() => return stopped(&mut live, stop),
                    });
            let spent = !handling.pauses_claiming;
            if gone {
                self.server_unreachable();
            }
            if gone && (!spent || live.attempt < self.config.jobs.max_attempts) {
                tracing::warn!(%error, spent, "the model server is gone; the job goes back to the queue");
                return RunEnd {
                    outcome: Outcome::WaitForServer { spent },
                    progress: live.progress(Instant::now()),
                    text: std::mem::take(&mut live.text),
                };
            }
            let delay = if !handling.retried {
                None
            } else if handling.spends_attempt {
                busy_since = None;
                backoff.next()
            } else {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.config.outage_wait() {
                    free_backoff.next()
                } else {
                    None
                }
            };
            let Some(delay) = delay else {
                tracing::warn!(%error, "job failed");
                return RunEnd {
                    outcome: Outcome::Failed(error.to_string(), error.class()),
                    progress: live.progress(Instant::now()),
                    text: live.text,
                };
            };
            tracing::info!(%error, ?delay, "transient Ollama failure; retrying");
            let retry_at =
                now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            // The answer starts over: the next attempt streams from the beginning.
            live.restart(Some(retry_at), Some((error.to_string(), error.class())));
            publisher.text_restarted();
            publisher.phase_changed(&mut live).await;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.stopped() => {
                    live.text.clear();
                    return stopped(&mut live, stop);
                }
            }
            if handling.spends_attempt {
                live.attempt += 1;
            }
            live.restart(None, None);
            publisher.phase_changed(&mut live).await;
        }
    }

    /// One attempt: a request to Ollama, streamed into `live` until it ends, fails or is
    /// stopped.
    async fn attempt(
        &self,
        row: &JobRow,
        live: &mut Live,
        publisher: &mut Publisher,
        stop: &StopHandle,
    ) -> AttemptEnd {
        // Tell a cold model load from reading the prompt: both are silent until the first token.
        let loaded = tokio::select! {
            loaded = tokio::time::timeout(MODEL_CHECK_TIMEOUT, self.ollama.loaded_models()) => loaded,
            _ = stop.stopped() => return AttemptEnd::Stopped,
        };
        live.model_loaded = match loaded {
            Ok(Ok(models)) => Some(models.iter().any(|m| same_model(m, &row.model))),
            _ => None,
        };
        publisher.send_to_watchers_now(live).await;
        live.request_started = Instant::now();
        let request = ChatRequest {
            model: row.model.clone(),
            prompt: row.prompt.clone(),
            // Ollama's own default is unlimited.
            num_predict: Some(
                row.max_tokens
                    .unwrap_or(self.config.limits.default_num_predict()),
            ),
        };
        let mut stream = tokio::select! {
            started = self.ollama.chat_stream(&request) => match started {
                Ok(stream) => stream,
                Err(e) => return AttemptEnd::Failed(e),
            },
            _ = stop.stopped() => return AttemptEnd::Stopped,
        };
        loop {
            let due = publisher.next_due();
            tokio::select! {
                biased;
                _ = stop.stopped() => return AttemptEnd::Stopped,
                event = stream.next() => match event {
                    Some(Ok(ChatEvent::Token(piece))) => {
                        let kept = cap::append(live, &piece, self.config.limits.answer_max_bytes);
                        on_token(live, publisher).await;
                        if !kept {
                            // Dropping the stream drops the request: the model server stops.
                            return AttemptEnd::Done(cap::cut_stats(live));
                        }
                    }
                    Some(Ok(ChatEvent::Thinking(_))) => on_token(live, publisher).await,
                    Some(Ok(ChatEvent::Done(stats))) => return AttemptEnd::Done(stats),
                    Some(Err(e)) => return AttemptEnd::Failed(e),
                    None => return AttemptEnd::Failed(BackendError::Protocol("the stream ended before its final chunk".into())),
                },
                _ = sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    publisher.due(live).await;
                }
            }
        }
    }

    /// Stores how the job ended, trying again until the database accepts it: a job must not
    /// end in memory only (a reload, or another page, would find it still running). If the
    /// server stops first, the row is still unfinished and start-up recovery takes it up.
    async fn store_end(&self, row: &JobRow, end: &RunEnd, stop: &StopHandle) {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(STORE_END_FIRST_DELAY)
            .with_max_delay(STORE_END_MAX_DELAY)
            .without_max_times()
            .build();
        while let Err(e) = self.store_end_once(row, end, stop).await {
            let delay = delays.next().unwrap_or(STORE_END_MAX_DELAY);
            tracing::warn!(error = %e, ?delay, "cannot store the end of the job; trying again");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Stores and announces how the job ended.
    async fn store_end_once(&self, row: &JobRow, end: &RunEnd, stop: &StopHandle) -> DbResult<()> {
        let RunEnd {
            outcome,
            text,
            progress,
        } = end;
        let ended = match outcome {
            Outcome::Completed(stats) => {
                tracing::info!(output_tokens = stats.output_tokens, "job completed");
                let completion = JobCompletion {
                    run: row.runs,
                    text,
                    stats,
                    progress,
                };
                self.db.complete_job(row.id, completion).await?
            }
            Outcome::Failed(message, class) => {
                self.db.fail_job(row.id, message, *class, text).await?
            }
            Outcome::Stopped(StopReason::Cancelled) => {
                tracing::info!("job stopped by its author");
                self.db
                    .cancel_running_job(row.id, STOPPED_BY_AUTHOR, text)
                    .await?
            }
            Outcome::Stopped(StopReason::Shutdown) => {
                // Back in the queue for the next start; watchers reconnect to the new process.
                self.db.hand_back_job(row.id, true).await?;
                return Ok(());
            }
            Outcome::WaitForServer { spent } => {
                // The job stays in the running set while its row goes back, so that a Stop
                // meanwhile stops this run's handle; `requeue` reads it under the queue lock,
                // where the job moves from running to waiting. `None`: it ended meanwhile.
                let Some(back) = self.db.hand_back_job(row.id, !spent).await? else {
                    return Ok(());
                };
                if self.requeue(&back, stop) {
                    return Ok(());
                }
                if stop.reason() == StopReason::Shutdown {
                    // Queued in its row: the next start takes it up.
                    return Ok(());
                }
                tracing::info!("job stopped by its author while going back to the queue");
                match self.db.cancel_queued_job(row.id, STOPPED_BY_AUTHOR).await? {
                    Some(row) => self.hub.finish(job_view(&row, None)),
                    None => self.hub.forget(row.id),
                }
                return Ok(());
            }
        };
        match ended {
            Some(row) => self.hub.finish(job_view(&row, None)),
            None => {
                self.hub.forget(row.id);
                self.end_not_stored(row, end).await;
            }
        }
        Ok(())
    }

    /// The job's row did not take this run's end. Its post was deleted (the expected case), or
    /// the row moved on without this run (it ended otherwise, or a newer run claimed it): then
    /// say so, with the text, so that an answer is never dropped without a trace.
    async fn end_not_stored(&self, row: &JobRow, end: &RunEnd) {
        let outcome = match &end.outcome {
            Outcome::Completed(_) => "completed",
            Outcome::Failed(..) => "failed",
            Outcome::Stopped(_) => "stopped",
            Outcome::WaitForServer { .. } => "waiting for the model server",
        };
        match self.db.job(row.id).await {
            Ok(None) => tracing::info!(job_id = row.id, "the job's post was deleted meanwhile"),
            Ok(Some(now)) => tracing::warn!(
                job_id = row.id,
                run = row.runs,
                outcome,
                status_now = ?now.status,
                runs_now = now.runs,
                text = %end.text,
                "the job moved on without this run, whose end is not stored; its text is here"
            ),
            Err(e) => tracing::warn!(
                job_id = row.id,
                run = row.runs,
                outcome,
                error = %e,
                text = %end.text,
                "the end of this run matched no job; its text is here"
            ),
        }
    }
}

/// The reason a job stopped by its author shows.
pub(super) const STOPPED_BY_AUTHOR: &str = "Stopped by its author.";

/// A token (or a chunk of a thinking model's reasoning) arrived.
async fn on_token(live: &mut Live, publisher: &mut Publisher) {
    live.estimator.on_token(Instant::now());
    if live.status == JobStatus::Generating {
        publisher.token(live).await;
    } else {
        live.status = JobStatus::Generating;
        publisher.phase_changed(live).await;
    }
}

fn stopped(live: &mut Live, stop: &StopHandle) -> RunEnd {
    RunEnd {
        outcome: Outcome::Stopped(stop.reason()),
        progress: live.progress(Instant::now()),
        text: std::mem::take(&mut live.text),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The longest duration the database stores (SQL's signed 64-bit integer, ~292 years in ns).
const MAX_STORED_NS: u64 = i64::MAX.unsigned_abs();

/// Ollama's final chunk, as the post keeps it. Its numbers come from outside: each is bounded
/// to what the post can store, so that a wild value cannot make the end unstorable.
fn final_stats(s: &backend::FinalStats, live: &Live) -> FinalStats {
    let ttft = live
        .estimator
        .first_token_at()
        .map(|t| millis(t.saturating_duration_since(live.request_started)))
        .unwrap_or_default();
    let input = u32::try_from(s.prompt_eval_count).unwrap_or(u32::MAX);
    let output = u32::try_from(s.eval_count).unwrap_or(u32::MAX);
    FinalStats {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input.saturating_add(output),
        time_to_first_token_ms: ttft,
        load_duration_ns: s.load_duration_ns.min(MAX_STORED_NS),
        prompt_eval_duration_ns: s.prompt_eval_duration_ns.min(MAX_STORED_NS),
        eval_duration_ns: s.eval_duration_ns.min(MAX_STORED_NS),
        total_duration_ns: s.total_duration_ns.min(MAX_STORED_NS),
        done_reason: s.done_reason.clone().unwrap_or_else(|| "stop".into()),
        cut_at_bytes: live.cut_at_bytes,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{final_stats, Live, MAX_STORED_NS};
    use crate::{jobs::estimate::Estimator, ollama};

    #[test]
    fn wild_numbers_from_the_model_server_are_bounded_to_what_the_post_stores() {
        let live = Live::new(1, 1, Estimator::new(Instant::now(), None));
        let wild = backend::FinalStats {
            prompt_eval_count: u64::MAX,
            eval_count: 7,
            load_duration_ns: u64::MAX,
            prompt_eval_duration_ns: u64::MAX,
            eval_duration_ns: 5,
            total_duration_ns: u64::MAX,
            ..Default::default()
        };
        let stats = final_stats(&wild, &live);
        assert_eq!(
            (stats.input_tokens, stats.output_tokens, stats.total_tokens),
            (u32::MAX, 7, u32::MAX)
        );
        assert_eq!(stats.load_duration_ns, MAX_STORED_NS);
        assert_eq!(stats.total_duration_ns, MAX_STORED_NS);
        assert_eq!(stats.eval_duration_ns, 5);
        assert_eq!(stats.done_reason, "stop");
        assert!(i64::try_from(MAX_STORED_NS).is_ok());
    }
}
