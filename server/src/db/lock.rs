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
use tokio::{sync::Mutex, time::timeout};

use super::{engine::shown, file::FileLock, DbError, DbResult, Engine};

/// The advisory lock's key: "aiwall" in ASCII, so that a person reading `pg_locks` can tell it.
const ADVISORY_KEY: i64 = 0x6169_7761_6c6c;

/// How often the PostgreSQL session holding the lock is asked whether it is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one check may take before the session counts as ended.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The hold on the database, kept for as long as the server runs.
#[derive(Debug)]
pub struct DbLock {
    _file: Option<FileLock>,
    /// The PostgreSQL session that holds the advisory lock (closing it releases the lock), and
    /// the URL to take it again with.
    session: Option<(Mutex<Session>, String)>,
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
    /// replaced and the lock taken again; one that only this side lost (its backend still
    /// holding the lock) is ended first. Each check waits [`CHECK_TIMEOUT`] at most, so a
    /// connection that hangs counts as ended. While the database cannot be reached the server
    /// goes on (it cannot write meanwhile, and every write is fenced by its run) and asks again
    /// every second. Never resolves for a SQLite file's lock, which only ends with the process.
    pub async fn lost(&self) -> String {
        let Some((session, url)) = &self.session else {
            return std::future::pending().await;
        };
        let mut unreachable = false;
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let mut held = session.lock().await;
            let ping = sqlx::query("SELECT 1").execute(&mut held.connection);
            if matches!(timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_))) {
                if std::mem::take(&mut unreachable) {
                    tracing::info!("the database answers again; this server still holds its lock");
                }
                continue;
            }
            match timeout(CHECK_TIMEOUT, advisory_lock(url)).await {
                Ok(Ok(again)) => {
                    tracing::warn!(
                        "the database session holding this server's lock ended; took the lock again"
                    );
                    *held = again;
                    unreachable = false;
                }
                Ok(Err(DbError::InUseShared { pid: Some(pid), .. })) if pid == held.pid => {
                    // This server's own old session, alive on the database's side only.
                    tracing::warn!(
                        pid,
                        "ending this server's own stale database session to take its lock again"
                    );
                    let _ = timeout(CHECK_TIMEOUT, terminate(url, pid)).await;
                }
                Ok(Err(lost @ DbError::InUseShared { .. })) => {
                    self.held.store(false, Ordering::Relaxed);
                    return lost.to_string();
                }
                Ok(Err(e)) => {
                    if !std::mem::replace(&mut unreachable, true) {
                        tracing::warn!(reason = %e, "cannot reach the database to check this server's lock; asking every second");
                    }
                }
                Err(_) => {
                    if !std::mem::replace(&mut unreachable, true) {
                        tracing::warn!("the database does not answer the check of this server's lock; asking every second");
                    }
                }
            }
        }
    }
}

/// A session that holds the advisory lock, and its backend's process id.
#[derive(Debug)]
struct Session {
    connection: PgConnection,
    pid: i32,
}

/// Ends the database session `pid` (this server's own, stale).
async fn terminate(url: &str, pid: i32) -> sqlx::Result<()> {
    let mut admin = PgConnection::connect(url).await?;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await?;
    Ok(())
}

async fn advisory_lock(url: &str) -> DbResult<Session> {
    let mut session = PgConnection::connect(url)
        .await
        .map_err(|e| DbError::Unavailable(format!("cannot open {}: {e}", shown(url))))?;
    let (taken, pid): (bool, i32) =
        sqlx::query_as("SELECT pg_try_advisory_lock($1), pg_backend_pid()")
            .bind(ADVISORY_KEY)
            .fetch_one(&mut session)
            .await?;
    if taken {
        return Ok(Session {
            connection: session,
            pid,
        });
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
        holder: match &holder {
            Some((pid, Some(addr))) => format!("its connection {pid}, from {addr}"),
            Some((pid, None)) => format!("its connection {pid}"),
            None => "a connection that has just closed".into(),
        },
        pid: holder.map(|(pid, _)| pid),
    })
}
