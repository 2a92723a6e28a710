//! AI generation jobs: claiming queued work, throttled progress writes, terminal states and the
//! recovery of jobs that a crash left running.
use app::types::{FinalStats, JobStatus, JobView, Progress};

use super::{now_ms, Db, DbResult};

/// A row of `ai_generation_jobs`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub post_id: i64,
    pub author_id: String,
    pub status: String,
    pub prompt: String,
    pub model: String,
    pub max_tokens: Option<i64>,
    pub current_tokens: i64,
    pub tokens_per_second: f64,
    pub elapsed_time: i64,
    pub estimated_time_remaining: Option<i64>,
    pub percent: f64,
    pub last_update_at: i64,
    pub partial_text: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub time_to_first_token_ms: Option<i64>,
    pub load_duration_ns: Option<i64>,
    pub prompt_eval_duration_ns: Option<i64>,
    pub eval_duration_ns: Option<i64>,
    pub total_duration_ns: Option<i64>,
    pub done_reason: Option<String>,
    pub error: Option<String>,
    pub attempt: i64,
    pub runs: i64,
    pub queued_at: i64,
    pub retry_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl JobRow {
    pub fn status(&self) -> JobStatus {
        JobStatus::parse(&self.status).unwrap_or(JobStatus::Failed)
    }

    pub fn max_tokens(&self) -> Option<u32> {
        self.max_tokens.and_then(|n| u32::try_from(n).ok())
    }

    /// The job as a card draws it. The queue position is the runner's to know.
    pub fn to_view(&self, queue_position: Option<u32>) -> JobView {
        let status = self.status();
        let stats = (status == JobStatus::Completed).then(|| FinalStats {
            input_tokens: to_u32(self.input_tokens),
            output_tokens: to_u32(self.output_tokens),
            total_tokens: to_u32(self.total_tokens),
            time_to_first_token_ms: to_u64(self.time_to_first_token_ms),
            load_duration_ns: to_u64(self.load_duration_ns),
            prompt_eval_duration_ns: to_u64(self.prompt_eval_duration_ns),
            eval_duration_ns: to_u64(self.eval_duration_ns),
            total_duration_ns: to_u64(self.total_duration_ns),
            done_reason: self.done_reason.clone().unwrap_or_default(),
        });
        JobView {
            id: self.id,
            post_id: self.post_id,
            status,
            model: self.model.clone(),
            max_tokens: self.max_tokens(),
            queue_position: queue_position.filter(|_| status == JobStatus::Queued),
            progress: Progress {
                current_tokens: to_u32(Some(self.current_tokens)),
                tokens_per_second: self.tokens_per_second,
                elapsed_time: to_u64(Some(self.elapsed_time)),
                estimated_time_remaining: self.estimated_time_remaining.map(|v| to_u64(Some(v))),
                percent: self.percent,
                last_update_at: self.last_update_at,
            },
            text: self.partial_text.clone(),
            stats,
            error: self.error.clone(),
            attempt: to_u32(Some(self.attempt)),
            run: to_u32(Some(self.runs)),
            retry_at: self.retry_at,
            model_loaded: None,
            // Newer than anything published while it ran (the hub counts from the time it
            // started tracking, in microseconds).
            seq: to_u64(Some(self.last_update_at)) * 1000,
        }
    }
}

fn to_u32(v: Option<i64>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or_default()
}

fn to_u64(v: Option<i64>) -> u64 {
    v.and_then(|n| u64::try_from(n).ok()).unwrap_or_default()
}

/// A throttled progress write: the live fields and the text so far.
#[derive(Clone, Debug)]
pub struct ProgressWrite<'a> {
    pub status: JobStatus,
    pub progress: &'a Progress,
    pub text: &'a str,
    pub retry_at: Option<i64>,
    pub error: Option<&'a str>,
    pub attempt: u32,
}

/// What a completed job stores.
#[derive(Clone, Debug)]
pub struct JobCompletion<'a> {
    pub text: &'a str,
    pub stats: &'a FinalStats,
    pub progress: &'a Progress,
}

/// What start-up recovery did with the jobs a crash left running.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    pub requeued: Vec<i64>,
    pub failed: Vec<i64>,
}

