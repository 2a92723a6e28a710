//! One client connection: HTTP/1.1 served by hyper on a socket whose traffic is watched, and
//! closed when its headers come too slowly, when a request stalls, when it must make room for a
//! new connection, or at shutdown if it has no request in progress. A response that writes its
//! own body ([`Handoff`]) takes the socket from hyper and keeps it to the end.
use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::header,
    Router,
};
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::oneshot,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{
    handoff::{self, BodyWriter, Handoff},
    table::{Activity, InFlight, Ticket},
};

/// The timeouts every connection is held to.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For a request's headers, from the connection's opening or the previous response's end.
    pub header_read: Duration,
    /// For a request in progress without a byte moving (live streams exempt).
    pub idle: Duration,
}

/// How a connection is told that the server stops.
pub struct Closing {
    /// Finish the request in progress, if any, then close.
    pub gently: CancellationToken,
    /// Close now.
    pub now: CancellationToken,
}

/// The idle check never runs more often than this.
const IDLE_CHECK_MIN: Duration = Duration::from_millis(100);

/// Serves one connection with `app` until the client or the server closes it. With
/// `keep_alive` false it answers one request and closes (the over-the-cap answers).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    ticket: Ticket,
    timeouts: Timeouts,
    keep_alive: bool,
    closing: Closing,
) {
    let http = http(stream, peer, app, &ticket, timeouts, keep_alive, &closing);
    // Boxed: once a live stream has the socket, hyper's connection, its timers and the waits
    // on them go, and the task holds no room for them for as long as the stream lives.
    if let Some((taken, socket)) = Box::pin(http).await {
        tokio::select! {
            () = taken.write(socket) => {}
            () = closing.now.cancelled() => {}
        }
    }
    // `ticket`, a parameter, is dropped after the socket: the place is given back once the
    // socket is closed.
}

/// HTTP/1.1 on the connection, until it closes or a response takes the socket (returned, past
/// the request's head).
async fn http(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    ticket: &Ticket,
    timeouts: Timeouts,
    keep_alive: bool,
    closing: &Closing,
) -> Option<(Taken, Socket)> {
    let activity = Arc::clone(&ticket.activity);
    // Live updates are small writes that must leave at once, not wait for the next one.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Socket {
        stream,
        activity: Arc::clone(&activity),
    });
    let requests = Arc::clone(&activity);
    // A oneshot, not an mpsc: a connection holds it for its whole life, and an mpsc channel
    // allocates a block of 32 slots up front.
    let (hand_off, mut handed_off) = oneshot::channel::<Taken>();
    let hand_off = Arc::new(std::sync::Mutex::new(Some(hand_off)));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut in_flight = requests.begin();
        let app = app.clone();
        let hand_off = Arc::clone(&hand_off);
        let head_only = request.method() == axum::http::Method::HEAD;
        async move {
            let response = match app.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if is_event_stream(&response) {
                in_flight.mark_stream();
            }
            let writer = response
                .extensions()
                .get::<Handoff>()
                .and_then(Handoff::take);
            if let (Some(writer), false) = (writer, head_only) {
                let (parts, _) = response.into_parts();
                let taken = Taken {
                    head: handoff::head(&parts),
                    writer,
                    _in_flight: in_flight,
                };
                let sender = hand_off.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(Ok(())) = sender.map(|sender| sender.send(taken)) {
                    // The connection takes the socket from hyper before this would answer.
                    return std::future::pending().await;
                }
                return Ok(axum::http::Response::from_parts(parts, Tracked::empty()));
            }
            Ok::<_, Infallible>(response.map(|body| Tracked {
                body,
                _in_flight: Some(in_flight),
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .keep_alive(keep_alive);
    // Boxed, so that its buffers and state go when a response takes the socket from it.
    let mut connection = Box::new(http.serve_connection(io, service));

    let mut finishing = false;
    let mut taken = None;
    loop {
        tokio::select! {
            Ok(handed) = &mut handed_off => {
                taken = Some(handed);
                break;
            }
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            () = activity.evicted().cancelled() => {
                tracing::debug!(%peer, "closed a waiting connection to make room for a new one");
                break;
            }
            () = stalled(&activity, timeouts.idle) => {
                tracing::debug!(%peer, "closed a connection whose request stalled");
                break;
            }
            () = closing.now.cancelled() => break,
            () = closing.gently.cancelled(), if !finishing => {
                finishing = true;
                Pin::new(connection.as_mut()).graceful_shutdown();
                // Half-open and kept-alive connections have nothing to finish.
                if activity.is_waiting() {
                    break;
                }
            }
        }
    }
    let taken = taken?;
    // hyper's buffers and the service go; the socket stays, past the request's head.
    let parts = connection.into_parts();
    // Bytes read past the request's head: a pipelined request, which a stream cannot answer;
    // the connection closes.
    if !parts.read_buf.is_empty() {
        tracing::debug!(%peer, "closed a connection that sent a request behind a live stream's");
        // The stream's place is given back before its client sees the socket close.
        drop(taken);
        return None;
    }
    Some((taken, parts.io.into_inner()))
}

/// A response that writes its own body, with the socket taken from hyper.
struct Taken {
    head: Vec<u8>,
    writer: BodyWriter,
    /// Counted as in progress (a live stream) until the body has ended.
    _in_flight: InFlight,
}

impl Taken {
    async fn write(self, mut socket: Socket) {
        if socket.write_all(&self.head).await.is_ok() {
            (self.writer)(socket).await;
        }
    }
}

/// Resolves when a request in progress (not a live stream) has moved no byte for `idle`.
async fn stalled(activity: &Activity, idle: Duration) {
    loop {
        let quiet = activity.quiet_for();
        if quiet >= idle && activity.is_busy_not_streaming() {
            return;
        }
        let wait = if quiet >= idle { idle } else { idle - quiet };
        tokio::time::sleep(wait.max(IDLE_CHECK_MIN)).await;
    }
}

/// The socket, noting when a byte moves.
pub struct Socket {
    stream: TcpStream,
    activity: Arc<Activity>,
}

/// Without `&mut`: the wall's pump writes to a watcher's socket while the watcher's own task
/// waits on it ([`crate::hub::fanout`]).
impl Socket {
    /// Writes what the socket takes now, without waiting.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let written = self.stream.try_write_vectored(bufs)?;
        if written > 0 {
            self.activity.moved();
        }
        Ok(written)
    }

    /// Waits until the socket may take a write.
    pub async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Waits until the client has sent something, or left.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads what the client has sent, without waiting.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.stream.try_read(buf)?;
        if read > 0 {
            self.activity.moved();
        }
        Ok(read)
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.moved();
        }
        polled
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.activity.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in progress until it has ended (and then
/// until hyper has flushed it, see [`Activity::flushed`]).
struct Tracked {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl Tracked {
    /// No body (the connection is closing and cannot take the socket).
    fn empty() -> Self {
        Self {
            body: Body::empty(),
            _in_flight: None,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Is this response a live stream (Server-Sent Events)?
fn is_event_stream(response: &axum::response::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
