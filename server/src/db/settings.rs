//! Small server-wide values kept in the database, such as the cookie-signing key.
use super::{Db, DbResult};

impl Db {
    /// The value stored under `key`, or `make()` stored there now if there was none. Safe when
    /// several servers race: the first write wins and everyone reads it back.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> DbResult<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(make())
        .execute(&self.pool)
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }
}
