//! The data layer: the only module that speaks SQL. SQLite (a file in WAL mode) by default, or
//! PostgreSQL when `database.url` says `postgres://`; the interface is the same narrow one on
//! both, and each query runs on the engine's own typed driver (see `engine`).

/// Runs `$body` with `$pool` bound to the database's own pool (`SqlitePool` or `PgPool`): the
/// body is compiled once per engine, so every bind and every row is checked against that
/// engine's types. Where the two dialects differ, the body matches on `Pool` itself.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

mod copy;
mod engine;
mod file;
mod jobs;
mod lock;
mod posts;
pub mod scratch;
mod settings;
mod transitions;

use std::{path::PathBuf, sync::Arc};

pub use copy::{migrate_to, Copied};
pub use engine::{shown, Engine};
pub(crate) use engine::{Begin, Pool};
pub use file::{database_file, private_file};
pub use jobs::{AdmissionCounts, JobRow, PastRun};
pub use lock::DbLock;
pub use posts::{NewAiPostRow, PostRow, PostWithJob, ADDRESS_KEY};
pub use transitions::{
    Claimant, Interrupted, JobCompletion, ProgressWrite, Recovered, Written, STOPPED_BY_AUTHOR,
};

/// Errors of the data layer. The HTTP edge turns them into a 500 or 503 with a plain message.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is not available: {0}")]
    Unavailable(String),
    #[error(
        "another aiwall is running on the database {} ({holder} holds the lock file {}); \
         stop it first, or give this server its own database.url",
        database.display(),
        lock.display()
    )]
    InUse {
        database: PathBuf,
        holder: String,
        lock: PathBuf,
    },
    #[error(
        "an earlier release of aiwall (one server per database) is running on {database}; \
         stop it before starting this release's instances on the same database"
    )]
    EarlierRelease { database: String },
    #[error(
        "another aiwall instance on {database} runs as {instance:?}; give each instance its \
         own server.instance_id"
    )]
    InstanceInUse { database: String, instance: String },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} does not fit in a database integer")]
    OutOfRange(u64),
}

impl DbError {
    /// A stored value this release cannot read (or a value it cannot store): retrying will not
    /// help, unlike a busy or unreachable database.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            DbError::OutOfRange(_)
                | DbError::Query(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
        )
    }
}

/// A count or duration as SQL's signed 64-bit integer; a value past it is an error, not a
/// wrapped negative number.
fn to_db_int(value: u64) -> DbResult<i64> {
    i64::try_from(value).map_err(|_| DbError::OutOfRange(value))
}

pub type DbResult<T> = Result<T, DbError>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Held while any handle lives, so no other server uses a SQLite file meanwhile.
    _lock: Arc<DbLock>,
}

impl Db {
    /// Takes the database's lock, then opens and migrates it (see [`Db::open`]).
    pub async fn connect(url: &str, max_connections: u32) -> DbResult<Self> {
        let lock = DbLock::take(url).await?;
        Self::open(url, max_connections, lock).await
    }

    /// Opens and migrates the database at `url`, whose lock the caller has taken.
    pub async fn open(url: &str, max_connections: u32, lock: DbLock) -> DbResult<Self> {
        Ok(Self {
            pool: Pool::open(url, max_connections).await?,
            _lock: Arc::new(lock),
        })
    }

    /// The PostgreSQL pool, when the database is PostgreSQL (for the bus between instances).
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// The engine the database runs on.
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// Answers when the database can run a query (for `/readyz`).
    pub async fn ping(&self) -> DbResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `text` as both engines can store it: PostgreSQL's text cannot hold U+0000, which a model
/// server's answer or error message could carry, or an older release's SQLite file hold, so it
/// becomes U+FFFD. (The answer is made so as it streams, in `jobs::cap`, so that watchers are
/// sent what is stored.)
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::{scratch::ScratchDb, Db};

    /// What keeps a test database alive: its SQLite file's directory or its PostgreSQL database.
    pub type Keep = Box<dyn std::any::Any + Send>;

    /// A fresh SQLite database in a temporary file (kept alive by the returned guard).
    pub async fn temp_db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url, 4).await.expect("open test database");
        (db, dir)
    }

    /// A fresh PostgreSQL database on the test server (see `scratch`).
    pub async fn temp_pg() -> (Db, ScratchDb) {
        let scratch = ScratchDb::create().await;
        let db = Db::connect(&scratch.url, 4)
            .await
            .expect("open test database");
        (db, scratch)
    }

    /// A fresh database on each engine, for a test that must hold on both: run its body for
    /// each, in turn.
    pub async fn each_engine() -> Vec<(Db, Keep)> {
        let (sqlite, dir) = temp_db().await;
        let (postgres, scratch) = temp_pg().await;
        vec![
            (sqlite, Box::new(dir) as Keep),
            (postgres, Box::new(scratch) as Keep),
        ]
    }

    /// The pool of a test database that is SQLite, for a test of SQLite's own behaviour.
    pub fn sqlite(db: &Db) -> &sqlx::SqlitePool {
        match &db.pool {
            super::Pool::Sqlite(pool) => pool,
            super::Pool::Postgres(_) => panic!("a test of SQLite's own behaviour"),
        }
    }

    /// A claim on a model server with room for any number of jobs.
    pub const ANY_SLOT: super::Claimant<'static> = super::Claimant {
        backend: "ollama",
        slots: u32::MAX,
        owner: "test",
        lease_ms: 15_000,
    };

    /// A new AI post's queued job; returns its id.
    pub async fn queued_job(db: &Db, prompt: &str) -> i64 {
        let new = super::NewAiPostRow {
            author_id: "a1",
            author_name: "Ann",
            prompt,
            model: "m",
            max_tokens: None,
            client_key: None,
            queue_key: "a1",
        };
        db.insert_ai_post(new).await.unwrap().job.unwrap().id
    }
}
