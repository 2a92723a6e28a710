//! The wall's watchers, each at a seat, and the handing of the pump's events to all of them.
//!
//! The pump seals the wall's events into pieces, each framed once for both versions of the
//! stream, onto a [`Line`], and goes round the seats, handing each watcher every piece sealed
//! since its last turn in one write straight to its socket: a watcher that keeps up takes them
//! whole from the kernel's buffer, and no task of its own wakes (at thousands of watchers a wake
//! and a write each cost twice one write). The pump seals what came while it goes round, so a
//! token waits for the pump to come round to its watcher once, not for a round to end and the
//! next to reach it. Only what a socket does not take at once is queued at its seat, for the
//! watcher's task to write when the socket can take it; meanwhile its later pieces queue behind.
//! A watcher more than [`BACKLOG`] turns behind drops them and is sent a fresh snapshot instead.
use std::{
    io,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
    time::Duration,
};

use bytes::Bytes;
use slab::Slab;
use tokio::sync::Notify;

use crate::{
    edge::handoff::Socket,
    metrics::{OpenStream, StreamKind},
};

/// Turns of the pump a wall watcher may be behind before it gets a snapshot instead of what
/// queued: about 4 s at the most the pump goes round (once per `progress.wall_batch_ms`, 16).
pub const BACKLOG: usize = 256;

/// Which wall stream a watcher reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `/api/v1/wall/events`: every event whole.
    V1,
    /// `/api/v2/wall/events`: a change of only the text and numbers in short.
    V2,
}

/// Events sealed together by the pump: framed once for each version of the stream.
#[derive(Debug)]
pub struct Piece {
    events: usize,
    v1: Bytes,
    v2: Bytes,
}

impl Piece {
    /// `events` events, framed as `v1` for `/api/v1/wall/events` and `v2` for the other.
    pub fn new(events: usize, v1: Bytes, v2: Bytes) -> Self {
        Self { events, v1, v2 }
    }

    fn frame(&self, version: Version) -> &Bytes {
        match version {
            Version::V1 => &self.v1,
            Version::V2 => &self.v2,
        }
    }
}

/// The pieces some watcher may not have been handed yet, in order, numbered from `first`.
pub struct Line {
    first: u64,
    pieces: Vec<Piece>,
    /// The number of the next piece when the round before began: every watcher has been handed
    /// all before it since.
    kept_from: u64,
}

impl Line {
    /// The number of the next piece.
    fn head(&self) -> u64 {
        self.first + self.pieces.len() as u64
    }

    /// Whether a piece was sealed after the round before began: the watchers it had passed lack
    /// it.
    pub fn owed(&self) -> bool {
        self.head() > self.kept_from
    }

    /// The pieces from number `next` on.
    fn since(&self, next: u64) -> &[Piece] {
        debug_assert!(
            next >= self.first,
            "a piece was forgotten before all had it"
        );
        let skip = usize::try_from(next.saturating_sub(self.first)).unwrap_or(usize::MAX);
        self.pieces.get(skip..).unwrap_or_default()
    }
}

/// Every wall watcher's seat.
#[derive(Default)]
pub struct Fanout {
    seats: Mutex<Slab<Arc<Seat>>>,
    /// How many seats, read without the lock (on every wall event).
    taken: AtomicUsize,
    /// The number of the next piece the pump seals: where a watcher who joins now starts.
    head: AtomicU64,
}

