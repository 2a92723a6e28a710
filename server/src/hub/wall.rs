//! What the wall's watchers are sent: every event framed once for both versions of the stream,
//! and the pump that hands the watchers those events. The pump seals the events that came into
//! one piece ([`super::fanout`]) and goes round the watchers, writing each of them everything
//! sealed since its last turn: a watcher's socket is written once per turn for all the jobs that
//! moved meanwhile, not once per job and event. While it goes round it looks for new events
//! every [`LOOK_EVERY`] watchers, so that the watchers after that point have them in this round
//! and the ones before in the next: a token waits for the pump to come round once. A round
//! starts at once when the wall has been quiet, at most one per interval (from one round's start
//! to the next: when a round takes longer, the next starts as soon as it is done), and a comment
//! goes when the wall has been quiet for longer (one timer for the whole wall, not one per
//! watcher).
use std::{sync::Arc, time::Duration};

use app::types::WallEvent;
use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio_util::sync::CancellationToken;

use super::{
    fanout::{Line, Piece},
    Hub,
};
use crate::metrics::StreamKind;

/// What the wall's broadcasts carry.
#[derive(Debug)]
pub enum WireEvent {
    /// An event, framed (`event:` and `data:` lines) once for each version of the stream,
    /// however many watchers send it.
    Frames {
        /// For `/api/v1/wall/events`: every event whole.
        v1: Bytes,
        /// For `/api/v2/wall/events`: a progress event that changed only the text and numbers
        /// in short ([`app::types::ProgressDelta`]); the others as in `v1`.
        v2: Bytes,
    },
    /// The hub caught up with the other instances after missing their notes: each watcher
    /// takes a fresh snapshot.
    Resynced,
}

impl WireEvent {
    /// `event` framed for both versions, `short` (if any) standing for it on v2.
    pub fn new(event: &WallEvent, short: Option<&WallEvent>) -> Result<Self, serde_json::Error> {
        let v1 = crate::sse_frame::event(event)?;
        let v2 = match short {
            Some(short) => crate::sse_frame::event(short)?,
            None => v1.clone(),
        };
        Ok(Self::Frames { v1, v2 })
    }
}

/// Seats the pump hands their pieces to between two looks for new events.
const LOOK_EVERY: usize = 64;

/// Events gathered for one piece.
#[derive(Default)]
struct Batch {
    events: usize,
    v1: BytesMut,
    v2: BytesMut,
}

impl Batch {
    fn add(&mut self, v1: &Bytes, v2: &Bytes) {
        self.events += 1;
        self.v1.extend_from_slice(v1);
        self.v2.extend_from_slice(v2);
    }
}

/// The pump's own state: what it has sealed, and what it has gathered since.
struct Pump<'a> {
    hub: &'a Hub,
    events: broadcast::Receiver<Arc<WireEvent>>,
    line: Line,
    batch: Batch,
}

/// The wall's events stopped for good: the hub is gone.
struct Closed;

impl Pump<'_> {
    /// Gathers the events that came (`first`, then all that wait), and seals them in a piece.
    fn gather(&mut self, first: Result<Arc<WireEvent>, TryRecvError>) -> Result<(), Closed> {
        let mut next = first;
        loop {
            match next {
                Ok(wire) => match &*wire {
                    WireEvent::Frames { v1, v2 } => self.batch.add(v1, v2),
                    WireEvent::Resynced => {
                        self.seal();
                        self.resync();
                    }
                },
                // The pump fell behind: the watchers start again from a snapshot.
                Err(TryRecvError::Lagged(_)) => {
                    self.batch = Batch::default();
                    self.resync();
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return Err(Closed),
            }
            next = self.events.try_recv();
        }
        self.seal();
        Ok(())
    }

    /// Seals what was gathered, if anything.
    fn seal(&mut self) {
        if self.batch.events > 0 {
            let batch = std::mem::take(&mut self.batch);
            let piece = Piece::new(batch.events, batch.v1.freeze(), batch.v2.freeze());
            self.hub.inner.fanout.seal(&mut self.line, piece);
        }
    }

    fn resync(&mut self) {
        self.hub.inner.fanout.resync(&self.line);
    }

    /// A comment for every watcher, so that proxies keep idle streams open.
    fn keep_alive(&mut self) {
        let comment = Piece::new(
            0,
            crate::sse_frame::KEEP_ALIVE,
            crate::sse_frame::KEEP_ALIVE,
        );
        self.hub.inner.fanout.seal(&mut self.line, comment);
    }

    /// Hands every watcher its pieces, looking for new events every [`LOOK_EVERY`] seats; a
    /// round of thousands of writes gives the other tasks on its thread their turns.
    async fn round(&mut self) -> Result<(), Closed> {
        let hub = self.hub;
        let seats = hub.inner.fanout.round(&mut self.line);
        let mut sent = 0;
        for (i, seat) in seats.iter().enumerate() {
            if i > 0 && i % LOOK_EVERY == 0 {
                let next = self.events.try_recv();
                self.gather(next)?;
            }
            sent += seat.offer(&self.line);
            tokio::task::consume_budget().await;
        }
        crate::metrics::events_sent(StreamKind::Wall, sent);
        Ok(())
    }
}

