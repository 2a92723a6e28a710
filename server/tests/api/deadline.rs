//! Waiting, with a deadline, for what can only be polled: a row in the database, a line in a
//! log, a port that starts answering. Whatever has an event (a job's SSE stream, the fake
//! Ollama's ledger, a process exit) is awaited instead.
use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it gives a value, and returns it; panics, saying what did not happen,
/// when `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(POLL).await;
    }
}
