//! One run of a job on one model server (the slot dispatch gave it): its attempts (requests)
//! one after another, with backoff after a transient failure, each streamed into the job's
//! live state; then its end, stored until the database takes it. What each failure costs is
//! the table in [`crate::backend::Fault`]; a server found gone is marked down and the job goes
//! back to the queue, to run on another server or to wait for one; a server that answers busy
//! hands the run to another with a free slot, when there is one.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use app::types::{Failure, FinalStats, JobStatus, Progress, PromptProgress, Reasoning};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::time::sleep_until;

use super::{
    cap,
    estimate::{Estimator, Lengths},
    live::Live,
    publisher::Publisher,
    queue::{StopHandle, StopReason},
    view::job_view,
    Jobs,
};
use crate::{
    allowed_models::same_model,
    backend::{BackendError, ChatEvent, ChatRequest, Fault, ReplyStats},
    db::{now_ms, DbResult, JobCompletion, JobRow, Written, STOPPED_BY_AUTHOR},
    metrics,
    pool::{Member, Slot},
};

/// Asking Ollama which models are loaded only refines the phase shown ("Loading the model" or
/// "Reading the prompt"): it must never hold up the request itself.
const MODEL_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between two attempts, however many failed: Ollama restarts in seconds.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Storing a job's end is tried again, from this delay up to the next, until the database
/// takes it: a job must not end in memory only.
const STORE_END_FIRST_DELAY: Duration = Duration::from_millis(200);
const STORE_END_MAX_DELAY: Duration = Duration::from_secs(5);

/// How one run of a job ended, with the text (and reasoning) it wrote and its last progress.
struct RunEnd {
    outcome: Outcome,
    text: String,
    progress: Progress,
    thinking: String,
    reasoning: Option<Reasoning>,
}

enum Outcome {
    Completed(FinalStats),
    /// The technical detail, and its class.
    Failed(String, Failure),
    Stopped(StopReason),
    /// Its model server is unreachable: back to the queue at its place, to run on another
    /// server or to wait for one there. `spent`: the try counts (the reply broke off partway
    /// and no other server can take the job: it may be what brought the server down, and must
    /// not do so for ever); a request refused before any reply, or one that can go on
    /// elsewhere, does not.
    WaitForServer {
        spent: bool,
    },
}

/// How one attempt (one request to the model server) ended.
enum AttemptEnd {
    Done(ReplyStats),
    Failed(BackendError),
    Stopped,
}

impl Jobs {
    /// Runs a claimed job to its end on `slot`'s server and stores that end; only then is
    /// the slot given back, so that a server's next job starts after its last one ended for
    /// everyone who watches.
    pub(super) async fn run(&self, row: JobRow, stop: StopHandle, mut slot: Slot) {
        tracing::info!(attempt = row.attempt, run = row.runs, "job started");
        let end = self.run_attempts(&row, &stop, &mut slot).await;
        self.store_end(&row, &end, &stop).await;
        // Only now: a Stop that comes while the end is being stored finds the job still
        // running (and changes nothing) rather than cancelling a finished answer.
        {
            let mut queue = self.queue();
            queue.finish(row.id, row.runs);
            if !matches!(end.outcome, Outcome::WaitForServer { .. }) {
                queue.ended(row.id);
            }
        }
        drop(slot);
        if matches!(end.outcome, Outcome::Completed(_)) {
            // One more answer to learn from: the jobs waiting for this model are told.
            self.refresh_history(&row.model).await;
            self.publish_positions(&self.queue());
        }
    }

