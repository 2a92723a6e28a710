//! Throwaway PostgreSQL databases for tests and benchmarks: a fresh database on the server at
//! `TEST_POSTGRES_URL` (by default the local `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when its handle goes. No server is a failure, never a skipped test: `scripts/test`
//! starts one when none answers.
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The server the PostgreSQL tests use when `TEST_POSTGRES_URL` is not set.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for as long as this handle does.
#[derive(Debug)]
pub struct ScratchDb {
    /// The URL of the new database, for `database.url`.
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDb {
    /// Creates an empty database on the test server.
    ///
    /// # Panics
    /// When no PostgreSQL answers at `TEST_POSTGRES_URL`: the PostgreSQL tests never skip.
    #[allow(clippy::expect_used)]
    pub async fn create() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let admin_url = std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_POSTGRES_URL.into());
        let name = format!(
            "aiwall_test_{}_{}_{:08x}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server at TEST_POSTGRES_URL ({}): {e}; \
                 scripts/test starts one when none answers",
                super::engine::shown(&admin_url)
            )
        });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a scratch database");
        let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin_url,
            name,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await, and may run inside a runtime: the drop gets a thread and a
        // runtime of its own. FORCE ends connections a test left open.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}
