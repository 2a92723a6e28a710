//! The in-process hub: the latest state of every unfinished job, pushed to its watchers the
//! moment it changes, and one broadcast of everything for the wall's multiplexed stream.
//!
//! Each job has a `watch` channel holding its whole [`JobView`]: a watcher that falls behind
//! simply sees the newest state (coalescing for free) and computes the text it has not sent
//! from its own offset. The wall broadcast carries deltas; a wall watcher that lags gets a
//! fresh snapshot instead. Nobody polls the database.
//!
//! With several instances (PostgreSQL) every change made here is also handed to the bus
//! ([`Outbox`]), which tells the other instances; what they tell comes in through the
//! `*_remote` methods, which change the hub alike but hand nothing back to the bus.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use app::types::{
    BlocksPatch, DoneEvent, ErrorEvent, HtmlPatch, JobEvent, JobStatus, JobView, Post,
    PostDeletedEvent, ProgressDelta, ProgressEvent, WallEvent,
};
use axum::body::Bytes;
use tokio::sync::{broadcast, watch};

use crate::bus::Outbox;

pub mod fanout;
mod wall;
use fanout::{Fanout, Joined, Version};
pub use wall::WireEvent;

/// Wall events kept for the pump before it lags (and every watcher gets a snapshot).
const WALL_BUFFER: usize = 4096;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Mutex<HashMap<i64, watch::Sender<JobView>>>,
    /// Every wall event as it happens, to the pump ([`Hub::pump_wall`]).
    wall: broadcast::Sender<Arc<WireEvent>>,
    /// The wall's watchers, to whom the pump hands what it seals.
    fanout: Arc<Fanout>,
    /// How many changes the wall has seen: a snapshot taken after the n-th holds them all.
    changes: AtomicU64,
    /// The last snapshot framed for a wall watcher, and the changes it holds.
    snapshot: Mutex<Option<(u64, Bytes)>>,
    /// Where this instance's changes go for the other instances, when there are any.
    outbox: Option<Outbox>,
}

