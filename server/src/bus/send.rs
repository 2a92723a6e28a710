//! The task that notifies the other instances of this one's changes: it takes what piled up
//! in the outbox since its last round trip, merges each job's progress into one note
//! ([`coalesce`]), and sends the lot with one statement on a pooled connection, outside every
//! write transaction.
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::{
    note::{coalesce, Note},
    What, CHANNEL,
};
use crate::{db::now_ms, metrics};

/// The most notes one round trip sends.
const BATCH: usize = 512;
/// After the database refused a batch: wait this long, then send it with what came since.
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// Notes kept for a database that does not answer; past this the oldest go (the listeners
/// resynchronise from the database when their own connection comes back).
const MAX_PENDING: usize = 20_000;

/// Sends what the hub puts in the outbox as `from`, until the outbox closes, or `shutdown`
/// came and what was in it then has gone out.
pub async fn send(
    pool: PgPool,
    from: String,
    mut outbox: UnboundedReceiver<What>,
    shutdown: CancellationToken,
) {
    let mut pending: Vec<What> = Vec::new();
    loop {
        let stopping = shutdown.is_cancelled();
        if pending.is_empty() {
            if stopping {
                // The last words (jobs handed back at shutdown) went out already.
                match outbox.try_recv() {
                    Ok(what) => pending.push(what),
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    next = outbox.recv() => match next {
                        Some(what) => pending.push(what),
                        None => return,
                    },
                    () = shutdown.cancelled() => continue,
                }
            }
        }
        while pending.len() < BATCH {
            match outbox.try_recv() {
                Ok(what) => pending.push(what),
                Err(_) => break,
            }
        }
        pending = coalesce(std::mem::take(&mut pending));
        let take = pending.len().min(BATCH);
        let at = now_ms();
        let payloads: Vec<String> = pending[..take]
            .iter()
            .filter_map(|what| {
                let note = Note {
                    from: from.clone(),
                    at,
                    what: what.clone(),
                };
                note.payload()
                    .inspect_err(|e| tracing::error!(error = %e, "cannot encode a bus note"))
                    .ok()
            })
            .collect();
        // In order: PostgreSQL delivers one transaction's notifications in the order sent.
        let sent = sqlx::query(
            "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, n)
              ORDER BY n",
        )
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(&pool)
        .await;
        match sent {
            Ok(_) => {
                metrics::bus_sent(payloads.len());
                pending.drain(..take);
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = pending.len(), "cannot notify the other instances; trying again");
                if pending.len() > MAX_PENDING {
                    pending.drain(..pending.len() - MAX_PENDING);
                }
                if stopping {
                    return;
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}
