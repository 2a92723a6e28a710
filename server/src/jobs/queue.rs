//! Where every unfinished job is: waiting in the queue (FIFO by the time it entered, then id),
//! or running, with what is needed to stop it.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio_util::sync::CancellationToken;

/// Why a running job is being stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Its author pressed Stop (or deleted the post).
    Cancelled,
    /// The server is shutting down: the job goes back to the queue.
    Shutdown,
    /// This instance lost the job's lease: another instance runs it now, or will; this run
    /// ends without a word to the database.
    LeaseLost,
}

/// How to stop one run of a job, shared by the queue and the run itself.
#[derive(Clone)]
pub struct StopHandle {
    /// Which run of the job this is: a Retry's run must not be forgotten when the previous
    /// run's task finishes.
    pub run: u32,
    /// When the run was claimed: a lease renewal that began before it cannot know of it.
    pub claimed: Instant,
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl StopHandle {
    pub fn new(run: u32) -> Self {
        Self {
            run,
            claimed: Instant::now(),
            token: CancellationToken::new(),
            reason: Arc::default(),
        }
    }

    pub fn stop(&self, reason: StopReason) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.token.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once someone stops the run.
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }

    /// Why the run was stopped (an author's Stop unless the server said otherwise).
    pub fn reason(&self) -> StopReason {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(StopReason::Cancelled)
    }
}

#[derive(Default)]
pub struct Queue {
    /// (queued_at, id): the order of the queue.
    waiting: BTreeSet<(i64, i64)>,
    /// The model of each waiting job (which servers it can run on) and the number of its
    /// entry (which tells a reload of the line what entered after it began).
    models: HashMap<i64, (String, u64)>,
    /// How many entries so far.
    entries: u64,
    running: HashMap<i64, StopHandle>,
    /// How often each unfinished job's server died under its reply (in memory only).
    deaths: HashMap<i64, u32>,
}

impl Queue {
    pub fn enter(&mut self, queued_at: i64, job_id: i64, model: &str) {
        self.leave(job_id);
        self.entries += 1;
        self.waiting.insert((queued_at, job_id));
        self.models
            .insert(job_id, (model.to_string(), self.entries));
    }

    /// How many entries so far: [`Queue::reload`] keeps what entered after this.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Makes the waiting line the database's (`line`: (queued_at, id, model), head first),
    /// except for jobs that entered after entry number `since` (the reading began before
    /// them) and the ones running here. The ids of the jobs new to it.
    pub fn reload(&mut self, line: &[(i64, i64, String)], since: u64) -> Vec<i64> {
        let listed: std::collections::HashSet<i64> = line.iter().map(|(_, id, _)| *id).collect();
        let gone: Vec<i64> = self
            .models
            .iter()
            .filter(|(id, (_, entry))| *entry <= since && !listed.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.leave(id);
        }
        let mut new = Vec::new();
        for (queued_at, id, model) in line {
            if self.running.contains_key(id) || self.waiting.contains(&(*queued_at, *id)) {
                continue;
            }
            self.enter(*queued_at, *id, model);
            new.push(*id);
        }
        new
    }

    /// The waiting jobs as (id, model), head first.
    pub fn waiting_models(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        self.waiting.iter().map(|&(_, id)| {
            (
                id,
                self.models
                    .get(&id)
                    .map(|(model, _)| model.as_str())
                    .unwrap_or_default(),
            )
        })
    }

    /// The waiting jobs as (the time they entered the queue, id), head first.
    pub fn waiting(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.waiting.iter().copied()
    }

    pub fn leave(&mut self, job_id: i64) {
        if self.models.remove(&job_id).is_some() {
            self.waiting.retain(|&(_, id)| id != job_id);
        }
    }

    /// Moves a claimed job from the waiting line to the running set.
    pub fn start(&mut self, job_id: i64, handle: StopHandle) {
        self.leave(job_id);
        self.running.insert(job_id, handle);
    }

    pub fn is_waiting(&self, job_id: i64) -> bool {
        self.models.contains_key(&job_id)
    }

    pub fn running(&self, job_id: i64) -> Option<&StopHandle> {
        self.running.get(&job_id)
    }

    /// Forgets a run that has ended (but not a newer run of the same job, after a Retry).
    pub fn finish(&mut self, job_id: i64, run: u32) {
        if self.running.get(&job_id).is_some_and(|r| r.run == run) {
            self.running.remove(&job_id);
        }
    }

    /// Counts that `job_id`'s server died under its reply; how often it had before.
    pub fn died_with_server(&mut self, job_id: i64) -> u32 {
        let deaths = self.deaths.entry(job_id).or_default();
        *deaths += 1;
        *deaths - 1
    }

    /// The job ended: its count of servers lost goes.
    pub fn ended(&mut self, job_id: i64) {
        self.deaths.remove(&job_id);
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    pub fn running_jobs(&self) -> impl Iterator<Item = (i64, &StopHandle)> {
        self.running.iter().map(|(&id, handle)| (id, handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_by_queue_time_then_id_and_a_retry_keeps_only_its_own_run() {
        let mut q = Queue::default();
        q.enter(20, 1, "m");
        q.enter(10, 2, "m");
        q.enter(10, 3, "m");
        let order = |q: &Queue| q.waiting_models().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(order(&q), [2, 3, 1]);
        q.start(2, StopHandle::new(1));
        assert_eq!(order(&q), [3, 1]);
        q.start(2, StopHandle::new(2)); // a Retry's run
        q.finish(2, 1);
        assert!(
            q.running(2).is_some(),
            "the older run's end leaves the newer one"
        );
        q.finish(2, 2);
        assert!(q.running(2).is_none());
    }

    #[test]
    fn a_reload_takes_the_databases_line_but_keeps_what_entered_during_it() {
        let mut q = Queue::default();
        q.enter(10, 1, "m");
        q.enter(20, 2, "m");
        let since = q.entries();
        q.enter(30, 3, "m"); // entered while the database was being read
        q.start(4, StopHandle::new(1)); // claimed here
        let line = [
            (20, 2, "m".to_string()),
            (25, 5, "m".to_string()),
            (26, 4, "m".to_string()),
        ];
        assert_eq!(q.reload(&line, since), [5]);
        let order: Vec<i64> = q.waiting_models().map(|(id, _)| id).collect();
        assert_eq!(
            order,
            [2, 5, 3],
            "1 was claimed or ended elsewhere; 4 runs here"
        );
    }
}
