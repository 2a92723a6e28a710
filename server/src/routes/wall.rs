//! The wall's live stream: one multiplexed SSE stream per wall page with new posts, deletions and
//! the progress of every running job, because a browser opens at most six HTTP/1.1 connections
//! per origin.
//!
//! - `/api/v2/wall/events`, what the page reads: a progress event that moved only the text and
//!   the numbers comes in short ([`app::types::ProgressDelta`]).
//! - `/api/v1/wall/events`, kept for clients of the first release: every event whole.
//!
//! Both start with a snapshot; a watcher that falls behind gets a fresh snapshot instead of the
//! events it missed, and so does every watcher when the hub has caught up with the other
//! instances after missing their notes. Each event is framed once by the hub; the stream writes
//! those bytes itself, straight to the socket ([`Handoff`]), with a watcher holding no buffer of
//! its own while it waits.
use std::{io, sync::Arc, time::Duration};

use app::types::{SnapshotEvent, WallEvent};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderValue},
    response::Response,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::broadcast::{self, error::TryRecvError},
};

use super::{posts::load_page, sse::RECONNECT_AFTER};
use crate::{
    client_addr::ClientAddr,
    edge::handoff::{Handoff, Socket},
    error::{HttpError, HttpResult},
    hub::WireEvent,
    metrics::{OpenStream, StreamKind},
    sse_frame,
    state::AppState,
};

/// Batches written to a watcher at once, at most.
const BATCH: usize = 64;

/// Which wall stream a watcher reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// `/api/v1/wall/events`.
pub async fn events(state: State<AppState>, client: ClientAddr) -> HttpResult<Response> {
    open(state, client, Version::V1).await
}

/// `/api/v2/wall/events`.
pub async fn events_v2(state: State<AppState>, client: ClientAddr) -> HttpResult<Response> {
    open(state, client, Version::V2).await
}

async fn open(
    State(state): State<AppState>,
    client: ClientAddr,
    version: Version,
) -> HttpResult<Response> {
    let slot = state.limits.open_stream(client.key())?;
    let rx = state.hub.subscribe_wall();
    let first = snapshot(&state).await?;
    let mut head = Response::new(Body::empty());
    let headers = head.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(Handoff::response(head, move |socket| {
        Box::pin(async move {
            let _held_while_streaming = slot;
            let watcher = Watcher {
                socket,
                rx,
                state,
                version,
                open: OpenStream::new(StreamKind::Wall),
            };
            if let Err(e) = watcher.run(first).await {
                tracing::debug!(error = %e, "a wall stream ended");
            }
        })
    }))
}

/// The wall's first page and every tracked job, framed; shared by the watchers that come while
/// the wall does not change (a crowd arriving at a quiet wall costs one snapshot).
async fn snapshot(state: &AppState) -> HttpResult<Bytes> {
    // Read after subscribing: anything newer than the snapshot is still in the receiver, and a
    // change seen twice is harmless (sequence numbers and offsets).
    let changes = state.hub.changes();
    if let Some(frame) = state.hub.framed_snapshot(changes) {
        return Ok(frame);
    }
    let page = load_page(state, None, None).await?;
    let jobs = state.hub.snapshot();
    // A running job's elapsed time is brought up to now in it (it moves on between updates, and
    // none come while a model loads): such a snapshot is not kept.
    let timeless = !jobs.iter().any(|job| job.status.is_running());
    let frame = sse_frame::event(&WallEvent::Snapshot(SnapshotEvent {
        posts: page.posts,
        jobs,
    }))
    .map_err(HttpError::internal)?;
    if timeless {
        state.hub.keep_framed_snapshot(changes, frame.clone());
    }
    Ok(frame)
}

/// One wall watcher, from its first bytes until it leaves or the server stops.
struct Watcher {
    socket: Socket,
    rx: broadcast::Receiver<Arc<WireEvent>>,
    state: AppState,
    version: Version,
    open: OpenStream,
}