impl Fanout {
    /// A seat for a new watcher of `version`, kept until the [`Joined`] is dropped. The pieces
    /// sealed from now on queue there until its socket is given ([`Seat::attach`]): the watcher
    /// joins before it takes its snapshot, so nothing falls between.
    pub fn join(self: &Arc<Self>, version: Version) -> Joined {
        let mut seats = self.seats();
        // Read under the lock that a round's start takes: a round that does not see this seat
        // keeps every piece from here on for it.
        let next = self.head.load(Ordering::Acquire);
        let seat = Arc::new(Seat {
            version,
            socket: OnceLock::new(),
            queue: Mutex::new(Queue {
                busy: true,
                next,
                ..Queue::default()
            }),
            wake: Notify::new(),
            open: OpenStream::new(StreamKind::Wall),
        });
        let key = seats.insert(Arc::clone(&seat));
        drop(seats);
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

    /// The pump's line, numbered on from where a pump before it (one that panicked) stopped.
    pub fn line(&self) -> Line {
        let head = self.head.load(Ordering::Acquire);
        Line {
            first: head,
            pieces: Vec::new(),
            kept_from: head,
        }
    }

    /// Puts `piece` at the end of the `line`.
    pub fn seal(&self, line: &mut Line, piece: Piece) {
        line.pieces.push(piece);
        self.head.store(line.head(), Ordering::Release);
    }

    /// The seats for a round of the pump, which hands each its pieces ([`Seat::offer`]); the
    /// `line` forgets what every watcher has had. Copied out: a watcher joins or leaves without
    /// waiting for a round of writes.
    pub fn round(&self, line: &mut Line) -> Vec<Arc<Seat>> {
        let seats = self.seats();
        let had = usize::try_from(line.kept_from - line.first).unwrap_or(usize::MAX);
        line.pieces.drain(..had.min(line.pieces.len()));
        line.first = line.kept_from;
        line.kept_from = line.head();
        seats.iter().map(|(_, seat)| Arc::clone(seat)).collect()
    }

    /// The wall changed in a way no piece tells: every watcher drops what it has queued, and
    /// takes a fresh snapshot instead of the pieces sealed so far.
    pub fn resync(&self, line: &Line) {
        for (_, seat) in self.seats().iter() {
            seat.resync(line.head());
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
    /// The number of the first piece the watcher has not been handed.
    next: u64,
    /// Turns of the pump since the watcher's task last took what queued.
    behind: usize,
    /// The watcher's task writes (or has no socket yet): the pump queues, and leaves the socket
    /// alone.
    busy: bool,
    /// What the socket has not taken of a piece it took part of; it goes first, whole, or the
    /// stream would break inside an event.
    rest: Option<Bytes>,
    /// Pieces behind it.
    frames: Vec<Bytes>,
    /// How many events the pieces (and the rest) hold.
    events: usize,
    /// The pieces were dropped: a fresh snapshot goes after the rest.
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

    /// Waits until there may be work: queued pieces, or a failed write.
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
        queue.behind = 0;
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
    /// wall's pieces for as long as it stays), and its stream ends.
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

    /// The watcher's turn: every piece of `line` sealed since its last, written now if the
    /// socket takes them whole, else queued. Returns how many events went straight out.
    pub fn offer(&self, line: &Line) -> usize {
        let mut queue = self.queue();
        let next = std::mem::replace(&mut queue.next, line.head());
        let pieces = line.since(next);
        if pieces.is_empty() || queue.closed || queue.snapshot {
            // Nothing new; or gone, or a snapshot will hold it.
            return 0;
        }
        let events = pieces.iter().map(|piece| piece.events).sum();
        let frames = pieces.iter().map(|piece| piece.frame(self.version));
        if queue.busy {
            queue.frames.extend(frames.cloned());
            queue.events += events;
            queue.behind += 1;
            if queue.behind > BACKLOG {
                tracing::debug!("a wall watcher fell behind; sending a snapshot");
                queue.frames = Vec::new();
                queue.events = 0;
                queue.snapshot = true;
            }
            drop(queue);
            self.wake.notify_one();
            return 0;
        }
        let Some(socket) = self.socket.get() else {
            unreachable!("a seat with no socket is busy");
        };
        let slices: Vec<io::IoSlice<'_>> = frames.clone().map(|f| io::IoSlice::new(f)).collect();
        let total: usize = slices.iter().map(|slice| slice.len()).sum();
        let written = match socket.try_write_vectored(&slices) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                queue.closed = true;
                drop(queue);
                self.wake.notify_one();
                return 0;
            }
        };
        drop(slices);
        if written == total {
            return events;
        }
        let mut unwritten: Vec<Bytes> = frames.cloned().collect();
        let whole = advance(&mut unwritten, written);
        let mut unwritten = unwritten.split_off(whole).into_iter();
        queue.rest = unwritten.next();
        queue.frames = unwritten.collect();
        queue.events = events;
        queue.busy = true;
        drop(queue);
        self.wake.notify_one();
        0
    }

    /// The wall changed in a way no piece tells: what is queued goes, and a snapshot comes
    /// after the rest of the piece being written, if any; the pieces before `head` are in it.
    fn resync(&self, head: u64) {
        let mut queue = self.queue();
        queue.next = head;
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
        // A panic while holding this lock leaves at worst a piece unsent.
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

    use super::{advance, Fanout, Line, Piece, Version, Work, BACKLOG};

    const SNAPSHOT: Work = Work::Write {
        frames: Vec::new(),
        events: 0,
        snapshot: true,
    };

    fn piece(text: &'static str) -> Piece {
        Piece::new(
            1,
            Bytes::from_static(text.as_bytes()),
            Bytes::from(text.to_uppercase()),
        )
    }

    /// `text` sealed, then a round of the pump.
    fn send(fanout: &Fanout, line: &mut Line, text: &'static str) {
        fanout.seal(line, piece(text));
        for seat in fanout.round(line) {
            seat.offer(line);
        }
    }

    fn write(text: &[&'static str]) -> Work {
        Work::Write {
            frames: text
                .iter()
                .map(|t| Bytes::from_static(t.as_bytes()))
                .collect(),
            events: text.len(),
            snapshot: false,
        }
    }

    #[test]
    fn a_watcher_without_its_socket_yet_gets_its_version_of_every_piece_queued() {
        let fanout = Arc::new(Fanout::default());
        let mut line = fanout.line();
        let (v1, v2) = (fanout.join(Version::V1), fanout.join(Version::V2));
        assert_eq!(fanout.watchers(), 2);
        send(&fanout, &mut line, "a");
        send(&fanout, &mut line, "b");
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

    #[test]
    fn a_turn_hands_a_watcher_every_piece_since_its_last_once() {
        let fanout = Arc::new(Fanout::default());
        let mut line = fanout.line();
        let (early, late) = (fanout.join(Version::V1), fanout.join(Version::V1));
        fanout.seal(&mut line, piece("a"));
        let round = fanout.round(&mut line);
        round[0].offer(&line);
        // Sealed while the pump goes round: the watchers after it take it in this round.
        fanout.seal(&mut line, piece("b"));
        let newcomer = fanout.join(Version::V1);
        round[1].offer(&line);
        fanout.seal(&mut line, piece("c"));
        for seat in fanout.round(&mut line) {
            seat.offer(&line);
        }
        assert_eq!(early.take(), write(&["a", "b", "c"]));
        assert_eq!(late.take(), write(&["a", "b", "c"]));
        assert_eq!(
            newcomer.take(),
            write(&["c"]),
            "what was sealed after it joined"
        );
        for seat in fanout.round(&mut line) {
            seat.offer(&line);
        }
        assert_eq!(early.take(), Work::Idle, "each piece once");
        assert!(
            line.pieces.is_empty(),
            "what every watcher had is forgotten: {:?}",
            line.pieces
        );
    }

    #[test]
    fn a_watcher_too_far_behind_drops_its_pieces_for_a_snapshot() {
        let fanout = Arc::new(Fanout::default());
        let mut line = fanout.line();
        let seat = fanout.join(Version::V1);
        for _ in 0..=BACKLOG {
            send(&fanout, &mut line, "a");
        }
        send(&fanout, &mut line, "b");
        assert_eq!(seat.take(), SNAPSHOT, "what came after is in the snapshot");
        fanout.resync(&line);
        assert_eq!(seat.take(), SNAPSHOT, "the wall was caught up");
        send(&fanout, &mut line, "c");
        assert_eq!(
            seat.take(),
            write(&["c"]),
            "after a resync, only what came after"
        );
    }

    #[test]
    fn a_pump_started_again_numbers_its_pieces_on_from_where_the_last_stopped() {
        let fanout = Arc::new(Fanout::default());
        let seat = fanout.join(Version::V1);
        let mut line = fanout.line();
        send(&fanout, &mut line, "a");
        send(&fanout, &mut line, "b");
        assert_eq!(seat.take(), write(&["a", "b"]));
        let mut again = fanout.line();
        fanout.resync(&again);
        assert_eq!(seat.take(), SNAPSHOT, "what the last pump held is lost");
        let newcomer = fanout.join(Version::V1);
        send(&fanout, &mut again, "c");
        assert_eq!(seat.take(), write(&["c"]));
        assert_eq!(newcomer.take(), write(&["c"]));
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
