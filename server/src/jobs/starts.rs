//! When each waiting job is expected to start, and what each model has done lately: the
//! [`forecast`](super::forecast) fed with the pool's servers, the running jobs' expected ends
//! and each model's [`ModelHistory`], kept here per model and read again from the database
//! when one of its jobs starts or completes.
use std::{collections::HashMap, sync::Arc};

use app::types::JobStatus;

use super::{
    forecast::{self, Ahead, Server},
    history::{ModelHistory, WINDOW},
    queue::Queue,
    Jobs,
};
use crate::db::now_ms;

impl Jobs {
    /// The model's history as last read (empty before it has been).
    pub(super) fn history(&self, model: &str) -> Arc<ModelHistory> {
        self.histories().get(model).cloned().unwrap_or_default()
    }

    /// Reads the model's history again from the database (a failure keeps what was known).
    pub(super) async fn refresh_history(&self, model: &str) -> Arc<ModelHistory> {
        match self.db.recent_runs(model, WINDOW).await {
            Ok(runs) => {
                let history = Arc::new(ModelHistory::new(runs));
                self.histories()
                    .insert(model.to_owned(), Arc::clone(&history));
                history
            }
            Err(e) => {
                tracing::warn!(model, error = %e, "cannot read the model's history");
                self.history(model)
            }
        }
    }

    /// Reads the history of every waiting job's model that has none yet.
    pub(super) async fn load_missing_histories(&self) {
        let missing: Vec<String> = {
            let queue = self.queue();
            let known = self.histories();
            let mut models: Vec<String> = queue
                .line()
                .filter(|job| !known.contains_key(&job.model))
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

    /// When (Unix ms) each waiting job is expected to start; `None` where nobody can tell.
    pub(super) fn expected_starts(&self, queue: &Queue) -> HashMap<i64, Option<i64>> {
        let now = now_ms();
        let histories = self.histories();
        let expected = |model: &str, max_tokens: Option<u32>, prompt_chars: usize| {
            histories
                .get(model)
                .and_then(|h| h.expected_ms(max_tokens, prompt_chars))
        };
        let mut running: HashMap<String, Vec<Option<f64>>> = HashMap::new();
        self.hub.for_each(|view| {
            let Some(backend) = view.backend.as_ref().filter(|_| view.status.is_running()) else {
                return;
            };
            // Unix milliseconds and elapsed times stay far below 2^52: exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            let left = if view.status == JobStatus::Generating {
                let since = (now - view.progress.last_update_at).max(0) as f64;
                let remaining = view.progress.estimated_time_remaining;
                remaining.map(|ms| (ms as f64 - since).max(0.0))
            } else {
                let elapsed = view.progress.elapsed_time as f64;
                expected(&view.model, view.max_tokens, 0).map(|ms| (ms - elapsed).max(0.0))
            };
            running.entry(backend.clone()).or_default().push(left);
        });
        let servers: Vec<Server> = self
            .pool
            .members()
            .iter()
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
        // Milliseconds from now: far inside i64.
        forecast::starts(&servers, &line)
            .into_iter()
            .map(|(id, ms)| (id, ms.map(|ms| now + ms.round() as i64)))
            .collect()
    }

    fn histories(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ModelHistory>>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.histories.lock().unwrap_or_else(|e| e.into_inner())
    }
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
