//! Whether a new generation (a new AI post, or a Retry) may enter the queue: the server is not
//! shutting down, the queue has room, and the author and their address are within their
//! limits. Decided here once; the HTTP edge maps a refusal to its status.
use tokio::sync::MutexGuard;

use super::Jobs;
use crate::{
    client_addr::ClientKey,
    db::{now_ms, DbError, Engine},
    limits::{Recent, Refusal, Waiting, RATE_WINDOW_MS},
};

/// Held from the decision until the new job is stored and queued, so that parallel requests
/// cannot all pass the same count.
pub struct Admission<'a> {
    _serialised: MutexGuard<'a, ()>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl Jobs {
    /// Admits one more generation of `author_id`'s, asked from `address`, or says which limit
    /// refuses it.
    pub async fn admit(
        &self,
        author_id: &str,
        address: ClientKey,
    ) -> Result<Admission<'_>, AdmissionError> {
        if self.is_shutting_down() {
            return Err(Refusal::ShuttingDown.into());
        }
        let serialised = self.limits.admission().await;
        // Counted in the database, where every instance's jobs are.
        let now = now_ms();
        let counts = self
            .db
            .admission_counts(author_id, &address.to_string(), now - RATE_WINDOW_MS)
            .await?;
        let waiting = Waiting {
            author: counts.author_waiting,
            address: counts.address_waiting,
        };
        let backlog = usize::try_from(counts.backlog).unwrap_or(usize::MAX);
        self.limits
            .admit_ai_post(author_id, address, waiting, backlog)?;
        if self.db.engine() == Engine::Postgres {
            // Each instance's own rate limiter sees only the posts made through it.
            self.limits.admit_recent(&Recent {
                author: counts.author_recent,
                address: counts.address_recent,
                author_first: counts.author_first,
                address_first: counts.address_first,
                now,
            })?;
        }
        Ok(Admission {
            _serialised: serialised,
        })
    }
}
