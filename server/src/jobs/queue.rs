//! Where every unfinished job is: waiting in the fair queue, or running, with what is needed
//! to stop it.
//!
//! The fair order serves clients in turn. Each job waits for a round, given as it enters the
//! queue: one past its client's latest unfinished job, never before the round being served
//! (`db::jobs::next_turn` says it in SQL). The line is ordered by round,
//! then by the time each entered the queue, then id. So one client's third post waits behind
//! everyone's second, and a newcomer's first post waits for at most one job of each other
//! client. `Db::queued_jobs` reads the same order from the database.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio_util::sync::CancellationToken;

use crate::db::JobRow;

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

/// One job in the waiting line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The fair queue's round it waits for.
    pub turn: i64,
    pub queued_at: i64,
    pub id: i64,
    /// Which servers it can run on.
    pub model: String,
    /// What its run is expected to take depends on these.
    pub max_tokens: Option<u32>,
    pub prompt_chars: usize,
}

impl Waiting {
    pub fn of(row: &JobRow) -> Self {
        Self {
            turn: row.queue_turn.unwrap_or(0),
            queued_at: row.queued_at,
            id: row.id,
            model: row.model.clone(),
            max_tokens: row.max_tokens,
            prompt_chars: row.prompt.chars().count(),
        }
    }
}

#[derive(Default)]
pub struct Queue {
    /// (turn, queued_at, id): the order of the line.
    waiting: BTreeSet<(i64, i64, i64)>,
    /// Each waiting job, and the number of its entry (which tells a reload of the line what
    /// entered after it began).
    jobs: HashMap<i64, (Waiting, u64)>,
    /// How many entries so far.
    entries: u64,
    running: HashMap<i64, StopHandle>,
    /// How often each unfinished job's server died under its reply (in memory only).
    deaths: HashMap<i64, u32>,
}

impl Queue {
    pub fn enter(&mut self, job: Waiting) {
        self.leave(job.id);
        self.entries += 1;
        self.waiting.insert((job.turn, job.queued_at, job.id));
        self.jobs.insert(job.id, (job, self.entries));
    }

    /// How many entries so far: [`Queue::reload`] keeps what entered after this.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Makes the waiting line the database's (`line`), except for jobs that entered after
    /// entry number `since` (the reading began before them) and the ones running here. The
    /// ids of the jobs new to it.
    pub fn reload(&mut self, line: &[Waiting], since: u64) -> Vec<i64> {
        let listed: std::collections::HashSet<i64> = line.iter().map(|job| job.id).collect();
        let gone: Vec<i64> = self
            .jobs
            .iter()
            .filter(|(id, (_, entry))| *entry <= since && !listed.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.leave(id);
        }
        let mut new = Vec::new();
        for job in line {
            let place = (job.turn, job.queued_at, job.id);
            if self.running.contains_key(&job.id) || self.waiting.contains(&place) {
                continue;
            }
            new.push(job.id);
            self.enter(job.clone());
        }
        new
    }

    /// The waiting jobs as (id, model), head first.
    pub fn waiting_models(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        self.line().map(|job| (job.id, job.model.as_str()))
    }

    /// The waiting jobs, head first.
    pub fn line(&self) -> impl Iterator<Item = &Waiting> + '_ {
        self.waiting
            .iter()
            .filter_map(|&(_, _, id)| self.jobs.get(&id).map(|(job, _)| job))
    }

    /// The waiting jobs as (the time they entered the queue, id), head first.
    pub fn waiting(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.waiting
            .iter()
            .map(|&(_, queued_at, id)| (queued_at, id))
    }

    pub fn leave(&mut self, job_id: i64) {
        if let Some((job, _)) = self.jobs.remove(&job_id) {
            self.waiting.remove(&(job.turn, job.queued_at, job.id));
        }
    }

    /// Moves a claimed job from the waiting line to the running set.
    pub fn start(&mut self, job_id: i64, handle: StopHandle) {
        self.leave(job_id);
        self.running.insert(job_id, handle);
    }

    pub fn is_waiting(&self, job_id: i64) -> bool {
        self.jobs.contains_key(&job_id)
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

    fn job(turn: i64, queued_at: i64, id: i64) -> Waiting {
        Waiting {
            turn,
            queued_at,
            id,
            model: "m".into(),
            max_tokens: None,
            prompt_chars: 0,
        }
    }

    fn order(q: &Queue) -> Vec<i64> {
        q.waiting_models().map(|(id, _)| id).collect()
    }

    #[test]
    fn by_round_then_queue_time_then_id_and_a_retry_keeps_only_its_own_run() {
        let mut q = Queue::default();
        q.enter(job(1, 20, 1));
        q.enter(job(1, 10, 2));
        q.enter(job(1, 10, 3));
        q.enter(job(0, 30, 4));
        assert_eq!(order(&q), [4, 2, 3, 1]);
        q.start(2, StopHandle::new(1));
        assert_eq!(order(&q), [4, 3, 1]);
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
        q.enter(job(1, 10, 1));
        q.enter(job(1, 20, 2));
        let since = q.entries();
        q.enter(job(1, 30, 3)); // entered while the database was being read
        q.start(4, StopHandle::new(1)); // claimed here
        let line = [job(1, 20, 2), job(1, 25, 5), job(1, 26, 4)];
        assert_eq!(q.reload(&line, since), [5]);
        assert_eq!(
            order(&q),
            [2, 5, 3],
            "1 was claimed or ended elsewhere; 4 runs here"
        );
    }
}
