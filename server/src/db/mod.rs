//! The data layer: the only module that speaks SQL. SQLite (a file in WAL mode) today; the
//! interface is narrow so that a PostgreSQL backend can stand behind it later.
mod file;
mod jobs;
mod posts;
mod settings;
mod transitions;

use std::{path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};

pub use file::{database_file, private_file, DbLock};
pub use jobs::JobRow;
pub use posts::{NewAiPostRow, PostRow, PostWithJob};
pub use transitions::{JobCompletion, ProgressWrite, Recovered, Written};

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

/// How long a write waits for another connection's write to commit before it fails: WAL
/// allows one writer at a time, and our writes are short.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    /// Held while any handle lives, so no other process uses the file meanwhile.
    _lock: Arc<DbLock>,
}

impl Db {
    /// Takes the database's lock, then opens and migrates it (see [`Db::open`]).
    pub async fn connect(url: &str, max_connections: u32) -> DbResult<Self> {
        let lock = DbLock::take(url)?;
        Self::open(url, max_connections, lock).await
    }

    /// Opens (creating the file, private to its owner, if needed) and migrates the database at
    /// `url`, whose lock the caller has taken.
    pub async fn open(url: &str, max_connections: u32, lock: DbLock) -> DbResult<Self> {
        if let Some(file) = database_file(url)? {
            file::create_private(&file)?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbError::Unavailable(format!("bad database URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only a power loss can roll back
            // the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(|e| DbError::Unavailable(format!("cannot open {url}: {e}")))?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Self {
            pool,
            _lock: Arc::new(lock),
        })
    }

    /// Answers when the database can run a query (for `/readyz`).
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
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
    /// A fresh database in a temporary file (kept alive by the returned guard).
    pub async fn temp_db() -> (super::Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = super::Db::connect(&url, 4)
            .await
            .expect("open test database");
        (db, dir)
    }

    /// A new AI post's queued job; returns its id.
    pub async fn queued_job(db: &super::Db, prompt: &str) -> i64 {
        let new = super::NewAiPostRow {
            author_id: "a1",
            author_name: "Ann",
            prompt,
            model: "m",
            max_tokens: None,
            client_key: None,
        };
        db.insert_ai_post(new).await.unwrap().job.unwrap().id
    }
}
