//! Which database engine a `database.url` selects, its connection pool, and its migrations: one
//! folder per engine under `migrations/`, embedded in the binary and applied at start.
use std::{future::Future, str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
};

use super::{file, DbError, DbResult};

/// How long a SQLite write waits for another connection's write to commit before it fails: WAL
/// allows one writer at a time, and our writes are short.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a free PostgreSQL connection, or for a new one to open.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The database engines the wall runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A file (WAL mode), one server at a time: the embedded default.
    Sqlite,
    /// A PostgreSQL server, shared by several instances.
    Postgres,
}

impl Engine {
    /// The engine a `database.url` names by its scheme.
    pub fn of(url: &str) -> DbResult<Self> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Engine::Sqlite),
            Some("postgres" | "postgresql") => Ok(Engine::Postgres),
            _ => Err(DbError::Unavailable(format!(
                "database.url {:?} names no database this server runs on: write \
                 sqlite://FILE or postgres://USER@HOST/DATABASE",
                shown(url)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// `url` fit for a message or a log: a password is left out, whether it is in the user part or
/// a `password=` parameter. The user part is cut at the last `@` by hand, not by a URL parser,
/// so that a password with a bare `/`, `?` or `#` in it (which a parser would read as the start
/// of the path) is left out too.
pub fn shown(url: &str) -> String {
    // A file name is not a secret (and `Engine::of` calls this: no call back to it).
    if url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("sqlite:"))
    {
        return url.to_string();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a database URL that does not parse)".into();
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{user}@{}", &rest[at + 1..])
        }
        None => rest.to_string(),
    };
    let cleaned = format!("{scheme}://{rest}");
    match url::Url::parse(&cleaned) {
        Ok(mut parsed) => {
            if parsed
                .query_pairs()
                .any(|(k, _)| k.eq_ignore_ascii_case("password"))
            {
                let kept: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            parsed.to_string()
        }
        // No parameters shown from a URL that does not parse.
        Err(_) => cleaned.split('?').next().unwrap_or_default().to_string(),
    }
}

/// The connections of one engine. Each query is written against the engine's own driver
/// (through `on_pool!`), never through a driver that erases types.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// Connects to the database at `url` (creating a SQLite file, private to its owner, if
    /// needed) and applies the engine's migrations.
    pub async fn open(url: &str, max_connections: u32) -> DbResult<Self> {
        let max_connections = max_connections.max(1);
        let cannot =
            |e: sqlx::Error| DbError::Unavailable(format!("cannot open {}: {e}", shown(url)));
        let bad_url = |e: sqlx::Error| {
            DbError::Unavailable(format!("bad database URL {:?}: {e}", shown(url)))
        };
        match Engine::of(url)? {
            Engine::Sqlite => {
                if let Some(path) = file::database_file(url)? {
                    file::create_private(&path)?;
                }
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL + NORMAL is durable across process crashes; only a power loss can
                    // roll back the last commits.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await
                    .map_err(cannot)?;
                sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
                Ok(Pool::Sqlite(pool))
            }
            Engine::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .application_name("aiwall");
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(cannot)?;
                sqlx::migrate!("../migrations/postgres").run(&pool).await?;
                Ok(Pool::Postgres(pool))
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A transaction that will write: on SQLite it takes the write lock at `BEGIN` (IMMEDIATE), so
/// a transaction that reads and then writes waits for the lock instead of failing at once with
/// SQLITE_BUSY; PostgreSQL locks the rows it writes.
pub trait Begin {
    type Engine: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Self::Engine>>> + Send;
}

impl Begin for SqlitePool {
    type Engine = Sqlite;

    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Sqlite>>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl Begin for PgPool {
    type Engine = Postgres;

    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Postgres>>> + Send {
        self.begin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_selects_the_engine() {
        assert_eq!(Engine::of("sqlite://aiwall.db").unwrap(), Engine::Sqlite);
        assert_eq!(Engine::of("sqlite::memory:").unwrap(), Engine::Sqlite);
        assert_eq!(Engine::of("postgres://u@h/db").unwrap(), Engine::Postgres);
        assert_eq!(Engine::of("PostgreSQL://u@h/db").unwrap(), Engine::Postgres);
        let refused = Engine::of("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("sqlite://FILE"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn a_password_never_shows() {
        assert_eq!(
            shown("postgres://wall:s3cret@db.internal:5432/wall"),
            "postgres://wall@db.internal:5432/wall"
        );
        assert_eq!(shown("sqlite://aiwall.db"), "sqlite://aiwall.db");
        let query = shown("postgres://wall@db/wall?sslmode=verify-full&password=s3cret");
        assert_eq!(query, "postgres://wall@db/wall?sslmode=verify-full");
        // A bare '/' or '#' in the password, which a URL parser reads as the path or fragment.
        for secret in ["12/cd", "a/b#c", "x?y"] {
            let url = format!("postgres://wall:{secret}@db:5432/wall");
            assert_eq!(shown(&url), "postgres://wall@db:5432/wall", "{url}");
        }
    }
}
