//! One model server of the pool and what is known of it now: reachable or not (since when,
//! and why), the models it lists and has loaded, which of them can reason, and how many
//! generations run on it out of how many it takes.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use app::types::{BackendHealth, BackendKind};
use tokio::sync::Notify;

use crate::{allowed_models::same_model, backend::Backend, db::now_ms};

pub struct Member {
    /// The configured name: public (on `/readyz`, in the model picker, on the card).
    pub name: String,
    pub backend: Backend,
    /// Generations it takes at once.
    pub concurrency: u32,
    /// The models the configuration lets it serve; empty: whatever it lists.
    configured: Vec<String>,
    state: Mutex<State>,
    /// Wakes the dispatcher (shared by the whole pool).
    changed: Arc<Notify>,
    /// Wakes this server's watcher: it was just marked down, or a refresh is wanted.
    pub(super) poke: Notify,
}

#[derive(Default)]
struct State {
    running: u32,
    /// Unix ms since when it has been unreachable, while it is.
    down_since: Option<i64>,
    /// Why its last check failed, in public words.
    error: Option<String>,
    version: Option<String>,
    /// The models it listed last; `None` until it has.
    models: Option<Vec<String>>,
    /// It has answered a listing, with its models or with an error status: jobs may go to it
    /// (one that answers, but not well, fails them with its own words).
    answered: bool,
    loaded: Vec<String>,
    /// Models it answered it lacks since its last listing, whatever the listing said.
    lacking: Vec<String>,
    /// Whether a model can reason (asked once per model).
    thinks: HashMap<String, bool>,
}

/// How a free, reachable server ranks for a model: lower is better (loaded first, then the
/// least busy in proportion to its size).
pub type Load = (bool, u64);

