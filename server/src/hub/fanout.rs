//! The wall's watchers, each at a seat, and the handing of the pump's batches to all of them.
//!
//! The pump writes a batch straight to each watcher's socket: a watcher that keeps up takes it
//! whole from the kernel's buffer, and no task of its own wakes (at thousands of watchers a wake
//! and a write each cost twice one write). Only what a socket does not take at once is queued at
//! its seat, for the watcher's task to write when the socket can take it; meanwhile its later
//! batches queue behind. A watcher more than [`BACKLOG`] batches behind drops them and is sent a
//! fresh snapshot instead.
use std::{
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
    time::Duration,
};

use bytes::Bytes;
use slab::Slab;
use tokio::sync::Notify;

use super::WireEvent;
use crate::{
    edge::handoff::Socket,
    metrics::{OpenStream, StreamKind},
    sse_frame,
};

/// Batches a wall watcher may be behind before it gets a snapshot instead of them: about 4 s at
/// the most the pump sends (one batch per `progress.wall_batch_ms`, 16).
pub const BACKLOG: usize = 256;

/// Which wall stream a watcher reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `/api/v1/wall/events`: every event whole.
    V1,
    /// `/api/v2/wall/events`: a change of only the text and numbers in short.
    V2,
}

/// Every wall watcher's seat.
#[derive(Default)]
pub struct Fanout {
    seats: Mutex<Slab<Arc<Seat>>>,
    /// How many seats, read without the lock (on every wall event).
    taken: AtomicUsize,
}

impl Fanout {
    /// A seat for a new watcher of `version`, kept until the [`Joined`] is dropped. Its batches
    /// queue until its socket is given ([`Seat::attach`]): the watcher joins before it takes its
    /// snapshot, so nothing falls between.
    pub fn join(self: &Arc<Self>, version: Version) -> Joined {
        let seat = Arc::new(Seat {
            version,
            socket: OnceLock::new(),
            queue: Mutex::new(Queue {
                busy: true,
                ..Queue::default()
            }),
            wake: Notify::new(),
            open: OpenStream::new(StreamKind::Wall),
        });
        let key = self.seats().insert(Arc::clone(&seat));
        self.taken.fetch_add(1, Ordering::AcqRel);
        Joined {
            seat,
            key,
            fanout: Arc::clone(self),
        }
    }

