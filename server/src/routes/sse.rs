//! The response shape every SSE stream shares: a `retry:` hint first (so a client whose stream
//! the server closes, at shutdown say, reconnects after [`RECONNECT_AFTER`]), keep-alive
//! comments, and no proxy buffering.
use std::{convert::Infallible, time::Duration};

use axum::{
    http::{header, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::{stream, Stream, StreamExt};

use crate::metrics::{OpenStream, StreamKind};

/// How soon a client should reconnect after the server closed the stream.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(1000);

/// The stream of `events`, counted in `/metrics` as a stream of `kind` while it is open.
pub fn sse_response<S>(kind: StreamKind, events: S) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let open = OpenStream::new(kind);
    let events = events.map(move |event| {
        open.sent();
        event
    });
    let hint =
        stream::once(async { Ok(Event::default().retry(RECONNECT_AFTER).comment("connected")) });
    let mut response = Sse::new(hint.chain(events))
        .keep_alive(KeepAlive::default())
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
