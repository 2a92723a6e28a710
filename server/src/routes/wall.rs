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
//! instances after missing their notes. Each event is framed once by the hub, and the hub's pump
//! writes those bytes straight to every watcher's socket ([`Handoff`], [`crate::hub::fanout`]):
//! a watcher that keeps up holds no buffer and wakes no task of its own.
use std::{io, time::Duration};

use app::types::{SnapshotEvent, WallEvent};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderValue},
    response::Response,
};
use futures::FutureExt;

use super::{posts::load_page, sse::RECONNECT_AFTER};
use crate::{
    client_addr::ClientAddr,
    edge::handoff::{Handoff, Socket},
    error::{HttpError, HttpResult},
    hub::fanout::{Joined, Version, Work},
    limits::StreamSlot,
    sse_frame,
    state::AppState,
};

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
    let seat = state.hub.join_wall(version);
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
        // The stream's own future, boxed as it is: no layer around it holds its arguments twice.
        Box::pin(stream(seat, state, slot, socket, first).map(|ended| {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "a wall stream ended");
            }
        }))
    }))
}

/// The wall's first page and every tracked job, framed; shared by the watchers that come while
/// the wall does not change (a crowd arriving at a quiet wall costs one snapshot).
async fn snapshot(state: &AppState) -> HttpResult<Bytes> {
    // Read after joining: anything newer than the snapshot is queued at the seat, and a change
    // seen twice is harmless (sequence numbers and offsets).
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

/// One wall watcher's stream, from its first bytes until it leaves or the server stops; its
/// place (`_slot`) is held meanwhile.
async fn stream(
    seat: Joined,
    state: AppState,
    _slot: StreamSlot,
    socket: Socket,
    first: Bytes,
) -> io::Result<()> {
    seat.attach(socket);
    let stall = Duration::from_secs(state.config.server.idle_timeout_secs);
    // Made once: a wake costs no registration with the token.
    let stopping = state.shutdown.cancelled();
    tokio::pin!(stopping);
    let mut frames = vec![sse_frame::hello(RECONNECT_AFTER), first];
    let mut events = 1;
    let mut snapshot = false;
    loop {
        // Boxed: a waiting watcher's future holds no room for a write.
        tokio::select! {
            () = &mut stopping => return Ok(()),
            written = Box::pin(seat.write(frames, stall)) => written?,
        }
        seat.sent(events);
        if snapshot {
            // Boxed: a waiting watcher's future holds no room for a database read.
            match Box::pin(self::snapshot(&state)).await {
                Ok(frame) => (frames, events, snapshot) = (vec![frame], 1, false),
                Err(e) => {
                    tracing::warn!(error = ?e, "a wall watcher's snapshot failed; closing its stream");
                    return Ok(());
                }
            }
            continue;
        }
        // Whatever queued while this task wrote; then the pump writes again.
        loop {
            match seat.take() {
                Work::Write {
                    frames: more,
                    events: n,
                    snapshot: then,
                } => {
                    (frames, events, snapshot) = (more, n, then);
                    break;
                }
                Work::Closed => return Ok(()),
                Work::Idle => {}
            }
            tokio::select! {
                () = &mut stopping => return Ok(()),
                there = seat.client_still_there() => if !there {
                    return Ok(());
                },
                () = seat.woken() => {}
            }
        }
    }
}
