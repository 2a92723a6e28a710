//! What keeps two servers from taking each other's jobs: on SQLite, one server per file (the
//! file's OS lock); on PostgreSQL, where several instances share the database and each running
//! job carries a lease instead, a session of this instance's own holding two advisory locks:
//! the wall's key *shared*, which an earlier release (one server per database, holding that key
//! exclusively, writing no leases) can neither take while instances run nor hold while one
//! starts; and this instance's id exclusively, so that two instances never run under one id
//! (each would take the other's jobs back at its start). Both go away with the process (or its
//! connection), so a stale lock never blocks a start.
use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;

use super::{engine::shown, file::FileLock, DbError, DbResult, Engine};

/// The earlier releases' advisory lock key: "aiwall" in ASCII, so that a person reading
/// `pg_locks` can tell it.
const ADVISORY_KEY: i64 = 0x6169_7761_6c6c;
/// The first half of an instance id's lock (its second half is the id's hash).
const INSTANCE_KEY: i32 = 0x6169_7769;

/// The hold on the database, kept for as long as the server runs.
#[derive(Debug)]
pub struct DbLock {
    _file: Option<FileLock>,
    /// The PostgreSQL session holding the advisory locks, and the URL it was opened with.
    session: Option<(Mutex<PgConnection>, String)>,
}

impl DbLock {
    /// Takes the lock of the SQLite file `url` names, or on PostgreSQL the wall's key shared;
    /// says who holds it otherwise.
    pub async fn take(url: &str) -> DbResult<Self> {
        Ok(match Engine::of(url)? {
            Engine::Sqlite => Self {
                _file: Some(FileLock::take(url)?),
                session: None,
            },
            Engine::Postgres => {
                let mut session = PgConnection::connect(url).await.map_err(|e| {
                    DbError::Unavailable(format!("cannot open {}: {e}", shown(url)))
                })?;
                let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut session)
                    .await?;
                if !taken {
                    return Err(DbError::EarlierRelease {
                        database: shown(url),
                    });
                }
                Self {
                    _file: None,
                    session: Some((Mutex::new(session), url.to_string())),
                }
            }
        })
    }

    /// On PostgreSQL, holds `instance` (this instance's id) for as long as the server runs,
    /// or says that another instance runs under it.
    pub async fn hold_instance(&self, instance: &str) -> DbResult<()> {
        let Some((session, url)) = &self.session else {
            return Ok(());
        };
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(INSTANCE_KEY)
            .bind(instance)
            .fetch_one(&mut *session.lock().await)
            .await?;
        if taken {
            Ok(())
        } else {
            Err(DbError::InstanceInUse {
                database: shown(url),
                instance: instance.to_string(),
            })
        }
    }
}
