//! The task that hears the other instances: it listens on the bus's channel on a connection
//! of its own and applies each note here, in the order sent. When that connection is lost
//! (the database restarted, the network failed) notes may have been missed meanwhile, so on
//! every (re)connection it first reads the live state from the database ([`crate::jobs::Jobs::resync`]).
use std::time::Duration;

use app::types::ProgressEvent;
use sqlx::{postgres::PgListener, PgPool};

use super::{Note, What, CHANNEL};
use crate::{db::now_ms, markdown, metrics, routes::to_post, state::AppState};

/// After the listener could not connect: wait this long before trying again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Listens until the server shuts down.
pub async fn listen(state: AppState, pool: PgPool) {
    let mut logged = false;
    let mut reconnected = false;
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                if !std::mem::replace(&mut logged, true) {
                    tracing::warn!(error = %e, "cannot listen to the other instances; trying again every second");
                }
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                    () = state.shutdown.cancelled() => return,
                }
            }
        };
        if std::mem::take(&mut logged) {
            tracing::info!("listening to the other instances again");
        }
        // Listening first, then reading: a change made between the two arrives as a note
        // too, and applying it twice is harmless.
        if let Err(e) = state.jobs.resync().await {
            tracing::warn!(error = %e, "cannot read the live state after connecting the listener; trying again");
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                () = state.shutdown.cancelled() => return,
            }
        }
        metrics::bus_resynced();
        if std::mem::replace(&mut reconnected, true) {
            // Posts made or deleted meanwhile, too: every wall watcher starts afresh.
            state.hub.resynced();
        }
        loop {
            let heard = tokio::select! {
                heard = listener.try_recv() => heard,
                () = state.shutdown.cancelled() => return,
            };
            match heard {
                Ok(Some(notification)) => heard_note(&state, notification.payload()).await,
                // The connection was lost: connect anew and resynchronise.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the listener to the other instances failed; connecting again");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn heard_note(state: &AppState, payload: &str) {
    let note: Note = match serde_json::from_str(payload) {
        Ok(note) => note,
        Err(e) => {
            // A newer release's note: its changes reach the database, and watchers here
            // catch up at the next note they can read about the job.
            tracing::debug!(error = %e, "a bus note this release cannot read");
            return;
        }
    };
    if note.from == *state.instance {
        return;
    }
    metrics::bus_received(kind(&note.what), now_ms() - note.at);
    if let Err(e) = heard(state, note.what).await {
        tracing::warn!(error = %e, "cannot apply a note from another instance");
    }
}

fn kind(what: &What) -> &'static str {
    match what {
        What::Progress(_) => "progress",
        What::Job { .. } => "job",
        What::Post { .. } => "post",
        What::PostDeleted { .. } => "post_deleted",
        What::Stop { .. } => "stop",
    }
}

async fn heard(state: &AppState, what: What) -> crate::db::DbResult<()> {
    let jobs = &state.jobs;
    match what {
        What::Progress(event) => {
            if !follow_on(state, &event) {
                jobs.heard_job(event.job_id, event.seq).await?;
            }
        }
        What::Job { job, seq, .. } => jobs.heard_job(job, seq).await?,
        What::Post { post } => {
            if let Some(row) = state.db.post(post).await? {
                state.hub.post_created_remote(to_post(state, row));
            }
        }
        What::PostDeleted { post, job } => {
            if let Some(job) = job {
                jobs.heard_gone(job);
            }
            state.hub.post_deleted_remote(post, job);
        }
        What::Stop { job } => jobs.heard_stop(job).await?,
    }
    Ok(())
}

/// Applies a job's progress from another instance where the text here ends (or goes on past
/// it). False when it cannot follow on: the job is not here yet, or notes were missed. A note
/// of an older run than the one here (from an instance that lost the job, late), or of a job
/// this instance runs, is dropped.
fn follow_on(state: &AppState, event: &ProgressEvent) -> bool {
    let Some(view) = state.hub.current(event.job_id) else {
        return false;
    };
    if event.run < view.run || state.jobs.runs_locally(event.job_id) {
        return true;
    }
    let same_run = view.run == event.run;
    let (text, thinking) = if same_run {
        (view.text, view.thinking)
    } else {
        (String::new(), String::new())
    };
    let (Some(text), Some(thinking)) = (
        joined(text, event.text_offset, &event.text_delta),
        joined(thinking, event.thinking_offset, &event.thinking_delta),
    ) else {
        return false;
    };
    let blocks = (!same_run || !event.text_delta.is_empty()).then(|| markdown::blocks(&text));
    state
        .hub
        .publish_remote(event.job_id, event.seq, blocks, |v| {
            v.text = text;
            v.thinking = thinking;
            v.run = event.run;
            v.status = event.status;
            v.queue_position = event.queue_position;
            v.expected_start_at = event.expected_start_at;
            v.progress = event.progress.clone();
            v.attempt = event.attempt;
            v.retry_at = event.retry_at;
            v.error = event.error.clone();
            v.failure = event.failure;
            v.unreachable_since = event.unreachable_since;
            v.model_loaded = event.model_loaded;
            v.reasoning = event.reasoning.clone();
            v.prompt_progress = event.prompt_progress;
            v.backend = event.backend.clone();
            v.waiting_for = event.waiting_for.clone();
        })
}

/// `have` with `delta` written at byte `offset`: what it says past what `have` holds is added
/// (both are the same run's text, so where they overlap they agree). `None` when `offset` is
/// past the end of `have`: something was missed.
fn joined(mut have: String, offset: usize, delta: &str) -> Option<String> {
    if offset > have.len() {
        return None;
    }
    if offset + delta.len() > have.len() && have.is_char_boundary(offset) {
        have.truncate(offset);
        have.push_str(delta);
    }
    Some(have)
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn a_delta_follows_on_overlaps_harmlessly_and_a_gap_is_refused() {
        assert_eq!(joined("Hel".into(), 3, "lo").as_deref(), Some("Hello"));
        assert_eq!(joined("Hello".into(), 3, "lo").as_deref(), Some("Hello"));
        assert_eq!(
            joined("Hello".into(), 3, "lo, world").as_deref(),
            Some("Hello, world")
        );
        assert_eq!(joined("He".into(), 3, "lo"), None);
    }
}
