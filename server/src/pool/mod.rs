//! The model servers a wall generates with, and what it knows of each: up or down (and since
//! when), the models it has and has loaded, and how many generations run on it. The job
//! dispatcher asks it where a job can run ([`Pool::place`], [`Pool::assess`]); a run tells it when its server
//! went away ([`Member::mark_down`]); [`watch`] keeps each server's state fresh and probes the
//! ones that are down.
//!
//! `member` is one server's state, `slot` a generation's hold on one of its places, `watch`
//! the background refresh and probe, `refresh` the refreshes public calls ask for, shared.
mod member;
mod refresh;
mod slot;
mod watch;

use std::sync::Arc;

use app::types::{BackendHealth, OfferedModel};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use member::Member;
pub use slot::Slot;

use crate::{allowed_models::same_model, backend::Backend};

/// Whether a job for a model could start now, or what it would wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assessment {
    /// A reachable server that may run it has a free slot.
    Free,
    /// Every reachable server that may run it is busy: these.
    Busy { backends: Vec<String> },
    /// Every server that may run it is unreachable: these, all of them since `since` (Unix ms).
    Down {
        backends: Vec<String>,
        since: Option<i64>,
    },
    /// No server here may run this model at all.
    Nowhere,
}

/// The model servers, in the configured order.
pub struct Pool {
    members: Vec<Arc<Member>>,
    /// Wakes the dispatcher: a slot was freed, a server came back or listed new models.
    changed: Arc<Notify>,
    /// The refreshes asked for by requests, shared (see [`Pool::refresh`]).
    refreshes: refresh::Refreshes,
}

impl Pool {
    /// A pool of `(name, client, concurrency, models it may serve: empty for any)`.
    pub fn new(servers: Vec<(String, Backend, u32, Vec<String>)>) -> Self {
        let changed = Arc::new(Notify::new());
        let members = servers
            .into_iter()
            .map(|(name, backend, concurrency, models)| {
                Arc::new(Member::new(
                    name,
                    backend,
                    concurrency,
                    models,
                    Arc::clone(&changed),
                ))
            })
            .collect();
        Self {
            members,
            changed,
            refreshes: refresh::Refreshes::default(),
        }
    }

    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    /// Resolves when something changed that may let a waiting job run.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Wakes whoever waits on [`Pool::changed`] (the dispatcher), e.g. for a new job.
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// The servers that may run `model`: those that have it (or have not said yet), else, when
    /// none has it, every server whose configuration allows it (so that its own "not found"
    /// answer says what is wrong).
    pub fn candidates(&self, model: &str) -> Vec<&Arc<Member>> {
        let having: Vec<_> = self.members.iter().filter(|m| m.has(model)).collect();
        if !having.is_empty() {
            return having;
        }
        self.members.iter().filter(|m| m.allows(model)).collect()
    }

    /// A slot for a job of `model` on a reachable server that may run it, when one is free:
    /// one that has the model loaded first, then the least busy (so that models are not
    /// swapped needlessly). The slot is taken at once and held until dropped.
    pub fn place(&self, model: &str) -> Option<Slot> {
        self.place_except(model, &[])
    }

    /// As [`Pool::place`], on none of the servers named in `except` (for a job whose server
    /// answered that it is busy).
    pub fn place_except(&self, model: &str, except: &[String]) -> Option<Slot> {
        let candidates = self.candidates(model).into_iter();
        Self::place_among(model, candidates.filter(|m| !except.contains(&m.name)))
    }

    /// As [`Pool::place_except`], only on a server whose last list names `model` (for a job
    /// whose server answered it lacks the model: never on a guess).
    pub fn place_listed_except(&self, model: &str, except: &[String]) -> Option<Slot> {
        let listing = self.members.iter().filter(|m| m.lists(model));
        Self::place_among(model, listing.filter(|m| !except.contains(&m.name)))
    }

    /// A free slot on one of `members`: loaded first, then the least busy.
    fn place_among<'a>(
        model: &str,
        members: impl Iterator<Item = &'a Arc<Member>>,
    ) -> Option<Slot> {
        let mut free: Vec<_> = members
            .filter_map(|m| m.load(model).map(|load| (load, m)))
            .collect();
        // Stable: among equals, the first configured.
        free.sort_by_key(|(load, _)| *load);
        free.into_iter()
            .find_map(|(_, member)| Slot::take(member, model))
    }

    /// Whether a job for `model` could start now, or what it would wait for.
    pub fn assess(&self, model: &str) -> Assessment {
        let candidates = self.candidates(model);
        if candidates.is_empty() {
            return Assessment::Nowhere;
        }
        if candidates.iter().any(|m| m.load(model).is_some()) {
            return Assessment::Free;
        }
        let (up, down): (Vec<&Arc<Member>>, Vec<&Arc<Member>>) =
            candidates.into_iter().partition(|m| m.is_up());
        if up.is_empty() {
            Assessment::Down {
                backends: down.iter().map(|m| m.name.clone()).collect(),
                since: down.iter().filter_map(|m| m.down_since()).max(),
            }
        } else {
            Assessment::Busy {
                backends: up.iter().map(|m| m.name.clone()).collect(),
            }
        }
    }

    /// Whether two models compete for a server: some server may run both.
    pub fn share_a_server(&self, a: &str, b: &str) -> bool {
        same_model(a, b)
            || self
                .candidates(a)
                .iter()
                .any(|m| self.candidates(b).iter().any(|n| Arc::ptr_eq(m, n)))
    }

    /// Whether any server other than `name` that may run `model` is reachable now: a job whose
    /// server died can go on there.
    pub fn another_up_for(&self, model: &str, name: &str) -> bool {
        self.candidates(model)
            .iter()
            .any(|m| m.name != name && m.is_up())
    }

    /// Each of `allowed` with the reachable servers that have it (and have it loaded).
    pub fn offered(&self, allowed: &[String]) -> Vec<OfferedModel> {
        allowed
            .iter()
            .map(|name| {
                let having: Vec<_> = self
                    .members
                    .iter()
                    .filter(|m| m.is_up() && m.lists(name))
                    .collect();
                OfferedModel {
                    name: name.clone(),
                    backends: having.iter().map(|m| m.name.clone()).collect(),
                    loaded_on: having
                        .iter()
                        .filter(|m| m.has_loaded(name))
                        .map(|m| m.name.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// Every server's state, for `/readyz`.
    pub fn health(&self) -> Vec<BackendHealth> {
        self.members.iter().map(|m| m.health()).collect()
    }

    /// Lists every server's models now (as the watcher does every 30 s), all at once; the
    /// error of each that did not answer (a server found gone is marked down). Calls share a
    /// refresh under way or just ended (see [`refresh`]).
    pub async fn refresh(&self) -> Vec<Option<String>> {
        self.refreshes.refresh(&self.members).await
    }

    /// Starts the background refresh and probing of every server (see [`watch`]).
    pub fn watch(&self, tasks: &TaskTracker, shutdown: CancellationToken) {
        for member in &self.members {
            let member = Arc::clone(member);
            let shutdown = shutdown.clone();
            tasks.spawn(async move { watch::watch(member, shutdown).await });
        }
    }
}
