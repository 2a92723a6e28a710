//! The open connections: at most `cap` of them; at the cap, room is made by closing the oldest
//! one with no request in progress, and when every one is busy a few spare places answer 503.
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Set in [`Activity::state`] once the connection was closed to make room.
const EVICTED: u32 = 1 << 31;

/// What is known of one connection's traffic, shared by its task, its socket and its requests.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// When a byte last moved, in milliseconds since `opened`.
    last_moved_ms: AtomicU64,
    /// Requests in progress (until their response's last byte has been flushed to the socket;
    /// 0 or 1 on HTTP/1.1), plus [`EVICTED`]. One word, so that a request cannot begin on a
    /// connection in the instant it is chosen to make room.
    state: AtomicU32,
    /// Of those, responses that are live streams (SSE).
    streaming: AtomicU32,
    /// Responses whose body has ended but whose last bytes may still wait in hyper's buffer.
    unflushed: AtomicU32,
    /// Cancelled when the connection is closed to make room for a new one.
    evicted: CancellationToken,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_moved_ms: AtomicU64::new(0),
            state: AtomicU32::new(0),
            streaming: AtomicU32::new(0),
            unflushed: AtomicU32::new(0),
            evicted: CancellationToken::new(),
        }
    }

    /// A byte was read or written.
    pub fn moved(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_moved_ms.store(ms, Ordering::Relaxed);
    }

    /// Everything written so far has reached the socket: the responses that had ended are done.
    pub fn flushed(&self) {
        let done = self.unflushed.swap(0, Ordering::AcqRel);
        if done > 0 {
            self.state.fetch_sub(done, Ordering::AcqRel);
        }
    }

    /// How long since a byte last moved.
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_moved_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// No request in progress: a connection still sending its first request's headers, or a
    /// kept-alive one between requests. Closing it loses nothing.
    pub fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == 0
    }

    /// A request is in progress and its response is not a live stream.
    pub fn is_busy_not_streaming(&self) -> bool {
        let in_flight = self.state.load(Ordering::Acquire) & !EVICTED;
        in_flight > self.streaming.load(Ordering::Acquire)
    }

    /// Marks a waiting connection as closed to make room; false if a request is in progress.
    fn evict(&self) -> bool {
        let evicted = self
            .state
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if evicted {
            self.evicted.cancel();
        }
        evicted
    }

    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }

    /// A request has begun; it ends when the returned guard (kept with the response's body)
    /// is dropped and the response's last bytes are flushed.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        // A new request means the previous response was sent.
        self.flushed();
        self.state.fetch_add(1, Ordering::AcqRel);
        self.moved();
        InFlight {
            activity: Arc::clone(self),
            streaming: false,
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// One request in progress, until its response's body has ended.
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<Activity>,
    streaming: bool,
}

impl InFlight {
    /// The response is a live stream: exempt from the idle timeout.
    pub fn mark_stream(&mut self) {
        if !self.streaming {
            self.streaming = true;
            self.activity.streaming.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.streaming {
            self.activity.streaming.fetch_sub(1, Ordering::AcqRel);
        }
        // Still in progress until hyper has flushed what it holds of the response.
        self.activity.unflushed.fetch_add(1, Ordering::AcqRel);
        self.activity.moved();
    }
}

/// Where a new connection goes.
pub enum Place {
    /// Served as usual.
    Regular(Ticket),
    /// Over the cap: answered 503 (health checks still answered) and closed.
    Spare(Ticket),
    /// Not even a spare place: closed at once.
    Refused,
}

/// A connection's place in the table, given back when it is dropped.
pub struct Ticket {
    pub activity: Arc<Activity>,
    id: Option<u64>,
    table: Arc<Connections>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        match self.id {
            // Already gone if it was evicted.
            Some(id) => {
                inner.open.remove(&id);
            }
            None => inner.spare_in_use -= 1,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By age: the oldest first.
    open: BTreeMap<u64, Arc<Activity>>,
    spare_in_use: usize,
}

#[derive(Debug)]
pub struct Connections {
    cap: usize,
    spare: usize,
    inner: Mutex<Inner>,
}

impl Connections {
    pub fn new(cap: usize, spare: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            spare,
            inner: Mutex::default(),
        })
    }

    /// Connections open now (spare ones not counted).
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection just accepted.
    pub fn admit(self: &Arc<Self>) -> Place {
        let mut inner = self.lock();
        if inner.open.len() >= self.cap {
            // The oldest waiting connection is the likeliest to be a half-open one left behind
            // (or an attacker's); a browser's kept-alive one simply reconnects.
            let oldest_waiting = inner
                .open
                .iter()
                .find(|(_, activity)| activity.evict())
                .map(|(id, _)| *id);
            if let Some(id) = oldest_waiting {
                inner.open.remove(&id);
            }
        }
        let activity = Arc::new(Activity::new());
        if inner.open.len() < self.cap {
            let id = inner.next_id;
            inner.next_id += 1;
            inner.open.insert(id, Arc::clone(&activity));
            return Place::Regular(Ticket {
                activity,
                id: Some(id),
                table: Arc::clone(self),
            });
        }
        if inner.spare_in_use < self.spare {
            inner.spare_in_use += 1;
            return Place::Spare(Ticket {
                activity,
                id: None,
                table: Arc::clone(self),
            });
        }
        Place::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(place: Place) -> Ticket {
        match place {
            Place::Regular(ticket) => ticket,
            _ => panic!("expected a regular place"),
        }
    }

    #[test]
    fn at_the_cap_the_oldest_waiting_connection_makes_room() {
        let table = Connections::new(3, 1);
        let oldest = regular(table.admit());
        let busy = regular(table.admit());
        let _request = busy.activity.begin();
        let newer = regular(table.admit());

        let newest = regular(table.admit());
        assert!(oldest.activity.evicted().is_cancelled());
        assert!(
            !busy.activity.evicted().is_cancelled(),
            "busy is never evicted"
        );
        assert!(!newer.activity.evicted().is_cancelled());
        assert_eq!(table.open(), 3);
        drop(oldest);
        assert_eq!(table.open(), 3, "an evicted ticket frees nothing twice");
        drop(newest);
        assert_eq!(table.open(), 2);
    }

    #[test]
    fn when_every_connection_is_busy_spare_places_then_refusal() {
        let table = Connections::new(2, 1);
        let a = regular(table.admit());
        let b = regular(table.admit());
        let _ra = a.activity.begin();
        let _rb = b.activity.begin();
        let spare = table.admit();
        assert!(matches!(spare, Place::Spare(_)));
        assert!(matches!(table.admit(), Place::Refused));
        drop(spare);
        assert!(matches!(table.admit(), Place::Spare(_)));
    }

    #[test]
    fn a_stream_is_busy_but_exempt_from_the_idle_timeout() {
        let activity = Arc::new(Activity::new());
        assert!(activity.is_waiting());
        let mut request = activity.begin();
        assert!(activity.is_busy_not_streaming());
        request.mark_stream();
        assert!(!activity.is_waiting());
        assert!(!activity.is_busy_not_streaming());
        drop(request);
        assert!(!activity.is_waiting(), "not until the response is flushed");
        activity.flushed();
        assert!(activity.is_waiting());
    }

    #[test]
    fn a_connection_whose_request_began_is_never_evicted() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        assert!(!activity.evict());
        assert!(!activity.evicted().is_cancelled());
        let waiting = Activity::new();
        assert!(waiting.evict());
        assert!(waiting.evicted().is_cancelled());
        assert!(
            !waiting.is_waiting(),
            "an evicted connection takes no new request"
        );
    }
}
