//! `/api/v1/wall/events`: one multiplexed SSE stream per wall page with new posts, deletions and
//! the progress of every running job, because a browser opens at most six HTTP/1.1 connections
//! per origin. It starts with a snapshot; a watcher that falls behind gets a fresh snapshot
//! instead of the events it missed, and so does every watcher when the hub has caught up with
//! the other instances after missing their notes.
use std::{convert::Infallible, sync::Arc};

use app::types::{EventName, SnapshotEvent, WallEvent};
use axum::{
    extract::State,
    response::{sse::Event, Response},
};
use futures::{stream, Stream, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{posts::load_page, sse::sse_response};
use crate::metrics::StreamKind;
use crate::{
    client_addr::ClientAddr,
    error::{HttpError, HttpResult},
    hub::WireEvent,
    state::AppState,
};

pub async fn events(State(state): State<AppState>, client: ClientAddr) -> HttpResult<Response> {
    let slot = state.limits.open_stream(client.key())?;
    let rx = state.hub.subscribe_wall();
    let first = snapshot(&state).await?;
    let shutdown = state.shutdown.clone().cancelled_owned();
    let events = stream::once(async move { Ok(first) })
        .chain(follow(state, rx))
        .map(move |event| {
            let _held_while_streaming = &slot;
            event
        });
    Ok(sse_response(StreamKind::Wall, events.take_until(shutdown)))
}

async fn snapshot(state: &AppState) -> HttpResult<Event> {
    // Read after subscribing: anything newer than the snapshot is still in the receiver.
    let page = load_page(state, None, None).await?;
    let jobs = state.hub.snapshot();
    let wire = WireEvent::new(&WallEvent::Snapshot(SnapshotEvent {
        posts: page.posts,
        jobs,
    }))
    .map_err(HttpError::internal)?;
    Ok(to_event(&wire))
}

fn follow(
    state: AppState,
    rx: broadcast::Receiver<Arc<WireEvent>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((state, rx), |(state, mut rx)| async move {
        loop {
            match rx.recv().await {
                // The hub's marker after it caught up with the other instances.
                Ok(wire) if wire.name == EventName::Snapshot => {
                    if let Ok(event) = snapshot(&state).await {
                        return Some((Ok(event), (state, rx)));
                    }
                }
                Ok(wire) => return Some((Ok(to_event(&wire)), (state, rx))),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a wall watcher lagged; sending a snapshot");
                    if let Ok(event) = snapshot(&state).await {
                        return Some((Ok(event), (state, rx)));
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

fn to_event(wire: &WireEvent) -> Event {
    Event::default().event(wire.name.as_str()).data(&wire.data)
}
