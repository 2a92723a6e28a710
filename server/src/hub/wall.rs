//! What the wall's watchers are sent: every event framed once for both versions of the stream,
//! and the pump that hands the watchers those events in batches, at most one batch per interval,
//! so that a watcher's socket is written once for all the jobs that moved meanwhile, not once
//! per job and event. A batch goes at once when the wall has been quiet for the interval; a
//! comment goes when it has been quiet for longer (one timer for the whole wall, not one per
//! watcher). The interval runs from one batch's start to the next: when handing a batch to
//! every watcher takes longer, the next goes as soon as that one is done.
use std::time::Duration;

use app::types::WallEvent;
use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use super::Hub;

/// What the wall's broadcasts carry.
#[derive(Debug)]
pub enum WireEvent {
    /// Events, framed (`event:` and `data:` lines) once for each version of the stream, however
    /// many watchers send them: one event as it happens, several in a batch.
    Frames {
        /// How many events.
        events: usize,
        /// For `/api/v1/wall/events`: every event whole.
        v1: Bytes,
        /// For `/api/v2/wall/events`: a progress event that changed only the text and numbers
        /// in short ([`app::types::ProgressDelta`]); the others as in `v1`.
        v2: Bytes,
    },
    /// The hub caught up with the other instances after missing their notes, or the pump fell
    /// behind: each watcher takes a fresh snapshot.
    Resynced,
    /// Nothing happened for a while: a comment, so that proxies keep idle streams open.
    KeepAlive,
}

impl WireEvent {
    /// `event` framed for both versions, `short` (if any) standing for it on v2.
    pub fn new(event: &WallEvent, short: Option<&WallEvent>) -> Result<Self, serde_json::Error> {
        let v1 = crate::sse_frame::event(event)?;
        let v2 = match short {
            Some(short) => crate::sse_frame::event(short)?,
            None => v1.clone(),
        };
        Ok(Self::Frames { events: 1, v1, v2 })
    }
}

/// Events gathered for one batch.
#[derive(Default)]
struct Batch {
    events: usize,
    v1: BytesMut,
    v2: BytesMut,
}

impl Batch {
    fn add(&mut self, events: usize, v1: &Bytes, v2: &Bytes) {
        self.events += events;
        self.v1.extend_from_slice(v1);
        self.v2.extend_from_slice(v2);
    }

    /// Sends what was gathered, if anything.
    async fn send(&mut self, hub: &Hub) {
        if self.events > 0 {
            let batch = std::mem::take(self);
            hub.send_batch(&WireEvent::Frames {
                events: batch.events,
                v1: batch.v1.freeze(),
                v2: batch.v2.freeze(),
            })
            .await;
        }
    }
}

impl Hub {
    /// Hands the wall's events to its watchers in batches, at most one per `every`, with a
    /// comment after `keep_alive` of quiet; until `stop`. A pump started `again` after a panic
    /// first sends the watchers to a fresh snapshot: what its predecessor held is lost.
    pub async fn pump_wall(
        &self,
        every: Duration,
        keep_alive: Duration,
        stop: CancellationToken,
        again: bool,
    ) {
        let mut events = self.wall_events();
        if again {
            self.send_batch(&WireEvent::Resynced).await;
        }
        loop {
            let first = tokio::select! {
                first = events.recv() => first,
                () = tokio::time::sleep(keep_alive) => {
                    self.send_batch(&WireEvent::KeepAlive).await;
                    continue;
                }
                () = stop.cancelled() => return,
            };
            let started = tokio::time::Instant::now();
            let mut batch = Batch::default();
            let mut next = first.map_err(|e| match e {
                RecvError::Lagged(_) => TryRecvError::Lagged(0),
                RecvError::Closed => TryRecvError::Closed,
            });
            loop {
                match next {
                    Ok(wire) => match &*wire {
                        WireEvent::Frames { events, v1, v2 } => batch.add(*events, v1, v2),
                        WireEvent::Resynced => {
                            batch.send(self).await;
                            self.send_batch(&WireEvent::Resynced).await;
                        }
                        WireEvent::KeepAlive => {}
                    },
                    // The pump fell behind: the watchers start again from a snapshot.
                    Err(TryRecvError::Lagged(_)) => {
                        batch = Batch::default();
                        self.send_batch(&WireEvent::Resynced).await;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
                next = events.try_recv();
            }
            batch.send(self).await;
            tokio::select! {
                () = tokio::time::sleep_until(started + every) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn send_batch(&self, wire: &WireEvent) {
        self.inner.fanout.send(wire).await;
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
