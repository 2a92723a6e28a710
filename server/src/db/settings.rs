//! Small server-wide values kept in the database. Secrets are not among them: releases before
//! issue 10 stored the cookie-signing key here, and start-up moves it out.
use super::{Db, DbResult, Pool};

impl Db {
    /// The value stored under `key`, if any.
    pub async fn setting(&self, key: &str) -> DbResult<Option<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Deletes the value stored under `key` so that it cannot be read back: on SQLite its bytes
    /// are overwritten (`secure_delete`), and the write-ahead log that held the change is
    /// checkpointed into the database and emptied. (PostgreSQL never held such a value: it
    /// came after the cookie key left the database.)
    pub async fn erase_setting(&self, key: &str) -> DbResult<()> {
        let pool = match &self.pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM settings WHERE key = $1")
                    .bind(key)
                    .execute(pool)
                    .await?;
                return Ok(());
            }
        };
        let mut conn = pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
        let deleted = sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&mut *conn)
            .await;
        sqlx::query("PRAGMA secure_delete = OFF")
            .execute(&mut *conn)
            .await?;
        deleted?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