/// Whether a change goes to the other instances too: not when it came from one of them, nor
/// when each instance works it out itself (queue positions, from the database).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tell {
    Others,
    NoOne,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::with_outbox(None)
    }

    /// A hub whose changes also go to `outbox` (the bus to the other instances).
    pub fn with_outbox(outbox: Option<Outbox>) -> Self {
        Self {
            inner: Arc::new(Inner {
                jobs: Mutex::new(HashMap::new()),
                wall: broadcast::channel(WALL_BUFFER).0,
                fanout: Arc::default(),
                changes: AtomicU64::new(0),
                snapshot: Mutex::new(None),
                outbox,
            }),
        }
    }

    /// The bus to the other instances, when there are any.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.inner.outbox.as_ref()
    }

    fn outbox_for(&self, tell: Tell) -> Option<&Outbox> {
        match tell {
            Tell::Others => self.inner.outbox.as_ref(),
            Tell::NoOne => None,
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<JobView>>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts carrying an unfinished job (new, claimed, retried or recovered) and tells the wall.
    ///
    /// Sequence numbers are the time of the change in microseconds (or one more than the last,
    /// if that is later), so they keep increasing across a Retry, a restart of the server, and
    /// a move to another instance.
    pub fn track(&self, mut view: JobView) {
        view.seq = view.seq.max(now_micros());
        self.track_as(view, Tell::Others);
    }

    /// [`Hub::track`] of a job another instance changed, with the number it gave the change.
    pub fn track_remote(&self, view: JobView) {
        self.track_as(view, Tell::NoOne);
    }

    fn track_as(&self, mut view: JobView, tell: Tell) {
        let mut jobs = self.jobs();
        let previous = jobs.get(&view.id).map_or(0, |tx| tx.borrow().seq);
        view.seq = view.seq.max(previous + 1);
        if let Some(outbox) = self.outbox_for(tell) {
            outbox.job(view.id, view.run, view.seq);
        }
        match jobs.get(&view.id) {
            Some(tx) => {
                tx.send_replace(view.clone());
            }
            None => {
                jobs.insert(view.id, watch::channel(view.clone()).0);
            }
        }
        // Under the lock, so that a job's events reach the wall in the order of their numbers.
        self.broadcast(WallEvent::Job(view));
    }

    /// Applies a change to a tracked job and pushes it: watchers wake, the wall gets the delta.
    /// Returns false when the job is not tracked (it finished, or was deleted).
    ///
    /// `change` must not touch the text: a change of text goes through [`Hub::publish`] with the
    /// blocks rendered from it, so that the wall's patches stay on the text they describe.
    ///
    /// Only this instance's watchers hear it: every instance works out the queue's positions
    /// itself, from the database.
    pub fn update(&self, job_id: i64, change: impl FnOnce(&mut JobView)) -> bool {
        self.publish_as(job_id, None, change, None, Tell::NoOne)
    }

    /// [`Hub::update`], with the answer's blocks rendered anew (`Some`): the wall gets the
    /// patch from the first block that differs from what it has.
    pub fn publish(
        &self,
        job_id: i64,
        blocks: Option<Vec<String>>,
        change: impl FnOnce(&mut JobView),
    ) -> bool {
        self.publish_as(job_id, blocks, change, None, Tell::Others)
    }

    /// [`Hub::publish`] of a change another instance made, numbered `seq` there.
    pub fn publish_remote(
        &self,
        job_id: i64,
        seq: u64,
        blocks: Option<Vec<String>>,
        change: impl FnOnce(&mut JobView),
    ) -> bool {
        self.publish_as(job_id, blocks, change, Some(seq), Tell::NoOne)
    }

    fn publish_as(
        &self,
        job_id: i64,
        blocks: Option<Vec<String>>,
        change: impl FnOnce(&mut JobView),
        seq: Option<u64>,
        tell: Tell,
    ) -> bool {
        let jobs = self.jobs();
        let Some(tx) = jobs.get(&job_id) else {
            return false;
        };
        let mut event = None;
        let mut short = None;
        let outbox = self.outbox_for(tell);
        let wall_watched = self.wall_watchers() > 0;
        tx.send_modify(|view| {
            let before = (view.text.len(), view.thinking.len());
            let was = wall_watched.then(|| progress_event(view, before.0, before.1));
            change(view);
            // Numbered by the clock, as every instance numbers its changes: a browser that
            // moves to another instance finds the numbers going on from where it was.
            view.seq = seq.unwrap_or_else(now_micros).max(view.seq + 1);
            let offset = before.0.min(view.text.len());
            let thinking_offset = before.1.min(view.thinking.len());
            let mut progress = progress_event(view, offset, thinking_offset);
            if let Some(outbox) = outbox {
                outbox.progress(&progress);
            }
            let mut html = None;
            if let Some(blocks) = blocks {
                if wall_watched {
                    html = HtmlPatch::between(&view.blocks, &blocks);
                }
                progress.html = BlocksPatch::between(&view.blocks, &blocks);
                view.blocks = blocks;
            }
            short = was.and_then(|was| ProgressDelta::of(&progress, &was, html));
            event = Some(progress);
        });
        // Under the lock, so that a job's events reach the wall in the order of their numbers.
        if let Some(event) = event {
            self.broadcast_as(
                &WallEvent::Progress(event),
                short.map(WallEvent::Delta).as_ref(),
            );
        }
        true
    }

    /// Publishes a job's terminal state and stops tracking it. Watchers holding a receiver see
    /// the final state, then the channel closes.
    pub fn finish(&self, view: JobView) {
        self.finish_as(view, Tell::Others);
    }

    /// [`Hub::finish`] of a job that ended on another instance.
    pub fn finish_remote(&self, view: JobView) {
        self.finish_as(view, Tell::NoOne);
    }

    fn finish_as(&self, mut view: JobView, tell: Tell) {
        let mut jobs = self.jobs();
        if let Some(tx) = jobs.remove(&view.id) {
            view.seq = view.seq.max(tx.borrow().seq + 1);
            tx.send_replace(view.clone());
        }
        if let Some(outbox) = self.outbox_for(tell) {
            outbox.job(view.id, view.run, view.seq);
        }
        self.broadcast(terminal_event(&view).into());
    }

    /// The ids of the jobs the hub carries.
    pub fn tracked(&self) -> Vec<i64> {
        self.jobs().keys().copied().collect()
    }

    /// Forgets a job whose post was deleted.
    pub fn forget(&self, job_id: i64) {
        self.jobs().remove(&job_id);
        // A snapshot framed before must not show it any more.
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// A receiver of the job's live state, if the hub is carrying it.
    pub fn watch(&self, job_id: i64) -> Option<watch::Receiver<JobView>> {
        self.jobs().get(&job_id).map(watch::Sender::subscribe)
    }

    /// The live state of a tracked job.
    pub fn current(&self, job_id: i64) -> Option<JobView> {
        self.jobs()
            .get(&job_id)
            .map(|tx| up_to_now(tx.borrow().clone()))
    }

    /// Looks at every tracked job's state as last published, without copying it.
    pub fn for_each(&self, mut look: impl FnMut(&JobView)) {
        for tx in self.jobs().values() {
            look(&tx.borrow());
        }
    }

    /// Every tracked job's live state, oldest first.
    pub fn snapshot(&self) -> Vec<JobView> {
        let mut views: Vec<JobView> = self
            .jobs()
            .values()
            .map(|tx| up_to_now(tx.borrow().clone()))
            .collect();
        views.sort_by_key(|v| v.id);
        views
    }

    /// A seat for a new wall watcher, where the wall's pieces queue until its socket comes;
    /// take a snapshot after this, so nothing falls between.
    pub fn join_wall(&self, version: Version) -> Joined {
        self.inner.fanout.join(version)
    }

    /// The wall's events one by one, as they happen (the pump's input).
    pub fn wall_events(&self) -> broadcast::Receiver<Arc<WireEvent>> {
        self.inner.wall.subscribe()
    }

    pub fn post_created(&self, post: Post) {
        if let Some(outbox) = self.outbox() {
            outbox.post(post.id);
        }
        self.post_created_remote(post);
    }

    /// A post created on another instance.
    pub fn post_created_remote(&self, post: Post) {
        self.broadcast(WallEvent::Post(post));
    }

    /// A post deleted here, with its job (which the hub forgets), if it had one.
    pub fn post_deleted(&self, post_id: i64, job_id: Option<i64>) {
        if let Some(outbox) = self.outbox() {
            outbox.post_deleted(post_id, job_id);
        }
        self.post_deleted_remote(post_id, job_id);
    }

    /// A post deleted on another instance.
    pub fn post_deleted_remote(&self, post_id: i64, job_id: Option<i64>) {
        if let Some(job_id) = job_id {
            self.forget(job_id);
        }
        self.broadcast(WallEvent::PostDeleted(PostDeletedEvent { post_id }));
    }

    /// The hub was brought up to date from the database after notes from other instances may
    /// have been missed: every wall watcher takes a fresh snapshot (a marker with no data,
    /// which each wall stream turns into a snapshot of its own).
    pub fn resynced(&self) {
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
        drop(self.inner.wall.send(Arc::new(WireEvent::Resynced)));
    }

    /// How many changes the wall has seen. Read after subscribing, it says which framed snapshot
    /// a new watcher may share: one that holds at least these.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Acquire)
    }

    /// The last framed snapshot, if it holds the wall's `changes` (and so every one since).
    pub fn framed_snapshot(&self, changes: u64) -> Option<Bytes> {
        let cached = self
            .inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(holds, _)| *holds == changes)
            .map(|(_, frame)| frame.clone())
    }

    /// Keeps `frame`, a snapshot taken after the wall had seen `changes`, for the next watchers.
    pub fn keep_framed_snapshot(&self, changes: u64, frame: Bytes) {
        let mut cached = self
            .inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_none_or(|(holds, _)| *holds <= changes) {
            *cached = Some((changes, frame));
        }
    }

    pub fn wall_watchers(&self) -> usize {
        self.inner.fanout.watchers()
    }

    fn broadcast(&self, event: WallEvent) {
        self.broadcast_as(&event, None);
    }

    /// Frames `event` (and its short form for v2, if any) once for every wall watcher.
    fn broadcast_as(&self, event: &WallEvent, short: Option<&WallEvent>) {
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
        // Nobody is looking at the wall: nothing to frame.
        if self.wall_watchers() == 0 {
            return;
        }
        match WireEvent::new(event, short) {
            Ok(wire) => drop(self.inner.wall.send(Arc::new(wire))),
            Err(e) => {
                tracing::error!(error = %e, event = %event.name(), "cannot serialise a wall event")
            }
        }
    }
}