const UNFINISHED: &str = "('queued', 'loading', 'generating')";

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

    /// Every job that is queued or running, in the order of the line.
    pub async fn unfinished_jobs(&self) -> DbResult<Vec<JobRow>> {
        Ok(sqlx::query_as::<_, JobRow>(&format!(
            "SELECT * FROM ai_generation_jobs WHERE status IN {UNFINISHED} ORDER BY queued_at, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many of this author's jobs are queued or running.
    pub async fn unfinished_count_of(&self, author_id: &str) -> DbResult<u32> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM ai_generation_jobs WHERE author_id = $1 AND status IN {UNFINISHED}"
        ))
        .bind(author_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Takes a queued job to run it: marks it `loading` and counts the attempt and the run.
    /// `None` when it is not queued any more (cancelled or deleted meanwhile). The order of the
    /// line is the job service's to keep.
    pub async fn claim_job(&self, id: i64) -> DbResult<Option<JobRow>> {
        let now = now_ms();
        Ok(sqlx::query_as::<_, JobRow>(
            "UPDATE ai_generation_jobs
                SET status = 'loading', attempt = attempt + 1, runs = runs + 1, started_at = $1,
                    last_update_at = $1, partial_text = '', current_tokens = 0,
                    tokens_per_second = 0, elapsed_time = 0, estimated_time_remaining = NULL,
                    percent = 0, error = NULL, retry_at = NULL
              WHERE id = $2 AND status = 'queued'
             RETURNING *",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Writes the live state of a running job (throttled by the caller).
    pub async fn write_progress(&self, id: i64, w: ProgressWrite<'_>) -> DbResult<()> {
        let p = w.progress;
        sqlx::query(
            "UPDATE ai_generation_jobs
                SET status = $2, current_tokens = $3, tokens_per_second = $4, elapsed_time = $5,
                    estimated_time_remaining = $6, percent = $7, last_update_at = $8,
                    partial_text = $9, retry_at = $10, error = $11, attempt = $12
              WHERE id = $1 AND status IN ('loading', 'generating')",
        )
        .bind(id)
        .bind(w.status.as_str())
        .bind(i64::from(p.current_tokens))
        .bind(p.tokens_per_second)
        .bind(p.elapsed_time as i64)
        .bind(p.estimated_time_remaining.map(|v| v as i64))
        .bind(p.percent)
        .bind(p.last_update_at)
        .bind(w.text)
        .bind(w.retry_at)
        .bind(w.error)
        .bind(i64::from(w.attempt))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the answer and Ollama's statistics, on the job and on its post, atomically.
    pub async fn complete_job(&self, id: i64, c: JobCompletion<'_>) -> DbResult<Option<JobRow>> {
        let now = now_ms();
        let s = c.stats;
        let p = c.progress;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query_as::<_, JobRow>(
            "UPDATE ai_generation_jobs
                SET status = 'completed', partial_text = $2, current_tokens = $3,
                    tokens_per_second = $4, elapsed_time = $5, estimated_time_remaining = 0,
                    percent = 100, last_update_at = $6, finished_at = $6,
                    input_tokens = $7, output_tokens = $8, total_tokens = $9,
                    time_to_first_token_ms = $10, load_duration_ns = $11,
                    prompt_eval_duration_ns = $12, eval_duration_ns = $13,
                    total_duration_ns = $14, done_reason = $15, error = NULL, retry_at = NULL
              WHERE id = $1 AND status IN ('loading', 'generating')
             RETURNING *",
        )
        .bind(id)
        .bind(c.text)
        .bind(i64::from(p.current_tokens))
        .bind(p.tokens_per_second)
        .bind(p.elapsed_time as i64)
        .bind(now)
        .bind(i64::from(s.input_tokens))
        .bind(i64::from(s.output_tokens))
        .bind(i64::from(s.total_tokens))
        .bind(s.time_to_first_token_ms as i64)
        .bind(s.load_duration_ns as i64)
        .bind(s.prompt_eval_duration_ns as i64)
        .bind(s.eval_duration_ns as i64)
        .bind(s.total_duration_ns as i64)
        .bind(&s.done_reason)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = &row {
            sqlx::query("UPDATE posts SET text = $2 WHERE id = $1")
                .bind(row.post_id)
                .bind(c.text)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Cancels a job that is still waiting in line. `None` when it is not queued (any more).
    pub async fn cancel_queued_job(&self, id: i64, reason: &str) -> DbResult<Option<JobRow>> {
        let now = now_ms();
        Ok(sqlx::query_as::<_, JobRow>(
            "UPDATE ai_generation_jobs
                SET status = 'cancelled', error = $2, last_update_at = $3, finished_at = $3
              WHERE id = $1 AND status = 'queued'
             RETURNING *",
        )
        .bind(id)
        .bind(reason)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends an unfinished job as `failed` or `cancelled` with the reason. Returns the row, or
    /// `None` when the job was already finished.
    pub async fn end_job(
        &self,
        id: i64,
        status: JobStatus,
        reason: &str,
        text: Option<&str>,
    ) -> DbResult<Option<JobRow>> {
        debug_assert!(matches!(status, JobStatus::Failed | JobStatus::Cancelled));
        let now = now_ms();
        Ok(sqlx::query_as::<_, JobRow>(&format!(
            "UPDATE ai_generation_jobs
                SET status = $2, error = $3, partial_text = COALESCE($4, partial_text),
                    last_update_at = $5, finished_at = $5, estimated_time_remaining = NULL,
                    retry_at = NULL
              WHERE id = $1 AND status IN {UNFINISHED}
             RETURNING *"
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .bind(text)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Puts a job back in the queue: a Retry after it ended (`fresh`: attempts start over), or
    /// a running job handed back at shutdown. Returns the row, or `None` if it was not in a
    /// state that allows it.
    pub async fn requeue_job(&self, id: i64, fresh: bool) -> DbResult<Option<JobRow>> {
        // A Retry goes to the end of the line with fresh attempts; a job handed back at
        // shutdown keeps its place, and the interrupted try does not count against it.
        let (from, attempt, queued_at) = if fresh {
            ("('failed', 'cancelled')", "0", "$2")
        } else {
            (
                "('loading', 'generating')",
                "CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END",
                "queued_at",
            )
        };
        let now = now_ms();
        Ok(sqlx::query_as::<_, JobRow>(&format!(
            "UPDATE ai_generation_jobs
                SET status = 'queued', attempt = {attempt}, queued_at = {queued_at}, partial_text = '',
                    current_tokens = 0, tokens_per_second = 0, elapsed_time = 0,
                    estimated_time_remaining = NULL, percent = 0, error = NULL, retry_at = NULL,
                    last_update_at = $2, started_at = NULL, finished_at = NULL
              WHERE id = $1 AND status IN {from}
             RETURNING *"
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// At start-up: every job left `loading` or `generating` by a crash goes back to the queue
    /// (its text starts over), or fails with the reason once it has had `max_attempts` tries.
    pub async fn recover_interrupted(&self, max_attempts: u32) -> DbResult<Recovered> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let failed: Vec<i64> = sqlx::query_scalar(
            "UPDATE ai_generation_jobs
                SET status = 'failed', finished_at = $2, last_update_at = $2,
                    estimated_time_remaining = NULL, retry_at = NULL,
                    error = 'The server stopped during this generation ' || attempt ||
                            ' times; giving up. Press Retry to try again.'
              WHERE status IN ('loading', 'generating') AND attempt >= $1
             RETURNING id",
        )
        .bind(i64::from(max_attempts))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let requeued: Vec<i64> = sqlx::query_scalar(
            "UPDATE ai_generation_jobs
                SET status = 'queued', partial_text = '', current_tokens = 0,
                    tokens_per_second = 0, elapsed_time = 0, estimated_time_remaining = NULL,
                    percent = 0, last_update_at = $1, retry_at = NULL
              WHERE status IN ('loading', 'generating')
             RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Recovered { requeued, failed })
    }

    /// Output lengths of the model's most recent completed jobs, newest first: the basis of the
    /// progress estimate when a post sets no max length.
    pub async fn recent_output_lengths(&self, model: &str, limit: u32) -> DbResult<Vec<u32>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT output_tokens FROM ai_generation_jobs
              WHERE model = $1 AND status = 'completed' AND output_tokens IS NOT NULL
              ORDER BY finished_at DESC LIMIT $2",
        )
        .bind(model)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|n| to_u32(Some(n))).collect())
    }
}

#[cfg(test)]
mod tests {
    use app::types::{FinalStats, JobStatus, Progress};

    use crate::db::{testing::temp_db, JobCompletion, NewAiPostRow, ProgressWrite};

    async fn queued(db: &crate::db::Db, prompt: &str) -> i64 {
        db.insert_ai_post(NewAiPostRow {
            author_id: "a1",
            author_name: "Ann",
            prompt,
            model: "m",
            max_tokens: None,
        })
        .await
        .unwrap()
        .job
        .unwrap()
        .id
    }

    #[tokio::test]
    async fn a_job_is_claimed_once() {
        let (db, _dir) = temp_db().await;
        let a = queued(&db, "a").await;
        let b = queued(&db, "b").await;
        let first = db.claim_job(a).await.unwrap().unwrap();
        assert_eq!(
            (first.id, first.status.as_str(), first.attempt),
            (a, "loading", 1)
        );
        assert!(db.claim_job(a).await.unwrap().is_none(), "not twice");
        assert_eq!(db.claim_job(b).await.unwrap().unwrap().id, b);
    }

    #[tokio::test]
    async fn completing_a_job_stores_stats_and_the_posts_text() {
        let (db, _dir) = temp_db().await;
        let id = queued(&db, "a").await;
        db.claim_job(id).await.unwrap();
        let stats = FinalStats {
            input_tokens: 7,
            output_tokens: 3,
            total_tokens: 10,
            eval_duration_ns: 123_456_789,
            done_reason: "stop".into(),
            ..Default::default()
        };
        let row = db
            .complete_job(
                id,
                JobCompletion {
                    text: "Hi there",
                    stats: &stats,
                    progress: &Progress::default(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        let view = row.to_view(None);
        assert_eq!(view.status, JobStatus::Completed);
        assert_eq!(view.stats.unwrap(), stats);
        assert_eq!(view.progress.percent, 100.0);
        assert_eq!(
            db.post(row.post_id).await.unwrap().unwrap().post.text,
            "Hi there"
        );
        // A finished job takes no more progress and cannot be failed afterwards.
        assert!(db
            .end_job(id, JobStatus::Failed, "late", None)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn progress_writes_only_touch_running_jobs() {
        let (db, _dir) = temp_db().await;
        let id = queued(&db, "a").await;
        let progress = Progress {
            current_tokens: 5,
            ..Default::default()
        };
        let write = ProgressWrite {
            status: JobStatus::Generating,
            progress: &progress,
            text: "abc",
            retry_at: None,
            error: None,
            attempt: 1,
        };
        db.write_progress(id, write.clone()).await.unwrap();
        assert_eq!(
            db.job(id).await.unwrap().unwrap().current_tokens,
            0,
            "still queued"
        );
        db.claim_job(id).await.unwrap();
        db.write_progress(id, write).await.unwrap();
        let row = db.job(id).await.unwrap().unwrap();
        assert_eq!(
            (
                row.current_tokens,
                row.partial_text.as_str(),
                row.status.as_str()
            ),
            (5, "abc", "generating")
        );
    }

    #[tokio::test]
    async fn recovery_requeues_interrupted_jobs_until_the_attempt_limit() {
        let (db, _dir) = temp_db().await;
        let a = queued(&db, "a").await;
        let b = queued(&db, "b").await;
        let c = queued(&db, "c").await;
        db.claim_job(a).await.unwrap(); // attempt 1
        db.claim_job(b).await.unwrap(); // attempt 1
        let recovered = db.recover_interrupted(1).await.unwrap();
        assert_eq!(recovered.failed, vec![a, b]);
        assert!(db
            .job(a)
            .await
            .unwrap()
            .unwrap()
            .error
            .unwrap()
            .contains("stopped"));
        assert_eq!(db.job(c).await.unwrap().unwrap().status, "queued");

        db.claim_job(c).await.unwrap(); // attempt 1
        let recovered = db.recover_interrupted(3).await.unwrap();
        assert_eq!(recovered.requeued, vec![c]);
        let row = db.job(c).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.attempt), ("queued", 1));
    }

    #[tokio::test]
    async fn retry_resets_a_failed_job() {
        let (db, _dir) = temp_db().await;
        let id = queued(&db, "a").await;
        assert!(
            db.requeue_job(id, true).await.unwrap().is_none(),
            "a queued job is not retried"
        );
        db.claim_job(id).await.unwrap();
        db.end_job(id, JobStatus::Failed, "boom", Some("partial"))
            .await
            .unwrap();
        let row = db.requeue_job(id, true).await.unwrap().unwrap();
        assert_eq!(
            (
                row.status.as_str(),
                row.attempt,
                row.error,
                row.partial_text.as_str()
            ),
            ("queued", 0, None, "")
        );
    }
}
