//! The bench's view of the wall's database, apart from the server's code: a SQLite file, or a
//! fresh PostgreSQL database made for the run and dropped after it. It counts every write to
//! the jobs table with a trigger, and reads the jobs' statuses, generation times and runners.
use std::{collections::HashMap, path::Path};

use sqlx::{Connection, Executor, PgConnection, PgPool, SqlitePool};

/// Runs `$body` with `$pool` connected to the store's database, on its engine's own driver.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite { url } => {
                let $pool = SqlitePool::connect(url).await?;
                $body
            }
            Store::Postgres { url, .. } => {
                let $pool = PgPool::connect(url).await?;
                $body
            }
        }
    };
}

pub enum Store {
    Sqlite {
        url: String,
    },
    Postgres {
        url: String,
        admin: String,
        name: String,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

impl Store {
    pub fn sqlite(file: &Path) -> Self {
        Store::Sqlite {
            url: format!("sqlite://{}", file.display()),
        }
    }

    /// A fresh database on the PostgreSQL server at `admin`.
    pub async fn postgres(admin: &str) -> Result<Self> {
        let name = format!("wall_bench_{}", std::process::id());
        let mut conn = PgConnection::connect(admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let mut url = url_of(admin)?;
        url.set_path(&name);
        Ok(Store::Postgres {
            url: url.to_string(),
            admin: admin.to_string(),
            name,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            Store::Sqlite { url } | Store::Postgres { url, .. } => url,
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Store::Sqlite { .. } => "SQLite",
            Store::Postgres { .. } => "PostgreSQL",
        }
    }

    /// Counts each update of a job row from now on, in `bench_writes`.
    pub async fn count_writes(&self) -> Result<()> {
        match self {
            Store::Sqlite { url } => {
                let pool = SqlitePool::connect(url).await?;
                pool.execute("CREATE TABLE bench_writes (n INTEGER)")
                    .await?;
                pool.execute("CREATE TRIGGER bench_count AFTER UPDATE ON ai_generation_jobs BEGIN INSERT INTO bench_writes VALUES (1); END").await?;
            }
            Store::Postgres { url, .. } => {
                let pool = PgPool::connect(url).await?;
                pool.execute("CREATE TABLE bench_writes (n INTEGER)")
                    .await?;
                pool.execute("CREATE FUNCTION bench_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO bench_writes VALUES (1); RETURN NULL; END $$").await?;
                pool.execute("CREATE TRIGGER bench_count AFTER UPDATE ON ai_generation_jobs FOR EACH ROW EXECUTE FUNCTION bench_count()").await?;
            }
        }
        Ok(())
    }

    pub async fn writes(&self) -> Result<i64> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM bench_writes"
        )
        .fetch_one(&pool)
        .await?))
    }

    /// The jobs' mean time from claim to end, in seconds.
    pub async fn average_generation_secs(&self) -> Result<f64> {
        // A double on both engines (PostgreSQL's AVG of integers is NUMERIC).
        let sql =
            "SELECT CAST(AVG(elapsed_time) AS DOUBLE PRECISION) / 1000.0 FROM ai_generation_jobs";
        Ok(on_pool!(self, |pool| sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await?))
    }

    pub async fn statuses(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT status, COUNT(*) FROM ai_generation_jobs GROUP BY status";
        Ok(on_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_all(&pool)
            .await?))
    }

    /// The instance that ran each job last.
    pub async fn owners(&self) -> Result<HashMap<i64, String>> {
        let sql = "SELECT id, owner FROM ai_generation_jobs WHERE owner IS NOT NULL";
        let rows: Vec<(i64, String)> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(&pool).await?);
        Ok(rows.into_iter().collect())
    }

    pub async fn drop_database(&self) -> Result<()> {
        if let Store::Postgres { admin, name, .. } = self {
            let mut conn = PgConnection::connect(admin).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
        }
        Ok(())
    }
}

fn url_of(admin: &str) -> Result<reqwest::Url> {
    Ok(reqwest::Url::parse(admin)?)
}