/// A running job's elapsed time moves on between its updates (none come during a model load):
/// a page rendered now must show the time until now.
fn up_to_now(mut view: JobView) -> JobView {
    if view.status.is_running() {
        let now = crate::db::now_ms();
        let since_update = u64::try_from(now - view.progress.last_update_at).unwrap_or_default();
        view.progress.elapsed_time += since_update;
        view.progress.last_update_at = now;
    }
    view
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The progress event for a view, carrying the text after `offset` bytes and the reasoning
/// after `thinking_offset` bytes.
pub fn progress_event(view: &JobView, offset: usize, thinking_offset: usize) -> ProgressEvent {
    ProgressEvent {
        job_id: view.id,
        post_id: view.post_id,
        status: view.status,
        queue_position: view.queue_position,
        expected_start_at: view.expected_start_at,
        progress: view.progress.clone(),
        text_offset: offset,
        text_delta: view.text.get(offset..).unwrap_or_default().to_owned(),
        html: None,
        attempt: view.attempt,
        retry_at: view.retry_at,
        error: view.error.clone(),
        failure: view.failure,
        unreachable_since: view.unreachable_since,
        model_loaded: view.model_loaded,
        run: view.run,
        seq: view.seq,
        thinking_offset,
        thinking_delta: view
            .thinking
            .get(thinking_offset..)
            .unwrap_or_default()
            .to_owned(),
        reasoning: view.reasoning.clone(),
        prompt_progress: view.prompt_progress,
        backend: view.backend.clone(),
        waiting_for: view.waiting_for.clone(),
    }
}

/// The `done` or `error` event of a finished job, with the blocks of its final text: a client
/// ends with exactly what the server renders.
pub fn terminal_event(view: &JobView) -> JobEvent {
    let blocks = crate::markdown::blocks(&view.text);
    match view.status {
        JobStatus::Completed => JobEvent::Done(DoneEvent {
            job_id: view.id,
            post_id: view.post_id,
            text: view.text.clone(),
            html: blocks.concat(),
            blocks,
            stats: view.stats.clone().unwrap_or_default(),
            progress: view.progress.clone(),
            seq: view.seq,
        }),
        status => JobEvent::Error(ErrorEvent {
            job_id: view.id,
            post_id: view.post_id,
            status,
            message: view
                .error
                .clone()
                .unwrap_or_else(|| "The generation stopped.".into()),
            failure: view.failure,
            text: view.text.clone(),
            blocks,
            seq: view.seq,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use app::types::{HtmlPatch, JobStatus, JobView, ProgressEvent, WallEvent};
    use tokio::sync::broadcast;

    use super::{Hub, Version, WireEvent};

    /// The next event on the wall as `/api/v1/wall/events` sends it, and as v2 does.
    fn next(wall: &mut broadcast::Receiver<Arc<WireEvent>>) -> (WallEvent, WallEvent) {
        let wire = wall.try_recv().unwrap();
        let WireEvent::Frames { v1, v2, .. } = &*wire else {
            panic!("an event: {wire:?}");
        };
        (crate::sse_frame::decode(v1), crate::sse_frame::decode(v2))
    }

    /// The next event on the wall, which must be a progress event.
    fn next_progress(wall: &mut broadcast::Receiver<Arc<WireEvent>>) -> ProgressEvent {
        match next(wall).0 {
            WallEvent::Progress(p) => p,
            other => panic!("a progress event: {other:?}"),
        }
    }

    fn view(id: i64) -> JobView {
        JobView {
            queue_position: Some(1),
            expected_start_at: None,
            ..JobView::fresh(id, id * 10, "m")
        }
    }

    #[tokio::test]
    async fn a_watcher_sees_the_latest_state_and_the_wall_sees_deltas() {
        let hub = Hub::new();
        hub.track(view(1));
        let (_watching, mut wall) = (hub.join_wall(Version::V1), hub.wall_events());
        assert_eq!(hub.snapshot().len(), 1);
        let mut rx = hub.watch(1).unwrap();
        hub.update(1, |v| v.text.push_str("Hello"));
        hub.update(1, |v| v.text.push_str(", world"));
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update().text, "Hello, world");
        let deltas: Vec<_> = (0..2)
            .map(|_| {
                let p = next_progress(&mut wall);
                (p.text_offset, p.text_delta, p.seq)
            })
            .collect();
        let seq = deltas[0].2;
        assert!(
            seq > 1_700_000_000_000_000,
            "numbered from the time in microseconds"
        );
        assert!(deltas[1].2 > seq, "{deltas:?}");
        let texts: Vec<_> = deltas.into_iter().map(|(o, d, _)| (o, d)).collect();
        assert_eq!(texts, [(0, "Hello".to_owned()), (5, ", world".to_owned())]);
    }

    #[tokio::test]
    async fn finishing_closes_the_watch_after_the_final_state() {
        let hub = Hub::new();
        hub.track(view(1));
        let mut rx = hub.watch(1).unwrap();
        let mut done = view(1);
        done.status = JobStatus::Completed;
        done.text = "All".into();
        hub.finish(done);
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update().status, JobStatus::Completed);
        assert!(
            rx.changed().await.is_err(),
            "closed after the terminal state"
        );
        assert!(hub.watch(1).is_none());
        assert!(!hub.update(1, |v| v.text.push('x')));
    }

    #[tokio::test]
    async fn the_wall_gets_the_blocks_from_the_first_that_changed() {
        let hub = Hub::new();
        hub.track(view(1));
        let (_watching, mut wall) = (hub.join_wall(Version::V1), hub.wall_events());
        let blocks = |b: &[&str]| Some(b.iter().map(|s| (*s).to_owned()).collect());
        hub.publish(1, blocks(&["<h1>A</h1>", "<p>b</p>"]), |v| {
            v.text.push_str("# A\n\nb")
        });
        hub.publish(1, blocks(&["<h1>A</h1>", "<p>bc</p>"]), |v| {
            v.text.push('c')
        });
        hub.publish(1, blocks(&["<h1>A</h1>", "<p>bc</p>"]), |v| {
            v.text.push(' ')
        });
        hub.update(1, |v| v.queue_position = None);
        let patches: Vec<_> = (0..4)
            .map(|_| {
                let p = next_progress(&mut wall);
                p.html.map(|h| (h.from, h.blocks))
            })
            .collect();
        assert_eq!(
            patches,
            [
                Some((0, vec!["<h1>A</h1>".to_owned(), "<p>b</p>".to_owned()])),
                Some((1, vec!["<p>bc</p>".to_owned()])),
                None,
                None
            ]
        );
        assert_eq!(hub.current(1).unwrap().blocks, ["<h1>A</h1>", "<p>bc</p>"]);
    }

    #[tokio::test]
    async fn version_2_sends_a_change_of_text_and_numbers_in_short_and_any_other_whole() {
        let hub = Hub::new();
        hub.track(view(1));
        let (_watching, mut wall) = (hub.join_wall(Version::V1), hub.wall_events());
        let blocks = |b: &[&str]| Some(b.iter().map(|s| (*s).to_owned()).collect());
        hub.publish(1, blocks(&["<p>Hello</p>"]), |v| {
            v.status = JobStatus::Generating;
            v.queue_position = None;
            v.text.push_str("Hello");
        });
        hub.publish(1, blocks(&["<p>Hello, world</p>"]), |v| {
            v.text.push_str(", world");
            v.progress.current_tokens = 2;
        });
        let (v1, v2) = next(&mut wall);
        assert_eq!(v1, v2, "a change of status goes whole");
        let (v1, v2) = next(&mut wall);
        let (WallEvent::Progress(whole), WallEvent::Delta(short)) = (v1, v2) else {
            panic!("a short event on v2");
        };
        assert_eq!((short.job_id, short.post_id, short.seq), (1, 10, whole.seq));
        assert_eq!(
            (short.text_offset, short.text_delta.as_str()),
            (5, ", world")
        );
        assert_eq!(short.progress(), whole.progress);
        assert_eq!(
            short.html,
            Some(HtmlPatch {
                from: 0,
                keep: 8,
                blocks: vec![", world</p>".to_owned()]
            })
        );
    }

    #[tokio::test]
    async fn a_framed_snapshot_is_shared_until_the_wall_changes() {
        let hub = Hub::new();
        let _watching = hub.join_wall(Version::V1);
        let frame = axum::body::Bytes::from_static(b"snapshot");
        let changes = hub.changes();
        hub.keep_framed_snapshot(changes, frame.clone());
        assert_eq!(hub.framed_snapshot(hub.changes()), Some(frame.clone()));
        hub.track(view(1));
        assert_eq!(hub.framed_snapshot(hub.changes()), None, "a job came");
        hub.keep_framed_snapshot(hub.changes(), frame.clone());
        hub.update(1, |v| v.queue_position = Some(2));
        assert_eq!(
            hub.framed_snapshot(hub.changes()),
            None,
            "its position moved"
        );
        hub.keep_framed_snapshot(hub.changes(), frame.clone());
        hub.resynced();
        assert_eq!(
            hub.framed_snapshot(hub.changes()),
            None,
            "caught up with others"
        );
        hub.keep_framed_snapshot(hub.changes(), frame);
        hub.forget(1);
        assert_eq!(
            hub.framed_snapshot(hub.changes()),
            None,
            "its job forgotten"
        );
    }
}