impl Member {
    pub(super) fn new(
        name: String,
        backend: Backend,
        concurrency: u32,
        configured: Vec<String>,
        changed: Arc<Notify>,
    ) -> Self {
        Self {
            name,
            backend,
            concurrency: concurrency.max(1),
            configured,
            state: Mutex::default(),
            changed,
            poke: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the configuration lets it serve `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.configured.is_empty() || self.configured.iter().any(|m| same_model(m, model))
    }

    /// Whether it listed `model` last time it was asked.
    pub fn lists(&self, model: &str) -> bool {
        self.allows(model) && self.listing(model) == Some(true)
    }

    /// Whether it may run `model`: allowed, and listed (or not listed yet).
    pub fn has(&self, model: &str) -> bool {
        self.allows(model) && self.listing(model) != Some(false)
    }

    /// Whether its last listing names `model`, `None` before it has listed anything; a model
    /// it has since answered it lacks is not named.
    fn listing(&self, model: &str) -> Option<bool> {
        let state = self.state();
        if state.lacking.iter().any(|m| same_model(m, model)) {
            return Some(false);
        }
        state
            .models
            .as_ref()
            .map(|models| models.iter().any(|m| same_model(m, model)))
    }

    pub fn has_loaded(&self, model: &str) -> bool {
        self.state().loaded.iter().any(|m| same_model(m, model))
    }

    pub fn is_up(&self) -> bool {
        self.state().down_since.is_none()
    }

    pub fn down_since(&self) -> Option<i64> {
        self.state().down_since
    }

    pub fn running(&self) -> u32 {
        self.state().running
    }

    /// How it ranks for `model` when it is reachable and has a free slot.
    pub(super) fn load(&self, model: &str) -> Option<Load> {
        let state = self.state();
        // Not before it has answered a listing: a job for a model it lacks would fail there.
        (state.answered && state.down_since.is_none() && state.running < self.concurrency).then(
            || {
                let loaded = state.loaded.iter().any(|m| same_model(m, model));
                (
                    !loaded,
                    u64::from(state.running) * 1000 / u64::from(self.concurrency),
                )
            },
        )
    }

    /// Takes one of its slots for `model` if one is free and it is reachable.
    pub(super) fn take_slot(&self, model: &str) -> bool {
        let mut state = self.state();
        if state.down_since.is_some() || !state.answered || state.running >= self.concurrency {
            return false;
        }
        state.running += 1;
        // It loads the model now (if it had not), and keeps it for a while; a kind that cannot
        // say what it has loaded is not guessed at.
        if self.backend.kind() == BackendKind::Ollama
            && !state.loaded.iter().any(|m| same_model(m, model))
        {
            state.loaded.push(model.to_string());
        }
        true
    }

    pub(super) fn free_slot(&self) {
        {
            let mut state = self.state();
            state.running = state.running.saturating_sub(1);
        }
        self.changed.notify_one();
    }

    /// It stopped answering (refused, timed out, or died under a reply): no job goes to it
    /// until a probe finds it back. The first report starts the outage.
    pub fn mark_down(&self, why: &str) {
        let began = {
            let mut state = self.state();
            state.error = Some(why.to_string());
            if state.down_since.is_some() {
                false
            } else {
                state.down_since = Some(now_ms());
                true
            }
        };
        if began {
            tracing::warn!(backend = %self.name, url = %self.backend.url(), error = %why, "model server unreachable; no job goes to it until it answers");
            self.poke.notify_one();
            self.changed.notify_one();
        }
    }

    /// It answered a check (with its version, when it tells one).
    pub(super) fn mark_up(&self, version: Option<String>) {
        let back = {
            let mut state = self.state();
            state.error = None;
            state.version = version;
            state.down_since.take()
        };
        if let Some(since) = back {
            let down_ms = now_ms().saturating_sub(since);
            tracing::info!(backend = %self.name, down_ms, "model server answers again");
            self.changed.notify_one();
        }
    }

    /// It answered that it does not have `model` after all (its list said it had): no job for
    /// it goes there until its next listing says so again.
    pub fn forget_model(&self, model: &str) {
        let mut state = self.state();
        if !state.lacking.iter().any(|m| same_model(m, model)) {
            state.lacking.push(model.to_string());
        }
        state.loaded.retain(|m| !same_model(m, model));
    }

    /// What it listed: the models it has and, when it can say, those loaded.
    pub(super) fn set_models(&self, models: Vec<String>, loaded: Option<Vec<String>>) {
        let changed = {
            let mut state = self.state();
            let changed = state.models.as_ref() != Some(&models) || !state.answered;
            state.models = Some(models);
            state.lacking.clear();
            state.answered = true;
            if let Some(loaded) = loaded {
                state.loaded = loaded;
            }
            changed
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Whether a request for `model` should ask it to reason first: asked of the server once
    /// per model (Ollama refuses `think` for a model without the capability).
    pub async fn can_think(&self, model: &str) -> bool {
        if let Some(&known) = self.state().thinks.get(model) {
            return known;
        }
        match self.backend.can_think(model).await {
            Ok(thinks) => {
                self.state().thinks.insert(model.to_string(), thinks);
                thinks
            }
            Err(e) => {
                tracing::debug!(backend = %self.name, error = %e, "cannot ask whether the model can reason");
                false
            }
        }
    }

    pub fn health(&self) -> BackendHealth {
        let state = self.state();
        BackendHealth {
            name: self.name.clone(),
            kind: self.backend.kind(),
            ok: state.down_since.is_none() && state.error.is_none(),
            error: state.error.clone(),
            down_since: state.down_since,
            models: state.models.clone().unwrap_or_default(),
            running: state.running,
            concurrency: self.concurrency,
        }
    }

    /// Its version, when it told one.
    pub fn version(&self) -> Option<String> {
        self.state().version.clone()
    }

    /// Records why its last check failed when it still answers (an error status).
    pub(super) fn set_error(&self, why: Option<String>) {
        self.state().error = why;
    }

    /// It answered a listing with an error status: it is there, if not well.
    pub(super) fn answered_badly(&self, why: String) {
        let first = {
            let mut state = self.state();
            state.error = Some(why);
            !std::mem::replace(&mut state.answered, true)
        };
        if first {
            self.changed.notify_one();
        }
    }
}