impl Hub {
    /// Hands the wall's events to its watchers, going round them at most once per `every`, with
    /// a comment after `keep_alive` of quiet; until `stop`. A pump started `again` after a panic
    /// first sends the watchers to a fresh snapshot: what its predecessor held is lost.
    pub async fn pump_wall(
        &self,
        every: Duration,
        keep_alive: Duration,
        stop: CancellationToken,
        again: bool,
    ) {
        let mut pump = Pump {
            hub: self,
            events: self.wall_events(),
            line: self.inner.fanout.line(),
            batch: Batch::default(),
        };
        if again {
            pump.resync();
        }
        loop {
            let waiting = pump.events.try_recv();
            if pump.gather(waiting).is_err() {
                return;
            }
            if !pump.line.owed() {
                tokio::select! {
                    first = pump.events.recv() => {
                        let first = first.map_err(|e| match e {
                            RecvError::Lagged(_) => TryRecvError::Lagged(0),
                            RecvError::Closed => TryRecvError::Closed,
                        });
                        if pump.gather(first).is_err() {
                            return;
                        }
                    }
                    () = tokio::time::sleep(keep_alive) => pump.keep_alive(),
                    () = stop.cancelled() => return,
                }
                if !pump.line.owed() {
                    continue;
                }
            }
            let started = tokio::time::Instant::now();
            if pump.round().await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(started + every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use app::types::{JobView, WallEvent};
    use bytes::Bytes;
    use tokio_util::sync::CancellationToken;

    use super::{
        super::fanout::{Version, Work},
        Hub,
    };

    /// What the pump queued for a watcher without its socket, once there is something.
    async fn next(seat: &super::super::fanout::Joined) -> (Vec<Bytes>, usize, bool) {
        seat.woken().await;
        match seat.take() {
            Work::Write {
                frames,
                events,
                snapshot,
            } => (frames, events, snapshot),
            other => panic!("something to write: {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_go_at_once_after_a_quiet_spell_and_then_in_one_batch_per_interval() {
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let pump = tokio::spawn({
            let (hub, stop) = (hub.clone(), stop.clone());
            async move {
                hub.pump_wall(
                    Duration::from_millis(20),
                    Duration::from_millis(300),
                    stop,
                    false,
                )
                .await
            }
        });
        let watcher = hub.join_wall(Version::V1);
        tokio::task::yield_now().await;
        hub.track(JobView::fresh(1, 10, "m"));
        let (first, events, _) = next(&watcher).await;
        assert_eq!((first.len(), events), (1, 1), "{first:?}");
        for id in 2..=4 {
            hub.track(JobView::fresh(id, id * 10, "m"));
        }
        let (batch, events, _) = next(&watcher).await;
        assert_eq!(
            (batch.len(), events),
            (1, 3),
            "the three jobs that came within the interval, in one batch"
        );
        let text = std::str::from_utf8(&batch[0]).unwrap();
        let ids: Vec<i64> = text
            .split_terminator("\n\n")
            .map(
                |frame| match crate::sse_frame::decode(format!("{frame}\n\n").as_bytes()) {
                    WallEvent::Job(view) => view.id,
                    other => panic!("a job: {other:?}"),
                },
            )
            .collect();
        assert_eq!(ids, [2, 3, 4], "in order");
        // Quiet for longer than the keep-alive: a comment.
        let (quiet, events, _) = next(&watcher).await;
        assert_eq!((quiet, events), (vec![crate::sse_frame::KEEP_ALIVE], 0));
        stop.cancel();
        pump.await.unwrap();
    }

    #[tokio::test]
    async fn a_pump_started_again_after_a_panic_first_sends_the_watchers_to_a_snapshot() {
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let watcher = hub.join_wall(Version::V1);
        let pump = tokio::spawn({
            let (hub, stop) = (hub.clone(), stop.clone());
            let ms = Duration::from_millis;
            async move { hub.pump_wall(ms(20), ms(300), stop, true).await }
        });
        let (frames, _, snapshot) = next(&watcher).await;
        assert!(frames.is_empty() && snapshot, "{frames:?}");
        stop.cancel();
        pump.await.unwrap();
    }
}
