//! When each waiting job is expected to start, and what each model has done lately: the
//! [`forecast`](super::forecast) fed with the pool's servers, the running jobs' expected ends
//! and each model's [`ModelHistory`], kept here per model and read again from the database
//! when one of its jobs starts or completes.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use app::types::JobStatus;

use super::{
    forecast::{self, Ahead, Server},
    history::{ModelHistory, HISTORY_RUNS},
    queue::Queue,
    Jobs,
};
use crate::db::now_ms;

/// A start further away than this is no promise worth showing.
const DAY_MS: f64 = 86_400_000.0;

/// How long a model's history is taken as read: other instances' jobs end too.
const HISTORY_TTL: Duration = Duration::from_secs(30);

/// Each model's history, and when it was read.
pub(super) type Histories = HashMap<String, (Instant, Arc<ModelHistory>)>;

impl Jobs {
    /// The model's history as last read (empty before it has been).
    pub(super) fn history(&self, model: &str) -> Arc<ModelHistory> {
        self.histories()
            .get(model)
            .map(|(_, history)| Arc::clone(history))
            .unwrap_or_default()
    }

    /// Reads the model's history again from the database (a failure keeps what was known).
    pub(super) async fn refresh_history(&self, model: &str) -> Arc<ModelHistory> {
        match self.db.recent_runs(model, HISTORY_RUNS).await {
            Ok(runs) => {
                let history = Arc::new(ModelHistory::new(runs));
                self.histories()
                    .insert(model.to_owned(), (Instant::now(), Arc::clone(&history)));
                history
            }
            Err(e) => {
                tracing::warn!(model, error = %e, "cannot read the model's history");
                self.history(model)
            }
        }
    }

    /// Reads the history of every waiting job's model that has none yet, or one older than
    /// [`HISTORY_TTL`].
    pub(super) async fn load_missing_histories(&self) {
        let missing: Vec<String> = {
            let queue = self.queue();
            let known = self.histories();
            let mut models: Vec<String> = queue
                .line()
                .filter(|job| {
                    known
                        .get(&job.model)
                        .is_none_or(|(read, _)| read.elapsed() > HISTORY_TTL)
                })
                .map(|job| job.model.clone())
                .collect();
            models.sort_unstable();
            models.dedup();
            models
        };
        for model in missing {
            self.refresh_history(&model).await;
        }
    }

    /// When (Unix ms) each waiting job is expected to start and to end; `None` where nobody
    /// can tell.
    pub(super) fn expected_starts(&self, queue: &Queue) -> HashMap<i64, Expected> {
        let now = now_ms();
        let histories = self.histories();
        let expected = |model: &str, max_tokens: Option<u32>, prompt_chars: usize| {
            histories
                .get(model)
                .and_then(|(_, h)| h.expected_ms(max_tokens, prompt_chars))
        };
        let mut running: HashMap<String, Vec<Option<f64>>> = HashMap::new();
        self.hub.for_each(|view| {
            let Some(backend) = view.backend.as_ref().filter(|_| view.status.is_running()) else {
                return;
            };
            // Unix milliseconds and elapsed times stay far below 2^52: exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            let left = {
                let since = (now - view.progress.last_update_at).max(0) as f64;
                match view.progress.estimated_time_remaining {
                    Some(ms) => Some((ms as f64 - since).max(0.0)),
                    // Loading, before the model's speed is known here: its whole expected run.
                    None if view.status == JobStatus::Loading => {
                        let elapsed = view.progress.elapsed_time as f64 + since;
                        expected(&view.model, view.max_tokens, 0).map(|ms| (ms - elapsed).max(0.0))
                    }
                    None => None,
                }
            };
            running.entry(backend.clone()).or_default().push(left);
        });
        // A server that is down takes no job until it is back, and nobody knows when.
        let servers: Vec<Server> = self
            .pool
            .members()
            .iter()
            .filter(|m| m.is_up())
            .map(|m| Server {
                name: m.name.clone(),
                slots: m.concurrency,
                running: running.remove(&m.name).unwrap_or_default(),
            })
            .collect();
        let line: Vec<Ahead> = queue
            .line()
            .map(|job| Ahead {
                id: job.id,
                servers: self
                    .pool
                    .candidates(&job.model)
                    .iter()
                    .map(|m| m.name.clone())
                    .collect(),
                duration_ms: expected(&job.model, job.max_tokens, job.prompt_chars),
            })
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        // Finite milliseconds from now, kept within a day: far inside i64.
        let at = |ms: Option<f64>| {
            ms.filter(|ms| ms.is_finite() && *ms < DAY_MS)
                .map(|ms| now.saturating_add(ms.round() as i64))
        };
        forecast::starts(&servers, &line)
            .into_iter()
            .zip(&line)
            .map(|((id, start), job)| {
                let end = start.zip(job.duration_ms).map(|(start, run)| start + run);
                (
                    id,
                    Expected {
                        start: at(start),
                        end: at(end),
                    },
                )
            })
            .collect()
    }

    fn histories(&self) -> std::sync::MutexGuard<'_, Histories> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.histories.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When a waiting job is expected to start and to end (Unix ms), when that can be told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Expected {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// Whether an expected start moved enough to tell the watchers: by more than a second and a
/// tenth of the wait, or from known to unknown and back. (Running jobs' estimates move a
/// little with every token; a card that changed its promise as often would say nothing.)
pub(super) fn moved(before: Option<i64>, now: Option<i64>, at: i64) -> bool {
    match (before, now) {
        (Some(before), Some(now)) => (before - now).abs() > 1_000.max((now - at).abs() / 10),
        (before, now) => before.is_some() != now.is_some(),
    }
}