/// What the broadcast held when the watcher woke.
enum Next {
    /// Frames, and how many events they hold.
    Frames(Vec<Bytes>, usize),
    Snapshot,
    Closed,
}

impl Watcher {
    async fn run(mut self, first: Bytes) -> io::Result<()> {
        let hello = sse_frame::hello(RECONNECT_AFTER);
        self.write(vec![hello, first]).await?;
        self.open.sent();
        let shutdown = self.state.shutdown.clone();
        // Made once: a wake costs no registration with the token.
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        // The client sends nothing more; a read ends when it leaves (or breaks the protocol).
        let mut ignored = [0u8; 16];
        loop {
            let next = tokio::select! {
                () = &mut stopping => return Ok(()),
                read = self.socket.read(&mut ignored) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => continue,
                },
                next = next(&mut self.rx, self.version) => next,
            };
            let (frames, events) = match next {
                Next::Frames(frames, events) => (frames, events),
                // Boxed: a waiting watcher's future holds no room for a database read.
                Next::Snapshot => match Box::pin(snapshot(&self.state)).await {
                    Ok(frame) => (vec![frame], 1),
                    Err(e) => {
                        tracing::warn!(error = ?e, "a wall watcher's snapshot failed; closing its stream");
                        return Ok(());
                    }
                },
                Next::Closed => return Ok(()),
            };
            tokio::select! {
                () = &mut stopping => return Ok(()),
                written = self.write(frames) => written?,
            }
            self.open.sent_many(events);
        }
    }

    /// Writes `frames` with as few system calls as the socket takes. A watcher whose socket takes
    /// none of a write for `server.idle_timeout_secs` has stopped reading: its stream is closed
    /// (it would hold the wall's batches for as long as it stays).
    async fn write(&mut self, mut frames: Vec<Bytes>) -> io::Result<()> {
        let stall = Duration::from_secs(self.state.config.server.idle_timeout_secs);
        let mut first = 0;
        while first < frames.len() {
            let slices: Vec<io::IoSlice<'_>> = frames[first..]
                .iter()
                .map(|f| io::IoSlice::new(f))
                .collect();
            let mut written = tokio::time::timeout(stall, self.socket.write_vectored(&slices))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
                })??;
            drop(slices);
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let Some(frame) = frames.get_mut(first) else {
                    break;
                };
                if written >= frame.len() {
                    written -= frame.len();
                    first += 1;
                } else {
                    let _ = frame.split_to(written);
                    written = 0;
                }
            }
        }
        Ok(())
    }
}

/// Waits for the wall's next batch and takes every one already there (up to [`BATCH`]).
async fn next(rx: &mut broadcast::Receiver<Arc<WireEvent>>, version: Version) -> Next {
    let (mut frames, mut events) = (Vec::new(), 0);
    let mut wire = match rx.recv().await {
        Ok(wire) => wire,
        Err(broadcast::error::RecvError::Lagged(missed)) => {
            tracing::debug!(missed, "a wall watcher lagged; sending a snapshot");
            return Next::Snapshot;
        }
        Err(broadcast::error::RecvError::Closed) => return Next::Closed,
    };
    loop {
        match &*wire {
            WireEvent::Frames { events: n, v1, v2 } => {
                events += n;
                frames.push(match version {
                    Version::V1 => v1.clone(),
                    Version::V2 => v2.clone(),
                });
            }
            WireEvent::KeepAlive => frames.push(sse_frame::KEEP_ALIVE),
            // Everything before it is in the snapshot.
            WireEvent::Resynced => return Next::Snapshot,
        }
        if frames.len() >= BATCH {
            return Next::Frames(frames, events);
        }
        wire = match rx.try_recv() {
            Ok(wire) => wire,
            Err(TryRecvError::Lagged(_)) => return Next::Snapshot,
            Err(TryRecvError::Empty) => return Next::Frames(frames, events),
            Err(TryRecvError::Closed) => return Next::Frames(frames, events),
        };
    }
}
