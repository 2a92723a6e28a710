//! Small server-wide values kept in the database. Secrets are not among them: releases before
//! issue 10 stored the cookie-signing key here, and start-up moves it out.
use super::{Db, DbResult};

impl Db {
    /// The value stored under `key`, if any.
    pub async fn setting(&self, key: &str) -> DbResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Deletes the value stored under `key` so that it cannot be read back from the file: its
    /// bytes are overwritten (`secure_delete`), and the write-ahead log that held the change is
    /// checkpointed into the database and emptied.
    pub async fn erase_setting(&self, key: &str) -> DbResult<()> {
        let mut conn = self.pool.acquire().await?;
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