    /// How many watchers.
    pub fn watchers(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    /// Hands `wire` to every watcher. A round of thousands of writes gives the other tasks on
    /// its thread their turns.
    pub async fn send(&self, wire: &WireEvent) {
        // Copied out: a watcher joins or leaves without waiting for a round of writes.
        let seats: Vec<Arc<Seat>> = self
            .seats()
            .iter()
            .map(|(_, seat)| Arc::clone(seat))
            .collect();
        for seat in &seats {
            match wire {
                WireEvent::Frames { events, v1, v2 } => {
                    let frame = match seat.version {
                        Version::V1 => v1,
                        Version::V2 => v2,
                    };
                    seat.offer(frame, *events);
                }
                WireEvent::KeepAlive => seat.offer(&sse_frame::KEEP_ALIVE, 0),
                WireEvent::Resynced => seat.resync(),
            }
            tokio::task::consume_budget().await;
        }
    }

    fn seats(&self) -> MutexGuard<'_, Slab<Arc<Seat>>> {
        // A panic while holding this lock cannot leave the slab half-updated.
        self.seats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A watcher's place at the wall, given back when dropped.
pub struct Joined {
    seat: Arc<Seat>,
    key: usize,
    fanout: Arc<Fanout>,
}

impl std::ops::Deref for Joined {
    type Target = Seat;

    fn deref(&self) -> &Seat {
        &self.seat
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.fanout.seats().remove(self.key);
        self.fanout.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One watcher: its socket, and what waits for it.
pub struct Seat {
    version: Version,
    socket: OnceLock<Socket>,
    queue: Mutex<Queue>,
    /// Told when the watcher's task has something to write (or its socket failed).
    wake: Notify,
    open: OpenStream,
}

/// What waits at a seat.
#[derive(Default)]
struct Queue {
    /// The watcher's task writes (or has no socket yet): the pump queues, and leaves the socket
    /// alone.
    busy: bool,
    /// What the socket has not taken of a batch it took part of; it goes first, whole, or the
    /// stream would break inside an event.
    rest: Option<Bytes>,
    /// Batches behind it.
    frames: Vec<Bytes>,
    /// How many events the batches (and the rest) hold.
    events: usize,
    /// The batches were dropped: a fresh snapshot goes after the rest.
    snapshot: bool,
    /// A write failed: the client has gone.
    closed: bool,
}

/// What the watcher's task is to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// Write `frames`, holding `events` events; then, if `snapshot`, a fresh snapshot.
    Write {
        frames: Vec<Bytes>,
        events: usize,
        snapshot: bool,
    },
    /// Nothing: the pump writes straight to the socket again.
    Idle,
    /// The client has gone.
    Closed,
}

impl Seat {
    /// Gives the seat its socket, once the response's head is written; the pump leaves it alone
    /// until [`Seat::take`] finds nothing more.
    pub fn attach(&self, socket: Socket) {
        if self.socket.set(socket).is_err() {
            unreachable!("a seat's socket is given once");
        }
    }

    /// Events went out on this stream.
    pub fn sent(&self, events: usize) {
        self.open.sent_many(events);
    }

    /// Waits until there may be work: queued batches, or a failed write.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Waits until the client sends something or leaves: `false` when it has left (a socket
    /// without a client sends nothing, and its reads fail or end).
    pub async fn client_still_there(&self) -> bool {
        let Some(socket) = self.socket.get() else {
            return true;
        };
        if socket.readable().await.is_err() {
            return false;
        }
        // The client sends nothing more; what it does send is ignored.
        let mut ignored = [0u8; 16];
        match socket.try_read(&mut ignored) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }

    /// The watcher's next work. With nothing queued the seat goes back to the pump.
    pub fn take(&self) -> Work {
        let mut queue = self.queue();
        if queue.closed {
            return Work::Closed;
        }
        let snapshot = std::mem::take(&mut queue.snapshot);
        let mut frames = std::mem::take(&mut queue.frames);
        if let Some(rest) = queue.rest.take() {
            frames.insert(0, rest);
        }
        let events = std::mem::take(&mut queue.events);
        if frames.is_empty() && !snapshot {
            queue.busy = false;
            return Work::Idle;
        }
        Work::Write {
            frames,
            events,
            snapshot,
        }
    }

    /// Writes `frames` whole, waiting for the socket as long as it takes them; a socket that
    /// takes none of them for `stall` has a client that stopped reading (it would hold the
    /// wall's batches for as long as it stays), and its stream ends.
    pub async fn write(&self, mut frames: Vec<Bytes>, stall: Duration) -> io::Result<()> {
        let Some(socket) = self.socket.get() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut first = 0;
        while first < frames.len() {
            let slices: Vec<io::IoSlice<'_>> = frames[first..]
                .iter()
                .map(|f| io::IoSlice::new(f))
                .collect();
            let written = match socket.try_write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(slices);
                    tokio::time::timeout(stall, socket.writable())
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
                        })??;
                    continue;
                }
                Err(e) => return Err(e),
            };
            drop(slices);
            first += advance(&mut frames[first..], written);
        }
        Ok(())
    }

    /// A batch for this watcher: written now if the socket takes it whole, else queued.
    fn offer(&self, frame: &Bytes, events: usize) {
        let mut queue = self.queue();
        if queue.closed || queue.snapshot {
            // Gone, or a snapshot will hold it.
            return;
        }
        if queue.busy {
            queue.frames.push(frame.clone());
            queue.events += events;
            if queue.frames.len() > BACKLOG {
                tracing::debug!("a wall watcher fell behind; sending a snapshot");
                queue.frames = Vec::new();
                queue.events = 0;
                queue.snapshot = true;
            }
            drop(queue);
            self.wake.notify_one();
            return;
        }
        let Some(socket) = self.socket.get() else {
            unreachable!("a seat with no socket is busy");
        };
        let written = match socket.try_write_vectored(&[io::IoSlice::new(frame)]) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                queue.closed = true;
                drop(queue);
                self.wake.notify_one();
                return;
            }
        };
        if written == frame.len() {
            drop(queue);
            self.sent(events);
            return;
        }
        queue.rest = Some(frame.slice(written..));
        queue.events = events;
        queue.busy = true;
        drop(queue);
        self.wake.notify_one();
    }

    /// The wall changed in a way no batch tells: what is queued goes, and a snapshot comes
    /// after the rest of the batch being written, if any.
    fn resync(&self) {
        let mut queue = self.queue();
        if queue.closed {
            return;
        }
        queue.frames = Vec::new();
        queue.events = 0;
        queue.snapshot = true;
        queue.busy = true;
        drop(queue);
        self.wake.notify_one();
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves at worst a batch unsent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the `written` bytes from the front of `frames`: how many frames went whole (the next,
/// if any, keeps what was not written of it).
fn advance(frames: &mut [Bytes], mut written: usize) -> usize {
    let mut whole = 0;
    for frame in frames {
        if written >= frame.len() {
            written -= frame.len();
            whole += 1;
        } else {
            let _ = frame.split_to(written);
            break;
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::{advance, Fanout, Version, WireEvent, Work, BACKLOG};

    fn frames(text: &'static str) -> WireEvent {
        WireEvent::Frames {
            events: 1,
            v1: Bytes::from_static(text.as_bytes()),
            v2: Bytes::from(text.to_uppercase()),
        }
    }

    #[tokio::test]
    async fn a_watcher_without_its_socket_yet_gets_its_version_of_every_batch_queued() {
        let fanout = Arc::new(Fanout::default());
        let (v1, v2) = (fanout.join(Version::V1), fanout.join(Version::V2));
        assert_eq!(fanout.watchers(), 2);
        fanout.send(&frames("a")).await;
        fanout.send(&frames("b")).await;
        let write = |text: &[&'static str]| Work::Write {
            frames: text
                .iter()
                .map(|t| Bytes::from_static(t.as_bytes()))
                .collect(),
            events: text.len(),
            snapshot: false,
        };
        assert_eq!(v1.take(), write(&["a", "b"]));
        assert_eq!(v2.take(), write(&["A", "B"]));
        assert_eq!(v1.take(), Work::Idle, "nothing more");
        drop(v2);
        assert_eq!(
            fanout.watchers(),
            1,
            "a watcher that leaves gives its seat back"
        );
    }

    #[tokio::test]
    async fn a_watcher_too_far_behind_drops_its_batches_for_a_snapshot() {
        let fanout = Arc::new(Fanout::default());
        let seat = fanout.join(Version::V1);
        for _ in 0..=BACKLOG {
            fanout.send(&frames("a")).await;
        }
        fanout.send(&frames("b")).await;
        let expected = Work::Write {
            frames: Vec::new(),
            events: 0,
            snapshot: true,
        };
        assert_eq!(seat.take(), expected, "what came after is in the snapshot");
        fanout.send(&WireEvent::Resynced).await;
        assert_eq!(seat.take(), expected, "the wall was caught up");
    }

    #[test]
    fn what_a_socket_took_part_of_goes_on_from_where_it_stopped() {
        let mut batch = [
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"f"),
        ];
        assert_eq!(advance(&mut batch, 4), 1);
        assert_eq!(batch[1], "e");
        assert_eq!(advance(&mut batch[1..], 2), 2);
    }
}