    /// The job's attempts on `slot`'s server, or on another one when its own is busy and
    /// another has a free place (`slot` then holds that one).
    async fn run_attempts(&self, row: &JobRow, stop: &StopHandle, slot: &mut Slot) -> RunEnd {
        let history = self.refresh_history(&row.model).await;
        let lengths = Lengths::new(&history.lengths(), row.max_tokens);
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
        // The servers that answered busy since the last wait: the job does not move back to one.
        let mut busy_on: Vec<String> = Vec::new();
        // The servers that answered they lack the model although they listed it.
        let mut lacking_on: Vec<String> = Vec::new();
        let started = Instant::now();
        let mut live = Live::new(
            row.id,
            row.runs,
            row.attempt,
            Estimator::new(started, lengths),
        );
        live.backend = Some(slot.member().name.clone());
        let mut publisher = Publisher::new(
            self.hub.clone(),
            self.db.clone(),
            self.config.push_interval(),
            self.config.progress_db_interval(),
        );
        publisher.phase_changed(&mut live).await;

        loop {
            let member = Arc::clone(slot.member());
            let error = match self
                .attempt(row, &mut live, &mut publisher, stop, &member)
                .await
            {
                AttemptEnd::Done(stats) => {
                    live.end_reasoning(Instant::now());
                    publisher.flush_to_watchers(&mut live).await;
                    let stats = final_stats(&stats, &live);
                    // The server's count is the truth; the live count was of streamed chunks.
                    let mut progress = live.progress(Instant::now());
                    progress.elapsed_time = millis(started.elapsed());
                    if let Some(tokens) = stats.output_tokens {
                        progress.current_tokens = tokens;
                    }
                    if let Some(speed) = stats.tokens_per_second(live.thinking_tokens) {
                        progress.tokens_per_second = speed;
                    }
                    return RunEnd {
                        outcome: Outcome::Completed(stats),
                        reasoning: live.reasoning(Instant::now()),
                        thinking: std::mem::take(&mut live.thinking),
                        text: live.text,
                        progress,
                    };
                }
                AttemptEnd::Stopped => return stopped(&mut live, stop),
                AttemptEnd::Failed(error) => error,
            };
            let handling = error.handling();
            let gone = handling.marks_down
                || (error.fault().may_mean_gone()
                    && tokio::select! {
                        gone = server_gone(&member) => gone,
                        _ = stop.stopped() => return stopped(&mut live, stop),
                    });
            if gone {
                member.mark_down(&error.to_string());
            }
            // Refused before any reply: free. Died under its reply: free the first time when
            // another server can take it up; a job that keeps bringing servers down (an
            // out-of-memory kill, say) spends its attempts as on one server.
            let spent = !handling.marks_down
                && (!gone
                    || self.queue().died_with_server(row.id) > 0
                    || !self.pool.another_up_for(&row.model, &member.name));
            if gone && (!spent || live.attempt < self.config.jobs.max_attempts) {
                tracing::warn!(%error, spent, "the model server is gone; the job goes back to the queue");
                return RunEnd {
                    outcome: Outcome::WaitForServer { spent },
                    progress: live.progress(Instant::now()),
                    text: std::mem::take(&mut live.text),
                    thinking: String::new(),
                    reasoning: None,
                };
            }
            // On at once on another server with a free place, if one can take it: when this one
            // lacks the model its list named (only to a server whose list names it; its failure
            // and attempt stand where none can), or when it is busy. Never back to one that
            // lacks the model or answered busy since the last wait: the job cannot bounce.
            let other = if error.fault() == Fault::ModelMissing {
                member.forget_model(&row.model);
                lacking_on.push(member.name.clone());
                let skip = [lacking_on.as_slice(), busy_on.as_slice()].concat();
                self.pool.place_listed_except(&row.model, &skip)
            } else if handling.retried && !handling.spends_attempt {
                busy_on.push(member.name.clone());
                let skip = [lacking_on.as_slice(), busy_on.as_slice()].concat();
                self.pool.place_except(&row.model, &skip)
            } else {
                None
            };
            if let Some(other) = other {
                if self
                    .move_to(row, other, slot, &mut live, &mut publisher, &error)
                    .await
                {
                    continue;
                }
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
            // A server that said how long to wait is not asked again sooner (within reason).
            let delay = delay.map(|d| {
                error
                    .retry_after()
                    .map_or(d, |after| d.max(after.min(RETRY_MAX_DELAY)))
            });
            let Some(delay) = delay else {
                tracing::warn!(%error, "job failed");
                return RunEnd {
                    outcome: Outcome::Failed(error.to_string(), error.class()),
                    progress: live.progress(Instant::now()),
                    reasoning: live.reasoning(Instant::now()),
                    thinking: std::mem::take(&mut live.thinking),
                    text: live.text,
                };
            };
            tracing::info!(%error, ?delay, "transient model server failure; retrying");
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
            busy_on.clear();
            if handling.spends_attempt {
                live.attempt += 1;
            }
            live.restart(None, None);
            publisher.phase_changed(&mut live).await;
        }
    }

    /// Goes on with the job on `other`'s server: its own answered busy or without the model
    /// (`error`). Its place there is given back, the row and the watchers name the new server,
    /// and the answer starts over (such an answer comes before any text). False when the
    /// database refused the move (that server's slots are all taken, counted over every
    /// instance): the job stays where it is.
    async fn move_to(
        &self,
        row: &JobRow,
        other: Slot,
        slot: &mut Slot,
        live: &mut Live,
        publisher: &mut Publisher,
        error: &BackendError,
    ) -> bool {
        let to = other.member().name.clone();
        let slots = other.member().concurrency;
        match self.db.move_job(row.id, row.runs, &to, slots).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store the job's new model server");
                return false;
            }
        }
        tracing::info!(%error, from = %slot.member().name, %to, "the model server cannot take the job now; it goes on on another");
        *slot = other;
        live.backend = Some(to);
        live.restart(None, None);
        publisher.text_restarted();
        publisher.phase_changed(live).await;
        true
    }

    /// One attempt: a request to the model server, streamed into `live` until it ends, fails
    /// or is stopped.
    async fn attempt(
        &self,
        row: &JobRow,
        live: &mut Live,
        publisher: &mut Publisher,
        stop: &StopHandle,
        member: &Member,
    ) -> AttemptEnd {
        // Tell a cold model load from reading the prompt (both silent until the first token),
        // and ask a thinking model to reason only when it can.
        let (loaded, think) = tokio::select! {
            checks = tokio::time::timeout(MODEL_CHECK_TIMEOUT, async {
                tokio::join!(member.backend.loaded_models(), member.can_think(&row.model))
            }) => checks.map_or((None, false), |(loaded, think)| (loaded.ok().flatten(), think)),
            _ = stop.stopped() => return AttemptEnd::Stopped,
        };
        live.model_loaded = loaded.map(|models| models.iter().any(|m| same_model(m, &row.model)));
        live.request_started = Instant::now();
        let history = self.history(&row.model);
        live.estimator.expect_first_token(
            live.request_started,
            history.first_token_ms(row.prompt.chars().count(), live.model_loaded),
            history.decode_rate(Some(&member.name)),
        );
        publisher.send_to_watchers_now(live).await;
        let request = ChatRequest {
            model: row.model.clone(),
            prompt: row.prompt.clone(),
            // Ollama's own default is unlimited.
            num_predict: Some(
                row.max_tokens
                    .unwrap_or(self.config.limits.default_num_predict()),
            ),
            think,
        };
        let mut stream = tokio::select! {
            started = member.backend.chat_stream(&request) => match started {
                Ok(stream) => stream,
                Err(e) => return AttemptEnd::Failed(e),
            },
            _ = stop.stopped() => return AttemptEnd::Stopped,
        };
        let cap = self.config.limits.answer_max_bytes;
        loop {
            let due = publisher.next_due();
            tokio::select! {
                biased;
                _ = stop.stopped() => return AttemptEnd::Stopped,
                event = stream.next() => match event {
                    Some(Ok(ChatEvent::Token(piece))) => {
                        live.end_reasoning(Instant::now());
                        let kept = cap::append(live, &piece, cap);
                        live.answer_tokens += 1;
                        on_token(live, publisher).await;
                        if !kept {
                            // Dropping the stream drops the request: the model server stops.
                            return AttemptEnd::Done(cap::cut_stats(live));
                        }
                    }
                    Some(Ok(ChatEvent::Thinking(piece))) => {
                        let kept = cap::append_thinking(live, &piece, cap);
                        live.on_reasoning(Instant::now());
                        on_token(live, publisher).await;
                        if !kept {
                            return AttemptEnd::Done(cap::cut_stats(live));
                        }
                    }
                    Some(Ok(ChatEvent::PromptProgress { processed, total })) => {
                        live.prompt_progress = Some(PromptProgress {
                            processed: u32::try_from(processed).unwrap_or(u32::MAX),
                            total: u32::try_from(total).unwrap_or(u32::MAX),
                        });
                        publisher.token(live).await;
                    }
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
            thinking,
            reasoning,
        } = end;
        let written = Written {
            run: Some(row.runs),
            text,
            thinking,
            reasoning: reasoning.as_ref(),
        };
        let ended = match outcome {
            Outcome::Completed(stats) => {
                tracing::info!(output_tokens = stats.output_tokens, "job completed");
                let completion = JobCompletion {
                    run: row.runs,
                    text,
                    stats,
                    progress,
                    thinking,
                    reasoning: reasoning.as_ref(),
                };
                self.db.complete_job(row.id, completion).await?
            }
            Outcome::Failed(message, class) => {
                self.db.fail_job(row.id, message, *class, written).await?
            }
            Outcome::Stopped(StopReason::Cancelled) => {
                tracing::info!("job stopped by its author");
                self.db
                    .cancel_running_job(row.id, STOPPED_BY_AUTHOR, written)
                    .await?
            }
            Outcome::Stopped(StopReason::Shutdown) => {
                // Back in the queue for the next start, or another instance now; watchers
                // reconnect to the new process.
                if let Some(back) = self.db.hand_back_job(row.id, row.runs, true).await? {
                    if self.hub.outbox().is_some() {
                        self.hub.track(job_view(&back, None));
                    }
                }
                return Ok(());
            }
            Outcome::Stopped(StopReason::LeaseLost) => {
                // Back to the line if this run is still the job's (the database was away for
                // a whole lease, and nobody took the job meanwhile); otherwise the job is
                // another run's now, and its instance tells the watchers.
                if let Some(back) = self.db.hand_back_job(row.id, row.runs, true).await? {
                    self.submit(&back);
                }
                return Ok(());
            }
            Outcome::WaitForServer { spent } => {
                // The job stays in the running set while its row goes back, so that a Stop
                // meanwhile stops this run's handle; `requeue` reads it under the queue lock,
                // where the job moves from running to waiting. `None`: it ended meanwhile.
                let Some(back) = self.db.hand_back_job(row.id, row.runs, !spent).await? else {
                    return Ok(());
                };
                if self.requeue(&back, stop) {
                    return Ok(());
                }
                if stop.reason() != StopReason::Cancelled {
                    // Queued in its row: the next start takes it up, or another instance,
                    // which hears of it now.
                    if self.hub.outbox().is_some() {
                        self.hub.track(job_view(&back, None));
                    }
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
        if let Some(ended) = &ended {
            let completed = match outcome {
                Outcome::Completed(stats) => Some((stats, progress)),
                _ => None,
            };
            metrics::job_ended(ended.status, completed);
        }
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
        reasoning: live.reasoning(Instant::now()),
        thinking: std::mem::take(&mut live.thinking),
        text: std::mem::take(&mut live.text),
    }
}

/// How long the check after a broken reply may take; past it the server counts as there.
const GONE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// After a reply broke off: whether its server went away (it refuses connections now),
/// rather than this one reply failing.
async fn server_gone(member: &Member) -> bool {
    match tokio::time::timeout(GONE_CHECK_TIMEOUT, member.backend.check()).await {
        Ok(Err(e)) => e.is_gone(),
        Ok(Ok(_)) | Err(_) => false,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The longest duration the database stores (SQL's signed 64-bit integer, ~292 years in ns).
const MAX_STORED_NS: u64 = i64::MAX.unsigned_abs();

/// What the model server reported at the end, as the post keeps it. Its numbers come from
/// outside: each is bounded to what the post can store, so that a wild value cannot make the
/// end unstorable. The answer's tokens are the written ones less the reasoning's.
fn final_stats(s: &ReplyStats, live: &Live) -> FinalStats {
    let ttft = live
        .estimator
        .first_token_at()
        .map(|t| millis(t.saturating_duration_since(live.request_started)));
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let input = s.input_tokens.map(count);
    let written = s.output_tokens.map(count);
    let output = written.map(|n| n.saturating_sub(live.thinking_tokens));
    let ns = |n: Option<u64>| n.map(|n| n.min(MAX_STORED_NS));
    FinalStats {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input.zip(written).map(|(i, o)| i.saturating_add(o)),
        time_to_first_token_ms: ttft,
        load_duration_ns: ns(s.load_duration_ns),
        prompt_eval_duration_ns: ns(s.prompt_eval_duration_ns),
        eval_duration_ns: ns(s.eval_duration_ns),
        total_duration_ns: ns(s.total_duration_ns),
        done_reason: s.done_reason.clone().unwrap_or_else(|| "stop".into()),
        cut_at_bytes: live.cut_at_bytes,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{final_stats, Live, MAX_STORED_NS};
    use crate::{
        backend::ReplyStats,
        jobs::estimate::{Estimator, Lengths},
    };

    #[test]
    fn wild_numbers_from_the_model_server_are_bounded_to_what_the_post_stores() {
        let live = Live::new(1, 1, 1, Estimator::new(Instant::now(), Lengths::default()));
        let wild = ReplyStats {
            input_tokens: Some(u64::MAX),
            output_tokens: Some(7),
            load_duration_ns: Some(u64::MAX),
            prompt_eval_duration_ns: Some(u64::MAX),
            eval_duration_ns: Some(5),
            total_duration_ns: Some(u64::MAX),
            ..Default::default()
        };
        let stats = final_stats(&wild, &live);
        assert_eq!(
            (stats.input_tokens, stats.output_tokens, stats.total_tokens),
            (Some(u32::MAX), Some(7), Some(u32::MAX))
        );
        assert_eq!(stats.load_duration_ns, Some(MAX_STORED_NS));
        assert_eq!(stats.total_duration_ns, Some(MAX_STORED_NS));
        assert_eq!(stats.eval_duration_ns, Some(5));
        assert_eq!(stats.done_reason, "stop");
        assert!(i64::try_from(MAX_STORED_NS).is_ok());
    }

    #[test]
    fn what_the_server_did_not_report_stays_unknown_and_reasoning_is_not_the_answer() {
        let mut live = Live::new(1, 1, 1, Estimator::new(Instant::now(), Lengths::default()));
        live.thinking_tokens = 30;
        let usage_only = ReplyStats {
            input_tokens: Some(12),
            output_tokens: Some(50),
            done_reason: Some("length".into()),
            ..Default::default()
        };
        let stats = final_stats(&usage_only, &live);
        assert_eq!(
            (stats.input_tokens, stats.output_tokens, stats.total_tokens),
            (Some(12), Some(20), Some(62))
        );
        assert_eq!(
            (
                stats.eval_duration_ns,
                stats.load_duration_ns,
                stats.total_duration_ns
            ),
            (None, None, None)
        );
        assert_eq!(stats.time_to_first_token_ms, None, "no token came");
        assert_eq!(stats.tokens_per_second(30), None);
        assert_eq!(stats.done_reason, "length");
    }
}
