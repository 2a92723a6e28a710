//! The runner: takes queued jobs in FIFO order (at most `jobs.concurrency` at once), streams
//! each answer from Ollama, retries transient failures with backoff, and publishes progress:
//! to watchers at most every `push_interval`, to the database at most every
//! `db_write_interval`, and always at a status change.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::types::{FinalStats, JobStatus, Progress};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    estimate::{expected_length, Estimator},
    throttle::Throttle,
    Jobs, Running, StopReason,
};
use crate::{
    db::{now_ms, JobCompletion, JobRow, ProgressWrite},
    ollama::{ChatEvent, ChatRequest, OllamaError},
};

/// Completed jobs of the same model that the length estimate looks back on.
const HISTORY: u32 = 20;

/// How one run of a job ended.
enum Outcome {
    Completed(FinalStats),
    Failed(String),
    Stopped(StopReason),
}

/// How one request to Ollama ended.
enum Attempt {
    Done(crate::ollama::FinalStats),
    Ollama(OllamaError),
    Stopped,
}

/// The state of one running job between publications.
struct Live {
    id: i64,
    /// Requests made for this job so far, across restarts; a new one restarts the text.
    attempt: u32,
    model_loaded: Option<bool>,
    status: JobStatus,
    text: String,
    published_len: usize,
    estimator: Estimator,
    request_started: Instant,
    retry_at: Option<i64>,
    error: Option<String>,
    push: Throttle,
    write: Throttle,
}

