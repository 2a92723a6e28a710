//! The public edge: accepting TCP connections and serving HTTP/1.1 on them, with a cap on open
//! connections, header and idle timeouts, and a shutdown that does not wait for idle clients.
//!
//! axum's own `serve` has none of these; this is its accept loop (hyper-util's `TokioIo` and
//! `TokioTimer`, hyper's HTTP/1.1 connection) with them added. HTTP/2 and TLS are a reverse
//! proxy's job (see the README).
mod connection;
mod file_limit;
pub mod handoff;
mod table;

use std::{future::Future, io, time::Duration};

use tokio::time::Instant;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use connection::Timeouts;
pub use file_limit::{connection_cap, raise_file_limit, FileLimit};
use table::{Connections, Place};

/// Over-the-cap connections answered at once (a 503, or a health check), beyond the cap.
const SPARE_PLACES: usize = 32;
/// Even when the grace period is spent, responses still open get this long to send their last
/// bytes (a live stream its end, so that the browser reconnects at once instead of erring).
const LAST_WORDS: Duration = Duration::from_secs(1);
/// An accept error (out of file descriptors, say) is logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// How the edge serves.
#[derive(Clone, Copy, Debug)]
pub struct EdgeOptions {
    pub max_connections: usize,
    pub timeouts: Timeouts,
}

/// Serves `app` on `listener` until `stop` resolves, and `at_capacity` (health checks and a
/// 503) on connections over the cap. Then it stops accepting, closes the connections with no
/// request in progress at once, lets the others finish their response until the deadline
/// `stop` gave, and closes what is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    at_capacity: Router,
    options: EdgeOptions,
    stop: impl Future<Output = Instant>,
) -> io::Result<()> {
    let connections = Connections::new(options.max_connections, SPARE_PLACES);
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();
    let forced = CancellationToken::new();
    tokio::pin!(stop);
    let mut last_error_logged: Option<tokio::time::Instant> = None;
    let deadline = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if last_error_logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        last_error_logged = Some(tokio::time::Instant::now());
                    }
                    // Out of file descriptors: give closing connections a moment to free some.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            deadline = &mut stop => break deadline,
        };
        let (app, keep_alive, ticket) = match connections.admit() {
            Place::Regular(ticket) => (app.clone(), true, ticket),
            Place::Spare(ticket) => (at_capacity.clone(), false, ticket),
            Place::Refused => {
                tracing::debug!(%peer, "refused a connection: over the cap and no spare place");
                continue;
            }
        };
        tasks.spawn(connection::serve(
            stream,
            peer,
            app,
            ticket,
            options.timeouts,
            keep_alive,
            connection::Closing {
                gently: closing.clone(),
                now: forced.clone(),
            },
        ));
    };
    drop(listener);
    closing.cancel();
    tasks.close();
    let deadline = deadline.max(Instant::now() + LAST_WORDS);
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.open(),
            "closing connections whose response did not finish within the grace period"
        );
        forced.cancel();
        tasks.wait().await;
    }
    Ok(())
}
