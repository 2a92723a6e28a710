//! One server per SQLite file: the file's OS lock, held for as long as the server runs.
//!
//! Two servers on one file would each take the other's running jobs for a crash's leftovers
//! and run every queued job twice. The lock goes away with the process however it ends, so a
//! stale lock never blocks a start. On PostgreSQL several instances share the database: each
//! running job carries a lease instead (see `transitions`), so there is nothing to lock.
use super::{file::FileLock, DbResult, Engine};

/// The hold on the database, kept for as long as the server runs.
#[derive(Debug)]
pub struct DbLock {
    _file: Option<FileLock>,
}

impl DbLock {
    /// Takes the lock of the SQLite file `url` names, or says who holds it.
    pub async fn take(url: &str) -> DbResult<Self> {
        Ok(Self {
            _file: match Engine::of(url)? {
                Engine::Sqlite => Some(FileLock::take(url)?),
                Engine::Postgres => None,
            },
        })
    }
}
