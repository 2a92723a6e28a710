//! AI generation jobs as stored: the row, and the reads (one job, the unfinished ones, an
//! author's count, the recent lengths behind the estimate). Rows in, rows out: what a card
//! shows is built above this layer; status changes are in `transitions`.
use app::types::{Failure, JobStatus};

use super::{Db, DbResult};

/// A row of `ai_generation_jobs`. Counts and durations are decoded checked: a negative or
/// oversized value in the file is an error, never a silent zero.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub post_id: i64,
    pub author_id: String,
    /// The client address the job was asked from, as the per-address limits count it
    /// (`ClientKey`'s spelling); `None` for jobs from before it was stored.
    pub client_key: Option<String>,
    pub status: JobStatus,
    pub prompt: String,
    pub model: String,
    pub max_tokens: Option<u32>,
    pub current_tokens: u32,
    pub tokens_per_second: f64,
    pub elapsed_time: u64,
    pub estimated_time_remaining: Option<u64>,
    pub percent: f64,
    pub last_update_at: i64,
    pub partial_text: String,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    pub total_tokens: Option<u32>,
    pub time_to_first_token_ms: Option<u64>,
    pub load_duration_ns: Option<u64>,
    pub prompt_eval_duration_ns: Option<u64>,
    pub eval_duration_ns: Option<u64>,
    pub total_duration_ns: Option<u64>,
    pub done_reason: Option<String>,
    /// The byte cap the answer was cut at, when it reached it.
    pub cut_at_bytes: Option<u32>,
    pub error: Option<String>,
    pub failure: Option<Failure>,
    /// Requests to the model server in the job's current life (a Retry starts over), bounded by
    /// `jobs.max_attempts`.
    pub attempt: u32,
    /// Claims in all, never reset: tells one run's text from another's.
    pub runs: u32,
    pub queued_at: i64,
    pub retry_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The model server (its configured name) that ran the job last.
    pub backend: Option<String>,
    /// A thinking model's reasoning so far, apart from the answer.
    pub thinking: String,
    pub thinking_tokens: Option<u32>,
    pub thinking_ms: Option<u64>,
}

impl Db {
    pub async fn job(&self, id: i64) -> DbResult<Option<JobRow>> {
        Ok(
            sqlx::query_as::<_, JobRow>("SELECT * FROM ai_generation_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn job_of_post(&self, post_id: i64) -> DbResult<Option<JobRow>> {
        Ok(sqlx::query_as::<_, JobRow>(
            "SELECT * FROM ai_generation_jobs WHERE post_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(post_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every job that is queued or running, in the order of the queue.
    pub async fn unfinished_jobs(&self) -> DbResult<Vec<JobRow>> {
        Ok(sqlx::query_as::<_, JobRow>(
            "SELECT * FROM ai_generation_jobs WHERE status IN ($1, $2, $3) ORDER BY queued_at, id",
        )
        .bind(JobStatus::Queued)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many queued or running jobs are this author's, and how many were asked from this
    /// client address (`ClientKey`'s spelling), whoever's: what the queue caps count.
    pub async fn unfinished_counts(
        &self,
        author_id: &str,
        client_key: &str,
    ) -> DbResult<(u32, u32)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE author_id = $1), COUNT(*) FILTER (WHERE client_key = $2)
               FROM ai_generation_jobs
              WHERE (author_id = $1 OR client_key = $2) AND status IN ($3, $4, $5)",
        )
        .bind(author_id)
        .bind(client_key)
        .bind(JobStatus::Queued)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Output lengths of the model's most recent completed jobs, newest first: the basis of the
    /// progress estimate when a post sets no max length.
    pub async fn recent_output_lengths(&self, model: &str, limit: u32) -> DbResult<Vec<u32>> {
        Ok(sqlx::query_scalar(
            // Everything it wrote: a thinking model's reasoning takes its time as the answer does.
            "SELECT output_tokens + COALESCE(thinking_tokens, 0) FROM ai_generation_jobs
              WHERE model = $1 AND status = $3 AND output_tokens IS NOT NULL
              ORDER BY finished_at DESC LIMIT $2",
        )
        .bind(model)
        .bind(limit)
        .bind(JobStatus::Completed)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use app::types::{Failure, JobStatus, PostKind};

    use crate::db::testing::{queued_job, temp_db};

    #[tokio::test]
    async fn a_failure_class_written_by_a_newer_release_reads_as_other() {
        let (db, _dir) = temp_db().await;
        let id = queued_job(&db, "a").await;
        sqlx::query(
            "UPDATE ai_generation_jobs SET status = 'failed', failure = 'quota' WHERE id = $1",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
        let row = db.job(id).await.unwrap().unwrap();
        assert_eq!(row.failure, Some(Failure::Other), "the row still reads");
    }

    /// `value` as the database spells it when it is bound to a query.
    async fn spelled<T>(db: &crate::db::Db, value: T) -> String
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send,
    {
        sqlx::query_scalar("SELECT $1")
            .bind(value)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_database_spells_statuses_and_kinds_as_the_wire_and_the_schema_do() {
        let (db, _dir) = temp_db().await;
        for status in JobStatus::ALL {
            let stored = spelled(&db, status).await;
            assert_eq!(stored, status.as_str());
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(stored)
            );
        }
        for (kind, expected) in [(PostKind::Text, "text"), (PostKind::Ai, "ai")] {
            assert_eq!(spelled(&db, kind).await, expected);
        }
        for class in Failure::ALL {
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::Value::from(spelled(&db, class).await)
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_status_or_a_negative_count_is_an_error_not_a_default() {
        let (db, _dir) = temp_db().await;
        let id = queued_job(&db, "a").await;
        // What an older or newer release, or a hand edit, could leave behind.
        let mut conn = db.pool.acquire().await.unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE ai_generation_jobs SET status = 'paused' WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .unwrap();
        let error = db.job(id).await.unwrap_err();
        assert!(error.to_string().contains("paused"), "{error}");
        assert!(error.is_corrupt(), "not worth retrying: {error}");
        sqlx::query(
            "UPDATE ai_generation_jobs SET status = 'queued', current_tokens = -1 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
        assert!(db.job(id).await.unwrap_err().is_corrupt());
    }
}
