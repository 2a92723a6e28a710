//! One server per database, until the queue lives in the database: the SQLite file's OS lock,
//! or on PostgreSQL a session advisory lock held on a connection of its own.
//!
//! Two servers on one database would each take the other's running jobs for a crash's leftovers
//! and run every queued job twice. Both locks go away with the process (or its connection)
//! however it ends, so a stale lock never blocks a start.
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;

use super::{engine::shown, file::FileLock, DbError, DbResult, Engine};

/// The advisory lock's key: "aiwall" in ASCII, so that a person reading `pg_locks` can tell it.
const ADVISORY_KEY: i64 = 0x6169_7761_6c6c;

/// How often the PostgreSQL session holding the lock is asked whether it is still there: the
/// longest another server could run beside this one after taking the lock.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The hold on the database, kept for as long as the server runs.
#[derive(Debug)]
pub struct DbLock {
    _file: Option<FileLock>,
    /// The PostgreSQL session that holds the advisory lock (closing it releases the lock), and
    /// the URL to take it again with.
    session: Option<(Mutex<PgConnection>, String)>,
    /// Cleared once the lock is lost for good.
    held: AtomicBool,
}

impl DbLock {
    /// Takes the lock of the database `url` names, or says who holds it.
    pub async fn take(url: &str) -> DbResult<Self> {
        Ok(match Engine::of(url)? {
            Engine::Sqlite => Self {
                _file: Some(FileLock::take(url)?),
                session: None,
                held: AtomicBool::new(true),
            },
            Engine::Postgres => Self {
                _file: None,
                session: Some((Mutex::new(advisory_lock(url).await?), url.to_string())),
                held: AtomicBool::new(true),
            },
        })
    }

    /// Whether this server still holds the database (false once [`DbLock::lost`] resolved).
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Resolves, with the reason, once the lock is lost for good: the PostgreSQL session that
    /// held it ended (a restart or failover of the database, a terminated connection) and
    /// another server holds the lock now. A session that ended while nobody took the lock is
    /// replaced and the lock taken again. Never resolves for a SQLite file's lock, which only
    /// ends with the process.
    pub async fn lost(&self) -> String {
        let Some((session, url)) = &self.session else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let mut held = session.lock().await;
            if sqlx::query("SELECT 1").execute(&mut *held).await.is_ok() {
                continue;
            }
            match advisory_lock(url).await {
                Ok(again) => {
                    tracing::warn!("the database session holding this server's lock ended; took the lock again");
                    *held = again;
                }
                Err(DbError::Unavailable(reason)) => {
                    // The database is away: nobody else can take the lock meanwhile.
                    tracing::warn!(%reason, "the database session holding this server's lock ended; trying again");
                }
                Err(e) => {
                    self.held.store(false, Ordering::Relaxed);
                    return e.to_string();
                }
            }
        }
    }
}

async fn advisory_lock(url: &str) -> DbResult<PgConnection> {
    let mut session = PgConnection::connect(url)
        .await
        .map_err(|e| DbError::Unavailable(format!("cannot open {}: {e}", shown(url))))?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(ADVISORY_KEY)
        .fetch_one(&mut session)
        .await?;
    if taken {
        return Ok(session);
    }
    // A bigint key is kept as two 32-bit halves in pg_locks.
    let holder: Option<(i32, Option<String>)> = sqlx::query_as(
        "SELECT l.pid, host(a.client_addr) FROM pg_locks l
           LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid::bigint = $1 AND l.objid::bigint = $2",
    )
    .bind(ADVISORY_KEY >> 32)
    .bind(ADVISORY_KEY & 0xffff_ffff)
    .fetch_optional(&mut session)
    .await?;
    Err(DbError::InUseShared {
        database: shown(url),
        holder: match holder {
            Some((pid, Some(addr))) => format!("its connection {pid}, from {addr}"),
            Some((pid, None)) => format!("its connection {pid}"),
            None => "a connection that has just closed".into(),
        },
    })
}