impl Jobs {
    /// Claims queued jobs while there are free slots; sleeps until woken when the queue is empty.
    pub(super) async fn dispatch(self: Arc<Self>) {
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = self.shutdown.cancelled() => return,
            };
            if self.shutdown.is_cancelled() {
                return;
            }
            let Some(next) = self.next_in_line() else {
                drop(permit);
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = self.shutdown.cancelled() => return,
                }
            };
            match self.db.claim_job(next).await {
                Ok(Some(row)) => {
                    let running = self.start_running(&row);
                    let jobs = Arc::clone(&self);
                    let span = tracing::info_span!("job", job_id = row.id, model = %row.model);
                    self.tasks.spawn(
                        async move {
                            jobs.run(row, running).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {
                    // Cancelled or deleted since it entered the line.
                    drop(permit);
                    self.drop_from_line(next);
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "cannot claim the next job; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn run(&self, row: JobRow, running: Running) {
        tracing::info!(attempt = row.attempt, run = row.runs, "job started");
        let outcome = self
            .run_attempts(&row, &running.token, &running.reason)
            .await;
        self.store_end(&row, outcome).await;
        // Only now: a Stop that comes while the end is being stored finds the job still
        // running (and changes nothing) rather than cancelling a finished answer.
        self.stop_running(row.id, row.runs);
    }

    /// Stores how the job ended, trying again until the database accepts it: a job must not
    /// end in memory only (a reload, or another page, would find it still running). If the
    /// server stops first, the row is still unfinished and start-up recovery takes it up.
    async fn store_end(&self, row: &JobRow, ended: (Outcome, String, Progress)) {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build();
        while let Err(e) = self.finish(row, &ended).await {
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tracing::warn!(error = %e, ?delay, "cannot store the end of the job; trying again");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn run_attempts(
        &self,
        row: &JobRow,
        token: &CancellationToken,
        reason: &Mutex<Option<StopReason>>,
    ) -> (Outcome, String, Progress) {
        let recent = self
            .db
            .recent_output_lengths(&row.model, HISTORY)
            .await
            .unwrap_or_default();
        let expected = expected_length(row.max_tokens(), &recent);
        let retries_left = self
            .config
            .jobs
            .max_attempts
            .saturating_sub(row.attempt as u32);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.config.jobs.retry_base_ms))
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .with_max_times(retries_left as usize)
            .build();
        let stop_reason = || {
            reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or(StopReason::Cancelled)
        };
        let started = Instant::now();

        let mut live = Live {
            id: row.id,
            attempt: row.attempt as u32,
            model_loaded: None,
            status: JobStatus::Loading,
            text: String::new(),
            published_len: 0,
            estimator: Estimator::new(Instant::now(), expected),
            request_started: Instant::now(),
            retry_at: None,
            error: None,
            push: Throttle::new(self.config.push_interval()),
            write: Throttle::new(self.config.progress_db_interval()),
        };
        self.publish(&mut live, true).await;

        loop {
            let outcome = self.attempt(row, &mut live, token).await;
            let error = match outcome {
                Attempt::Done(stats) => {
                    // Watchers get the last words as progress too, before the end.
                    if live.push.due_at().is_some() {
                        self.send(&mut live, true, false).await;
                    }
                    let stats = final_stats(&stats, &live);
                    // Ollama's count is the truth; the live count was of streamed chunks.
                    let mut progress = live.progress(Instant::now());
                    progress.elapsed_time = started.elapsed().as_millis() as u64;
                    progress.current_tokens = stats.output_tokens;
                    progress.tokens_per_second = stats.tokens_per_second();
                    return (Outcome::Completed(stats), live.text, progress);
                }
                Attempt::Stopped => {
                    return (
                        Outcome::Stopped(stop_reason()),
                        live.text.clone(),
                        live.progress(Instant::now()),
                    )
                }
                Attempt::Ollama(error) => error,
            };
            let delay = if error.is_transient() {
                backoff.next()
            } else {
                None
            };
            let Some(delay) = delay else {
                tracing::warn!(%error, "job failed");
                return (
                    Outcome::Failed(error.to_string()),
                    live.text.clone(),
                    live.progress(Instant::now()),
                );
            };
            tracing::info!(%error, ?delay, "transient Ollama failure; retrying");
            let retry_at = now_ms() + delay.as_millis() as i64;
            // The answer starts over: a retried request streams from the beginning.
            live.reset(
                JobStatus::Loading,
                Some(retry_at),
                Some(format!("{error}. Retrying…")),
            );
            self.publish(&mut live, true).await;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = token.cancelled() => return (Outcome::Stopped(stop_reason()), String::new(), live.progress(Instant::now())),
            }
            live.attempt += 1;
            live.reset(JobStatus::Loading, None, None);
            self.publish(&mut live, true).await;
        }
    }

    /// One request to Ollama, streamed into `live` until it ends, fails or is stopped.
    async fn attempt(&self, row: &JobRow, live: &mut Live, token: &CancellationToken) -> Attempt {
        // Tell a cold model load from reading the prompt: both are silent until the first token.
        let loaded = tokio::select! {
            loaded = tokio::time::timeout(Duration::from_secs(2), self.ollama.loaded_models()) => loaded,
            _ = token.cancelled() => return Attempt::Stopped,
        };
        live.model_loaded = match loaded {
            Ok(Ok(models)) => Some(models.iter().any(|m| same_model(m, &row.model))),
            _ => None,
        };
        self.send(live, true, false).await;
        live.request_started = Instant::now();
        let request = ChatRequest {
            model: row.model.clone(),
            prompt: row.prompt.clone(),
            num_predict: row.max_tokens(),
        };
        let mut stream = tokio::select! {
            started = self.ollama.chat_stream(&request) => match started {
                Ok(stream) => stream,
                Err(e) => return Attempt::Ollama(e),
            },
            _ = token.cancelled() => return Attempt::Stopped,
        };
        loop {
            let due = [live.push.due_at(), live.write.due_at()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                biased;
                _ = token.cancelled() => return Attempt::Stopped,
                event = stream.next() => match event {
                    Some(Ok(ChatEvent::Token(piece))) => {
                        live.text.push_str(&piece);
                        self.on_token(live).await;
                    }
                    Some(Ok(ChatEvent::Thinking(_))) => self.on_token(live).await,
                    Some(Ok(ChatEvent::Done(stats))) => return Attempt::Done(stats),
                    Some(Err(e)) => return Attempt::Ollama(e),
                    None => return Attempt::Ollama(OllamaError::Protocol("the stream ended before its final chunk".into())),
                },
                _ = sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    self.publish(live, false).await;
                }
            }
        }
    }

    async fn on_token(&self, live: &mut Live) {
        let now = Instant::now();
        live.estimator.on_token(now);
        if live.status != JobStatus::Generating {
            live.status = JobStatus::Generating;
            self.publish(live, true).await;
        } else {
            let push = live.push.offer(now);
            let write = live.write.offer(now);
            if push || write {
                self.send(live, push, write).await;
            }
        }
    }

    /// Publishes whatever is due (`force`: everything, for a status change).
    async fn publish(&self, live: &mut Live, force: bool) {
        let now = Instant::now();
        let push = force || live.push.due_at().is_some_and(|due| now >= due);
        let write = force || live.write.due_at().is_some_and(|due| now >= due);
        if push {
            live.push.mark_sent(now);
        }
        if write {
            live.write.mark_sent(now);
        }
        self.send(live, push, write).await;
    }

    async fn send(&self, live: &mut Live, push: bool, write: bool) {
        let progress = live.progress(Instant::now());
        if push {
            let delta = &live.text[live.published_len.min(live.text.len())..];
            let restart = live.published_len > live.text.len();
            self.hub.update(live.id, |v| {
                if restart {
                    v.text.clear();
                }
                v.text.push_str(delta);
                v.status = live.status;
                v.progress = progress.clone();
                v.retry_at = live.retry_at;
                v.error = live.error.clone();
                v.attempt = live.attempt;
                v.model_loaded = live.model_loaded;
                v.queue_position = None;
            });
            live.published_len = live.text.len();
        }
        if write {
            let write = ProgressWrite {
                status: live.status,
                progress: &progress,
                text: &live.text,
                retry_at: live.retry_at,
                error: live.error.as_deref(),
                attempt: live.attempt,
            };
            if let Err(e) = self.db.write_progress(live.id, write).await {
                tracing::warn!(error = %e, "cannot write progress; the next write will carry it");
            }
        }
    }

    /// Stores and announces how the job ended.
    async fn finish(
        &self,
        row: &JobRow,
        (outcome, text, progress): &(Outcome, String, Progress),
    ) -> crate::db::DbResult<()> {
        let ended = match outcome {
            Outcome::Completed(stats) => {
                tracing::info!(output_tokens = stats.output_tokens, "job completed");
                self.db
                    .complete_job(
                        row.id,
                        JobCompletion {
                            text,
                            stats,
                            progress,
                        },
                    )
                    .await?
            }
            Outcome::Failed(message) => {
                self.db
                    .end_job(row.id, JobStatus::Failed, message, Some(text))
                    .await?
            }
            Outcome::Stopped(StopReason::Cancelled) => {
                tracing::info!("job stopped by its author");
                self.db
                    .end_job(
                        row.id,
                        JobStatus::Cancelled,
                        "Stopped by its author.",
                        Some(text),
                    )
                    .await?
            }
            Outcome::Stopped(StopReason::Shutdown) => {
                // Back in line for the next start; watchers reconnect to the new process.
                self.db.requeue_job(row.id, false).await?;
                return Ok(());
            }
        };
        match ended {
            Some(row) => self.hub.finish(row.to_view(None)),
            // Deleted meanwhile, or already ended: nothing left to announce.
            None => self.hub.forget(row.id),
        }
        Ok(())
    }
}

impl Live {
    fn progress(&mut self, now: Instant) -> Progress {
        Progress {
            current_tokens: self.estimator.tokens(),
            tokens_per_second: self.estimator.rate(now),
            elapsed_time: self.estimator.elapsed_ms(now),
            estimated_time_remaining: self.estimator.remaining_ms(now),
            percent: self.estimator.percent(),
            last_update_at: now_ms(),
        }
    }

    /// Starts the answer over for another request (the elapsed time keeps running).
    fn reset(&mut self, status: JobStatus, retry_at: Option<i64>, error: Option<String>) {
        self.status = status;
        self.text.clear();
        self.published_len = usize::MAX;
        self.estimator.restart();
        self.retry_at = retry_at;
        self.error = error;
    }
}

/// Whether two model names are the same model (`llama3` is `llama3:latest`).
fn same_model(a: &str, b: &str) -> bool {
    let full = |m: &str| {
        if m.contains(':') {
            m.to_owned()
        } else {
            format!("{m}:latest")
        }
    };
    full(a) == full(b)
}

/// Ollama's final chunk, as the post keeps it.
fn final_stats(s: &crate::ollama::FinalStats, live: &Live) -> FinalStats {
    let ttft = live
        .estimator
        .first_token_at()
        .map(|t| {
            t.saturating_duration_since(live.request_started)
                .as_millis() as u64
        })
        .unwrap_or_default();
    let input = s.prompt_eval_count as u32;
    let output = s.eval_count as u32;
    FinalStats {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        time_to_first_token_ms: ttft,
        load_duration_ns: s.load_duration_ns,
        prompt_eval_duration_ns: s.prompt_eval_duration_ns,
        eval_duration_ns: s.eval_duration_ns,
        total_duration_ns: s.total_duration_ns,
        done_reason: s.done_reason.clone().unwrap_or_else(|| "stop".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_model_without_a_tag_is_the_latest_one() {
        assert!(super::same_model("llama3", "llama3:latest"));
        assert!(super::same_model("llama3.2:1b", "llama3.2:1b"));
        assert!(!super::same_model("llama3.2:1b", "llama3.2:3b"));
    }
}
