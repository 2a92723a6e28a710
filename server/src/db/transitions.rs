//! A job's status changes, one named query each: claimed, progress written, completed,
//! failed, cancelled (waiting or running), retried, handed back at shutdown, and recovered
//! after a crash. Each changes only a job in the status it expects, and says whether it did.
use app::types::{Failure, FinalStats, JobStatus, Progress, Reasoning};

use crate::metrics;

use super::{jobs::JobRow, now_ms, storable, to_db_int, Begin as _, Db, DbResult, Engine};

/// The assignments that start a job's progress over: no text, no counts, no estimate, no
/// retry due. Every transition back to the start (claim, Retry, hand back, recovery) uses them,
/// so a progress column added later is reset everywhere or nowhere.
macro_rules! fresh_progress {
    () => {
        "partial_text = '', current_tokens = 0, tokens_per_second = 0, elapsed_time = 0,
         estimated_time_remaining = NULL, percent = 0, retry_at = NULL, thinking = '',
         thinking_tokens = NULL, thinking_ms = NULL"
    };
}

/// A throttled progress write: the live fields and the text so far.
#[derive(Clone, Debug)]
pub struct ProgressWrite<'a> {
    /// The run writing it: a run that is no longer the job's current one writes nothing.
    pub run: u32,
    pub status: JobStatus,
    pub progress: &'a Progress,
    pub text: &'a str,
    pub retry_at: Option<i64>,
    pub error: Option<&'a str>,
    pub failure: Option<Failure>,
    pub attempt: u32,
    pub thinking: &'a str,
    pub reasoning: Option<&'a Reasoning>,
}

/// What an unfinished job had written when it ended (failed or stopped): it keeps all of it,
/// up to the last token, not only what the last throttled write stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written<'a> {
    /// The run that wrote it, which must still be the job's current one and running; `None`
    /// for a job ended while it waited in the queue (which it must still be in).
    pub run: Option<u32>,
    pub text: &'a str,
    pub thinking: &'a str,
    pub reasoning: Option<&'a Reasoning>,
}

/// What a completed job stores.
#[derive(Clone, Debug)]
pub struct JobCompletion<'a> {
    /// The run that wrote the answer (the job's `runs` when it was claimed).
    pub run: u32,
    pub text: &'a str,
    pub stats: &'a FinalStats,
    pub progress: &'a Progress,
    pub thinking: &'a str,
    pub reasoning: Option<&'a Reasoning>,
}

/// The reason a job stopped by its author shows.
pub const STOPPED_BY_AUTHOR: &str = "Stopped by its author.";

/// What recovery did with the running jobs whose runner is gone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    pub requeued: Vec<i64>,
    pub failed: Vec<i64>,
    /// Jobs whose author had asked to stop them: they end cancelled instead.
    pub cancelled: Vec<i64>,
}

/// Which running jobs recovery takes back: their runner is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted<'a> {
    /// Every one: the only server on a database (SQLite) starts.
    All,
    /// An instance starts: those it ran before (its id persists), and those whose lease ran out.
    OwnOrExpired(&'a str),
    /// Those whose lease ran out: their instance died, or lost the database.
    Expired,
}

/// Who claims a job, for which model server: the claim holds only while that server (by its
/// configured name) runs fewer than `slots` jobs, counted over every instance.
#[derive(Clone, Copy, Debug)]
pub struct Claimant<'a> {
    pub backend: &'a str,
    pub slots: u32,
    /// This instance's id, written as the job's owner.
    pub owner: &'a str,
    /// How long the claim holds unless renewed.
    pub lease_ms: u64,
}

/// The SQL of a claim on each engine, kept together: the job must still be queued, and its
/// model server must have a free slot, counted over all instances in the same statement. On
/// PostgreSQL a job another instance is claiming right now is skipped, not waited for.
const CLAIM_WHERE_SQLITE: &str = " WHERE id = $2 AND status = $4 AND NOT stop_requested";
const CLAIM_WHERE_POSTGRES: &str = " WHERE id = (SELECT id FROM ai_generation_jobs
                                          WHERE id = $2 AND status = $4 AND NOT stop_requested
                                            FOR UPDATE SKIP LOCKED)";
const CLAIM_SLOT_FREE: &str = " AND (SELECT COUNT(*) FROM ai_generation_jobs
                                     WHERE backend = $5 AND status IN ($3, $9) AND id <> $2) < $8
                              RETURNING *";

impl Db {
    /// Takes a queued job to run it on `who.backend` (a model server's name) under a lease
    /// held by `who.owner`: marks it `loading` and counts the attempt and the run. `None` when
    /// it is not queued any more (cancelled, deleted or claimed meanwhile), its author asked to
    /// stop it, or the server has no free slot. The order of the queue is
    /// [`Db::queued_jobs`]'s.
    pub async fn claim_job(&self, id: i64, who: &Claimant<'_>) -> DbResult<Option<JobRow>> {
        metrics::db_write("claim");
        let now = self.clock_ms().await?;
        let lease_until = now.saturating_add(to_db_int(who.lease_ms)?);
        let set = concat!(
            "UPDATE ai_generation_jobs
                SET status = $3, attempt = attempt + 1, runs = runs + 1, started_at = $1,
                    last_update_at = $1, error = NULL, failure = NULL, backend = $5,
                    owner = $6, lease_until = $7, ",
            fresh_progress!()
        );
        let where_ = match self.engine() {
            Engine::Sqlite => CLAIM_WHERE_SQLITE,
            Engine::Postgres => CLAIM_WHERE_POSTGRES,
        };
        let serialise = self.serialise_claims();
        let sql = format!("{set}{where_}{CLAIM_SLOT_FREE}");
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(lock) = serialise {
                sqlx::query(lock)
                    .bind(who.backend)
                    .execute(&mut *tx)
                    .await?;
            }
            let row = sqlx::query_as::<_, JobRow>(&sql)
                .bind(now)
                .bind(id)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Queued)
                .bind(who.backend)
                .bind(who.owner)
                .bind(lease_until)
                .bind(i64::from(who.slots))
                .bind(JobStatus::Generating)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        }))
    }

    /// The time leases are counted in (Unix ms): on PostgreSQL the database's clock, which
    /// every instance shares whatever its own clock says; on SQLite (one server) this one's.
    pub async fn clock_ms(&self) -> DbResult<i64> {
        Ok(match &self.pool {
            super::Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
                    .fetch_one(pool)
                    .await?
            }
            super::Pool::Sqlite(_) => now_ms(),
        })
    }

    /// Renews the lease `owner` holds on run `run` of job `id`, for `lease_ms` from now:
    /// whether a Stop was asked for it, or `None` when the lease is not `owner`'s any more
    /// (it ran out and another instance runs the job now, or the job ended).
    pub async fn renew_lease(
        &self,
        id: i64,
        run: u32,
        owner: &str,
        lease_ms: u64,
    ) -> DbResult<Option<bool>> {
        metrics::db_write("renew");
        let lease_until = self.clock_ms().await?.saturating_add(to_db_int(lease_ms)?);
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "UPDATE ai_generation_jobs SET lease_until = $4
              WHERE id = $1 AND runs = $2 AND owner = $3 AND status IN ($5, $6)
             RETURNING stop_requested",
        )
        .bind(id)
        .bind(i64::from(run))
        .bind(owner)
        .bind(lease_until)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .fetch_optional(pool)
        .await)?)
    }

    /// Asks the instance running job `id` to stop it (its author pressed Stop elsewhere); the
    /// request stays in the row until that runner, or a recovery, ends the job. Whether the
    /// job was running.
    pub async fn request_stop(&self, id: i64) -> DbResult<bool> {
        metrics::db_write("request_stop");
        let asked = on_pool!(self, |pool| sqlx::query(
            "UPDATE ai_generation_jobs SET stop_requested = TRUE
              WHERE id = $1 AND status IN ($2, $3)",
        )
        .bind(id)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(asked == 1)
    }

    /// A running job of run `run` goes on on the server named `backend`, which runs `slots`
    /// jobs at once (its own was busy, or lacked the model). Whether it did: `false` when that
    /// server has no free slot over all instances (counted as a claim counts them), or the job
    /// is no longer that run, running.
    pub async fn move_job(&self, id: i64, run: u32, backend: &str, slots: u32) -> DbResult<bool> {
        metrics::db_write("move");
        let serialise = self.serialise_claims();
        let moved = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(lock) = serialise {
                sqlx::query(lock).bind(backend).execute(&mut *tx).await?;
            }
            let moved = sqlx::query(
                "UPDATE ai_generation_jobs SET backend = $3
                  WHERE id = $1 AND runs = $2 AND status IN ($4, $5)
                    AND (SELECT COUNT(*) FROM ai_generation_jobs
                          WHERE backend = $3 AND status IN ($4, $5) AND id <> $1) < $6",
            )
            .bind(id)
            .bind(i64::from(run))
            .bind(backend)
            .bind(JobStatus::Loading)
            .bind(JobStatus::Generating)
            .bind(i64::from(slots))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            moved
        });
        Ok(moved == 1)
    }

    /// On PostgreSQL, the statement that makes claims for one model server (bound as `$1`)
    /// take turns until the commit, so that two instances cannot both count its last free slot
    /// as theirs; SQLite's `BEGIN IMMEDIATE` serialises every write already.
    fn serialise_claims(&self) -> Option<&'static str> {
        match self.engine() {
            Engine::Sqlite => None,
            Engine::Postgres => Some("SELECT pg_advisory_xact_lock(1634301793, hashtext($1))"),
        }
    }

    /// Writes the live state of a running job (throttled by the caller).
    pub async fn write_progress(&self, id: i64, w: ProgressWrite<'_>) -> DbResult<()> {
        metrics::db_write("progress");
        let p = w.progress;
        on_pool!(self, |pool| sqlx::query(
            "UPDATE ai_generation_jobs
                SET status = $2, current_tokens = $3, tokens_per_second = $4, elapsed_time = $5,
                    estimated_time_remaining = $6, percent = $7, last_update_at = $8,
                    partial_text = $9, retry_at = $10, error = $11, attempt = $12, failure = $15,
                    thinking = $16, thinking_tokens = $17, thinking_ms = $18
              WHERE id = $1 AND runs = $19 AND status IN ($13, $14)",
        )
        .bind(id)
        .bind(w.status)
        .bind(i64::from(p.current_tokens))
        .bind(p.tokens_per_second)
        .bind(to_db_int(p.elapsed_time)?)
        .bind(p.estimated_time_remaining.map(to_db_int).transpose()?)
        .bind(p.percent)
        .bind(p.last_update_at)
        .bind(w.text)
        .bind(w.retry_at)
        .bind(w.error.map(storable))
        .bind(i64::from(w.attempt))
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .bind(w.failure)
        .bind(w.thinking)
        .bind(w.reasoning.map(|r| i64::from(r.tokens)))
        .bind(w.reasoning.map(|r| to_db_int(r.duration_ms)).transpose()?)
        .bind(i64::from(w.run))
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Stores the answer and Ollama's statistics, on the job and on its post, atomically. Only
    /// the run that claimed the job last completes it, even if the job was put back in the
    /// queue meanwhile (a finished answer beats running it again); `None` when the job ended
    /// otherwise, was claimed by a newer run, or is gone.
    pub async fn complete_job(&self, id: i64, c: JobCompletion<'_>) -> DbResult<Option<JobRow>> {
        metrics::db_write("complete");
        let now = now_ms();
        let s = c.stats;
        let p = c.progress;
        let elapsed = to_db_int(p.elapsed_time)?;
        let durations = [
            s.time_to_first_token_ms,
            s.load_duration_ns,
            s.prompt_eval_duration_ns,
            s.eval_duration_ns,
            s.total_duration_ns,
        ]
        .map(|d| d.map(to_db_int).transpose());
        let [first_token, load, prompt_eval, eval, total] = durations;
        let (first_token, load, prompt_eval, eval, total) =
            (first_token?, load?, prompt_eval?, eval?, total?);
        let thinking_ms = c.reasoning.map(|r| to_db_int(r.duration_ms)).transpose()?;
        let row = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query_as::<_, JobRow>(
                "UPDATE ai_generation_jobs
                SET status = $16, partial_text = $2, current_tokens = $3,
                    tokens_per_second = $4, elapsed_time = $5, estimated_time_remaining = 0,
                    percent = 100, last_update_at = $6, finished_at = $6,
                    input_tokens = $7, output_tokens = $8, total_tokens = $9,
                    time_to_first_token_ms = $10, load_duration_ns = $11,
                    prompt_eval_duration_ns = $12, eval_duration_ns = $13,
                    total_duration_ns = $14, done_reason = $15, cut_at_bytes = $21,
                    error = NULL, failure = NULL, retry_at = NULL,
                    thinking = $22, thinking_tokens = $23, thinking_ms = $24
              WHERE id = $1 AND runs = $19 AND status IN ($17, $18, $20)
             RETURNING *",
            )
            .bind(id)
            .bind(c.text)
            .bind(i64::from(p.current_tokens))
            .bind(p.tokens_per_second)
            .bind(elapsed)
            .bind(now)
            .bind(s.input_tokens.map(i64::from))
            .bind(s.output_tokens.map(i64::from))
            .bind(s.total_tokens.map(i64::from))
            .bind(first_token)
            .bind(load)
            .bind(prompt_eval)
            .bind(eval)
            .bind(total)
            .bind(storable(&s.done_reason))
            .bind(JobStatus::Completed)
            .bind(JobStatus::Loading)
            .bind(JobStatus::Generating)
            .bind(i64::from(c.run))
            .bind(JobStatus::Queued)
            .bind(s.cut_at_bytes.map(i64::from))
            .bind(c.thinking)
            .bind(c.reasoning.map(|r| i64::from(r.tokens)))
            .bind(thinking_ms)
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
            row
        });
        Ok(row)
    }

    /// Cancels a job that is still waiting in the queue (its author stopped it). `None` when it
    /// is not queued (any more).
    pub async fn cancel_queued_job(&self, id: i64, reason: &str) -> DbResult<Option<JobRow>> {
        metrics::db_write("cancel");
        let now = now_ms();
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, JobRow>(
            "UPDATE ai_generation_jobs
                SET status = $4, error = $2, failure = $6, last_update_at = $3, finished_at = $3
              WHERE id = $1 AND status = $5
             RETURNING *",
        )
        .bind(id)
        .bind(storable(reason))
        .bind(now)
        .bind(JobStatus::Cancelled)
        .bind(JobStatus::Queued)
        .bind(Failure::Stopped)
        .fetch_optional(pool)
        .await)?)
    }

    /// Ends an unfinished job as `failed`, keeping what it wrote. `None` when it had already
    /// ended.
    pub async fn fail_job(
        &self,
        id: i64,
        reason: &str,
        class: Failure,
        written: Written<'_>,
    ) -> DbResult<Option<JobRow>> {
        self.end_unfinished(id, JobStatus::Failed, (reason, class), written)
            .await
    }

    /// Ends a running job as `cancelled` (its author stopped it), keeping what it wrote.
    /// `None` when it had already ended.
    pub async fn cancel_running_job(
        &self,
        id: i64,
        reason: &str,
        written: Written<'_>,
    ) -> DbResult<Option<JobRow>> {
        self.end_unfinished(
            id,
            JobStatus::Cancelled,
            (reason, Failure::Stopped),
            written,
        )
        .await
    }

    async fn end_unfinished(
        &self,
        id: i64,
        status: JobStatus,
        (reason, class): (&str, Failure),
        written: Written<'_>,
    ) -> DbResult<Option<JobRow>> {
        metrics::db_write("end");
        let now = now_ms();
        let reasoning = written.reasoning;
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, JobRow>(
            "UPDATE ai_generation_jobs
                SET status = $2, error = $3, failure = $9, partial_text = $4,
                    last_update_at = $5, finished_at = $5, estimated_time_remaining = NULL,
                    retry_at = NULL, thinking = $10, thinking_tokens = $11, thinking_ms = $12
              WHERE id = $1
                AND (($13 IS NULL AND status = $6) OR (runs = $13 AND status IN ($7, $8)))
             RETURNING *",
        )
        .bind(id)
        .bind(status)
        .bind(storable(reason))
        .bind(written.text)
        .bind(now)
        .bind(JobStatus::Queued)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .bind(class)
        .bind(written.thinking)
        .bind(reasoning.map(|r| i64::from(r.tokens)))
        .bind(reasoning.map(|r| to_db_int(r.duration_ms)).transpose()?)
        .bind(written.run.map(i64::from))
        .fetch_optional(pool)
        .await)?)
    }

    /// A Retry: a failed or cancelled job goes to the end of the queue, its attempts starting
    /// over, asked now from `client_key` (whose waiting posts it counts among). `None` when the
    /// job is not failed or cancelled.
    pub async fn retry_job(&self, id: i64, client_key: &str) -> DbResult<Option<JobRow>> {
        metrics::db_write("retry");
        let now = now_ms();
        // It waits for its client's next round, as a new post would.
        let sql = format!(
            concat!(
                "UPDATE ai_generation_jobs AS job
                    SET status = $3, attempt = 0, queued_at = $2, error = NULL, failure = NULL,
                        last_update_at = $2, started_at = NULL, finished_at = NULL,
                        client_key = $6, stop_requested = FALSE, queue_turn = {}, ",
                fresh_progress!(),
                " WHERE id = $1 AND status IN ($4, $5)
                 RETURNING *"
            ),
            // Asked by its author, with the cookie (see `next_turn`).
            super::jobs::next_turn("author_id = job.author_id", "$3", "$7", "$8")
        );
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, JobRow>(&sql)
            .bind(id)
            .bind(now)
            .bind(JobStatus::Queued)
            .bind(JobStatus::Failed)
            .bind(JobStatus::Cancelled)
            .bind(client_key)
            .bind(JobStatus::Loading)
            .bind(JobStatus::Generating)
            .fetch_optional(pool)
            .await)?)
    }

    /// At shutdown, or while the model server is away: a running job goes back to the queue at
    /// its old place; with `refund`, the interrupted try does not count against it. `None` when
    /// it was not running, or not as run `run`.
    pub async fn hand_back_job(&self, id: i64, run: u32, refund: bool) -> DbResult<Option<JobRow>> {
        metrics::db_write("hand_back");
        let now = now_ms();
        Ok(on_pool!(self, |pool| sqlx::query_as::<_, JobRow>(
            concat!(
                "UPDATE ai_generation_jobs
                    SET status = $3,
                        attempt = CASE WHEN $6 AND attempt > 0 THEN attempt - 1 ELSE attempt END,
                        error = NULL, failure = NULL, last_update_at = $2, started_at = NULL,
                        finished_at = NULL, ",
                fresh_progress!(),
                " WHERE id = $1 AND runs = $7 AND status IN ($4, $5)
                 RETURNING *"
            )
        )
        .bind(id)
        .bind(now)
        .bind(JobStatus::Queued)
        .bind(JobStatus::Loading)
        .bind(JobStatus::Generating)
        .bind(refund)
        .bind(i64::from(run))
        .fetch_optional(pool)
        .await)?)
    }

    /// Every running job whose runner is gone (`which`) goes back to the queue (its text
    /// starts over), or fails with the reason once it has had `max_attempts` tries, or ends
    /// cancelled when its author had asked to stop it. On SQLite at start-up, all of them; on
    /// PostgreSQL, an instance's own at its start and any whose lease ran out.
    pub async fn recover_interrupted(
        &self,
        max_attempts: u32,
        which: Interrupted<'_>,
    ) -> DbResult<Recovered> {
        metrics::db_write("recover");
        let now = self.clock_ms().await?;
        let (all, owner) = match which {
            Interrupted::All => (true, None),
            Interrupted::OwnOrExpired(owner) => (false, Some(owner)),
            Interrupted::Expired => (false, None),
        };
        // $1 all, $2 owner, $3 now; $4, $5 the running statuses.
        const GONE: &str = "status IN ($4, $5)
                 AND ($1 OR owner = $2 OR COALESCE(lease_until, 0) < $3)";
        let cancel = format!(
            "UPDATE ai_generation_jobs
                SET status = $6, finished_at = $3, last_update_at = $3,
                    estimated_time_remaining = NULL, retry_at = NULL, failure = $7, error = $8
              WHERE {GONE} AND stop_requested
             RETURNING id"
        );
        let fail = format!(
            "UPDATE ai_generation_jobs
                SET status = $6, finished_at = $3, last_update_at = $3,
                    estimated_time_remaining = NULL, retry_at = NULL, failure = $7,
                    error = 'The server stopped during this generation ' || attempt ||
                            ' times; giving up. Press Retry to try again.'
              WHERE {GONE} AND attempt >= $8
             RETURNING id"
        );
        let requeue = format!(
            concat!(
                "UPDATE ai_generation_jobs SET status = $6, last_update_at = $3, error = NULL,
                    failure = NULL, ",
                fresh_progress!(),
                " WHERE {} RETURNING id"
            ),
            GONE
        );
        let recovered = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let cancelled: Vec<i64> = sqlx::query_scalar(&cancel)
                .bind(all)
                .bind(owner)
                .bind(now)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Generating)
                .bind(JobStatus::Cancelled)
                .bind(Failure::Stopped)
                .bind(STOPPED_BY_AUTHOR)
                .fetch_all(&mut *tx)
                .await?;
            let failed: Vec<i64> = sqlx::query_scalar(&fail)
                .bind(all)
                .bind(owner)
                .bind(now)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Generating)
                .bind(JobStatus::Failed)
                .bind(Failure::Interrupted)
                .bind(i64::from(max_attempts))
                .fetch_all(&mut *tx)
                .await?;
            let requeued: Vec<i64> = sqlx::query_scalar(&requeue)
                .bind(all)
                .bind(owner)
                .bind(now)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Generating)
                .bind(JobStatus::Queued)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Recovered {
                requeued,
                failed,
                cancelled,
            }
        });
        Ok(recovered)
    }
}

#[cfg(test)]
mod tests {
    use app::types::{Failure, FinalStats, JobStatus, Progress, Reasoning};

    use crate::db::{
        testing::{each_engine, queued_job, ANY_SLOT},
        Claimant, Interrupted, JobCompletion, ProgressWrite, Written,
    };

    #[tokio::test]
    async fn a_job_is_claimed_once() {
        for (db, _keep) in each_engine().await {
            let a = queued_job(&db, "a").await;
            let b = queued_job(&db, "b").await;
            let first = db.claim_job(a, &ANY_SLOT).await.unwrap().unwrap();
            assert_eq!(
                (first.id, first.status, first.attempt),
                (a, JobStatus::Loading, 1)
            );
            assert!(
                db.claim_job(a, &ANY_SLOT).await.unwrap().is_none(),
                "not twice"
            );
            assert_eq!(db.claim_job(b, &ANY_SLOT).await.unwrap().unwrap().id, b);
        }
    }

    #[tokio::test]
    async fn completing_a_job_stores_stats_and_the_posts_text() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            let stats = FinalStats {
                input_tokens: Some(7),
                output_tokens: Some(3),
                total_tokens: Some(10),
                eval_duration_ns: Some(123_456_789),
                done_reason: "stop".into(),
                ..Default::default()
            };
            let row = db
                .complete_job(
                    id,
                    JobCompletion {
                        run: 1,
                        text: "Hi there",
                        stats: &stats,
                        progress: &Progress::default(),
                        thinking: "",
                        reasoning: None,
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.status, JobStatus::Completed);
            assert_eq!(
                (row.input_tokens, row.output_tokens, row.total_tokens),
                (Some(7), Some(3), Some(10))
            );
            assert_eq!(
                (row.eval_duration_ns, row.done_reason.as_deref()),
                (Some(123_456_789), Some("stop"))
            );
            assert_eq!(row.percent, 100.0);
            assert_eq!(
                db.post(row.post_id).await.unwrap().unwrap().post.text,
                "Hi there"
            );
            // A finished job takes no more progress and cannot be failed afterwards.
            assert!(db
                .fail_job(id, "late", Failure::BrokeOff, Written::default())
                .await
                .unwrap()
                .is_none());
        }
    }

    /// A finished answer of the run that claimed the job, as `complete_job` takes it.
    fn answer(run: u32) -> (FinalStats, Progress, u32) {
        let stats = FinalStats {
            output_tokens: Some(2),
            done_reason: "stop".into(),
            ..Default::default()
        };
        (stats, Progress::default(), run)
    }

    #[tokio::test]
    async fn an_answer_completes_its_job_even_after_the_job_was_requeued() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            let run = db.claim_job(id, &ANY_SLOT).await.unwrap().unwrap().runs;
            // What a second process's crash recovery did to a job this one was running.
            assert_eq!(
                db.recover_interrupted(3, Interrupted::All)
                    .await
                    .unwrap()
                    .requeued,
                [id]
            );
            let (stats, progress, run) = answer(run);
            let done = db
                .complete_job(
                    id,
                    JobCompletion {
                        run,
                        text: "kept",
                        stats: &stats,
                        progress: &progress,
                        thinking: "",
                        reasoning: None,
                    },
                )
                .await
                .unwrap()
                .expect("the requeued job takes the finished answer");
            assert_eq!(done.status, JobStatus::Completed);
            assert_eq!(
                db.post(done.post_id).await.unwrap().unwrap().post.text,
                "kept"
            );
            assert!(
                db.claim_job(id, &ANY_SLOT).await.unwrap().is_none(),
                "and it does not run again"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_does_not_overwrite_a_newer_run_of_its_job() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            let old_run = db.claim_job(id, &ANY_SLOT).await.unwrap().unwrap().runs;
            db.recover_interrupted(3, Interrupted::All).await.unwrap();
            let new_run = db.claim_job(id, &ANY_SLOT).await.unwrap().unwrap().runs;
            assert_ne!(old_run, new_run);
            let (stats, progress, _) = answer(old_run);
            let late = db
                .complete_job(
                    id,
                    JobCompletion {
                        run: old_run,
                        text: "late",
                        stats: &stats,
                        progress: &progress,
                        thinking: "",
                        reasoning: None,
                    },
                )
                .await
                .unwrap();
            assert!(late.is_none(), "the newer run owns the job");
            assert_eq!(
                db.job(id).await.unwrap().unwrap().status,
                JobStatus::Loading
            );
        }
    }

    /// A claim on `backend`, which runs `slots` jobs at once, by instance `owner`.
    fn on<'a>(backend: &'a str, slots: u32, owner: &'a str, lease_ms: u64) -> Claimant<'a> {
        Claimant {
            backend,
            slots,
            owner,
            lease_ms,
        }
    }

    #[tokio::test]
    async fn a_claim_holds_only_while_its_model_server_has_a_free_slot_over_all_instances() {
        for (db, _keep) in each_engine().await {
            let a = queued_job(&db, "a").await;
            let b = queued_job(&db, "b").await;
            let first = db.claim_job(a, &on("gpu", 1, "x", 15_000)).await.unwrap();
            assert_eq!(
                first.map(|r| (r.owner, r.backend)),
                Some((Some("x".into()), Some("gpu".into())))
            );
            assert!(
                db.claim_job(b, &on("gpu", 1, "y", 15_000))
                    .await
                    .unwrap()
                    .is_none(),
                "gpu's one slot is x's, whichever instance asks"
            );
            assert_eq!(db.job(b).await.unwrap().unwrap().status, JobStatus::Queued);
            assert!(db
                .claim_job(b, &on("cpu", 1, "y", 15_000))
                .await
                .unwrap()
                .is_some());
            let run = db.job(a).await.unwrap().unwrap().runs;
            db.hand_back_job(a, run, true).await.unwrap();
            assert!(
                db.claim_job(a, &on("gpu", 1, "y", 15_000))
                    .await
                    .unwrap()
                    .is_some(),
                "the slot came free"
            );
        }
    }

    #[tokio::test]
    async fn a_job_moves_to_another_model_server_only_into_a_free_slot() {
        for (db, _keep) in each_engine().await {
            let a = queued_job(&db, "a").await;
            let b = queued_job(&db, "b").await;
            let run_a = db
                .claim_job(a, &on("gpu", 1, "x", 15_000))
                .await
                .unwrap()
                .unwrap()
                .runs;
            let run_b = db
                .claim_job(b, &on("cpu", 1, "y", 15_000))
                .await
                .unwrap()
                .unwrap()
                .runs;
            assert!(
                !db.move_job(b, run_b, "gpu", 1).await.unwrap(),
                "gpu's slot is a's"
            );
            assert_eq!(
                db.job(b).await.unwrap().unwrap().backend.as_deref(),
                Some("cpu")
            );
            db.hand_back_job(a, run_a, true).await.unwrap();
            assert!(db.move_job(b, run_b, "gpu", 1).await.unwrap());
            assert!(
                !db.move_job(b, run_b + 1, "cpu", 1).await.unwrap(),
                "not that run"
            );
        }
    }

    #[tokio::test]
    async fn claims_racing_from_many_instances_never_put_two_jobs_on_a_one_slot_server() {
        for (db, _keep) in each_engine().await {
            let mut ids = Vec::new();
            for i in 0..8 {
                ids.push(queued_job(&db, &format!("job {i}")).await);
            }
            let claims = ids.iter().enumerate().map(|(i, &id)| {
                let db = db.clone();
                async move {
                    let owner = format!("instance-{}", i % 3);
                    db.claim_job(id, &on("gpu", 1, &owner, 15_000))
                        .await
                        .unwrap()
                }
            });
            let won = futures::future::join_all(claims)
                .await
                .into_iter()
                .flatten()
                .count();
            assert_eq!(won, 1, "one slot, one job ({:?})", db.engine());
        }
    }

    #[tokio::test]
    async fn a_lease_not_renewed_is_rescued_under_a_new_run_and_the_old_run_writes_nothing() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            let old = db
                .claim_job(id, &on("gpu", 1, "dead", 1))
                .await
                .unwrap()
                .unwrap();
            let alive = queued_job(&db, "b").await;
            db.claim_job(alive, &on("cpu", 1, "alive", 60_000))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let renewed = db.renew_lease(alive, 1, "alive", 60_000).await.unwrap();
            assert_eq!(renewed, Some(false));
            let rescued = db
                .recover_interrupted(3, Interrupted::Expired)
                .await
                .unwrap();
            assert_eq!(rescued.requeued, [id], "only the job whose lease ran out");
            let new = db
                .claim_job(id, &on("gpu", 1, "alive", 60_000))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((new.runs, new.attempt), (old.runs + 1, 2));
            let progress = Progress {
                current_tokens: 9,
                ..Default::default()
            };
            let stale = ProgressWrite {
                run: old.runs,
                status: JobStatus::Generating,
                progress: &progress,
                text: "the dead instance's words",
                retry_at: None,
                error: None,
                failure: None,
                attempt: 1,
                thinking: "",
                reasoning: None,
            };
            db.write_progress(id, stale).await.unwrap();
            let row = db.job(id).await.unwrap().unwrap();
            assert_eq!((row.current_tokens, row.partial_text.as_str()), (0, ""));
            assert_eq!(
                db.renew_lease(id, old.runs, "dead", 60_000).await.unwrap(),
                None
            );
            assert_eq!(
                db.renew_lease(id, new.runs, "dead", 60_000).await.unwrap(),
                None
            );
        }
    }

    #[tokio::test]
    async fn an_instance_takes_its_own_jobs_back_at_start_but_not_those_of_a_live_one() {
        for (db, _keep) in each_engine().await {
            let mine = queued_job(&db, "a").await;
            let theirs = queued_job(&db, "b").await;
            db.claim_job(mine, &on("gpu", 2, "me", 60_000))
                .await
                .unwrap();
            db.claim_job(theirs, &on("gpu", 2, "them", 60_000))
                .await
                .unwrap();
            let back = db
                .recover_interrupted(3, Interrupted::OwnOrExpired("me"))
                .await
                .unwrap();
            assert_eq!(back.requeued, [mine]);
            assert!(db.job(theirs).await.unwrap().unwrap().status.is_running());
        }
    }

    #[tokio::test]
    async fn a_stop_asked_elsewhere_reaches_the_runner_and_a_rescue_ends_the_job_cancelled() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            assert!(!db.request_stop(id).await.unwrap(), "not running yet");
            let run = db
                .claim_job(id, &on("gpu", 1, "x", 1))
                .await
                .unwrap()
                .unwrap()
                .runs;
            assert!(db.request_stop(id).await.unwrap());
            assert_eq!(db.renew_lease(id, run, "x", 1).await.unwrap(), Some(true));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let rescued = db
                .recover_interrupted(3, Interrupted::Expired)
                .await
                .unwrap();
            assert_eq!((rescued.cancelled, rescued.requeued), (vec![id], vec![]));
            let row = db.job(id).await.unwrap().unwrap();
            assert_eq!(
                (row.status, row.failure),
                (JobStatus::Cancelled, Some(Failure::Stopped))
            );
            let retried = db.retry_job(id, "1.2.3.4").await.unwrap().unwrap();
            assert!(!retried.stop_requested, "a Retry starts without it");

            // Handed back before its runner heard the Stop: no instance claims it again.
            let other = queued_job(&db, "b").await;
            let run = db.claim_job(other, &ANY_SLOT).await.unwrap().unwrap().runs;
            db.request_stop(other).await.unwrap();
            db.hand_back_job(other, run, true).await.unwrap().unwrap();
            assert!(db.claim_job(other, &ANY_SLOT).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn progress_writes_only_touch_running_jobs() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            let progress = Progress {
                current_tokens: 5,
                ..Default::default()
            };
            let write = ProgressWrite {
                run: 1,
                status: JobStatus::Generating,
                progress: &progress,
                text: "abc",
                retry_at: None,
                error: None,
                failure: None,
                attempt: 1,
                thinking: "",
                reasoning: None,
            };
            db.write_progress(id, write.clone()).await.unwrap();
            assert_eq!(
                db.job(id).await.unwrap().unwrap().current_tokens,
                0,
                "still queued"
            );
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            db.write_progress(id, write).await.unwrap();
            let row = db.job(id).await.unwrap().unwrap();
            assert_eq!(
                (row.current_tokens, row.partial_text.as_str(), row.status),
                (5, "abc", JobStatus::Generating)
            );
        }
    }

    #[tokio::test]
    async fn a_stopped_or_failed_job_keeps_all_it_wrote_not_only_the_last_throttled_write() {
        for (db, _keep) in each_engine().await {
            let progress = Progress::default();
            let thought = |tokens| Reasoning {
                tokens,
                duration_ms: 700,
                finished: false,
            };
            let (early, last) = (thought(2), thought(5));
            for end in ["stopped", "failed"] {
                let id = queued_job(&db, end).await;
                db.claim_job(id, &ANY_SLOT).await.unwrap();
                let write = ProgressWrite {
                    run: 1,
                    status: JobStatus::Generating,
                    progress: &progress,
                    text: "An",
                    retry_at: None,
                    error: None,
                    failure: None,
                    attempt: 1,
                    thinking: "Hmm",
                    reasoning: Some(&early),
                };
                db.write_progress(id, write).await.unwrap();
                let written = Written {
                    run: Some(1),
                    text: "An answer",
                    thinking: "Hmm, let me see",
                    reasoning: Some(&last),
                };
                let row = match end {
                    "stopped" => db.cancel_running_job(id, "Stopped", written).await,
                    _ => db.fail_job(id, "boom", Failure::BrokeOff, written).await,
                };
                let row = row.unwrap().unwrap();
                assert_eq!(
                    (
                        row.partial_text.as_str(),
                        row.thinking.as_str(),
                        row.thinking_tokens,
                        row.thinking_ms
                    ),
                    ("An answer", "Hmm, let me see", Some(5), Some(700)),
                    "{end}"
                );
            }
        }
    }

    #[tokio::test]
    async fn recovery_requeues_interrupted_jobs_until_the_attempt_limit() {
        for (db, _keep) in each_engine().await {
            let a = queued_job(&db, "a").await;
            let b = queued_job(&db, "b").await;
            let c = queued_job(&db, "c").await;
            db.claim_job(a, &ANY_SLOT).await.unwrap(); // attempt 1
            db.claim_job(b, &ANY_SLOT).await.unwrap(); // attempt 1
            let recovered = db.recover_interrupted(1, Interrupted::All).await.unwrap();
            assert_eq!(recovered.failed, vec![a, b]);
            assert!(db
                .job(a)
                .await
                .unwrap()
                .unwrap()
                .error
                .unwrap()
                .contains("stopped"));
            assert_eq!(db.job(c).await.unwrap().unwrap().status, JobStatus::Queued);

            assert_eq!(
                db.job(a).await.unwrap().unwrap().failure,
                Some(Failure::Interrupted)
            );

            db.claim_job(c, &ANY_SLOT).await.unwrap(); // attempt 1
                                                       // It was waiting to retry after a busy server when the process died.
            let waiting = ProgressWrite {
                run: 1,
                status: JobStatus::Loading,
                progress: &Progress::default(),
                text: "",
                retry_at: Some(1),
                error: Some("Ollama answered HTTP 503: busy"),
                failure: Some(Failure::Busy),
                attempt: 1,
                thinking: "",
                reasoning: None,
            };
            db.write_progress(c, waiting).await.unwrap();
            let recovered = db.recover_interrupted(3, Interrupted::All).await.unwrap();
            assert_eq!(recovered.requeued, vec![c]);
            let row = db.job(c).await.unwrap().unwrap();
            assert_eq!(
                (
                    row.status,
                    row.attempt,
                    row.error,
                    row.failure,
                    row.retry_at
                ),
                (JobStatus::Queued, 1, None, None, None),
                "back in the queue with nothing of the interrupted run"
            );
        }
    }

    #[tokio::test]
    async fn retry_resets_a_failed_job() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            assert!(
                db.retry_job(id, "10.0.0.7").await.unwrap().is_none(),
                "a queued job is not retried"
            );
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            let failed = db
                .fail_job(
                    id,
                    "boom",
                    Failure::BrokeOff,
                    Written {
                        run: Some(1),
                        text: "partial",
                        ..Written::default()
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                failed.failure,
                Some(Failure::BrokeOff),
                "the class is stored"
            );
            let row = db.retry_job(id, "10.0.0.7").await.unwrap().unwrap();
            assert_eq!(
                (
                    row.status,
                    row.attempt,
                    row.error,
                    row.failure,
                    row.partial_text.as_str()
                ),
                (JobStatus::Queued, 0, None, None, "")
            );
            assert_eq!(
                row.client_key.as_deref(),
                Some("10.0.0.7"),
                "the retrier's address"
            );
        }
    }

    #[tokio::test]
    async fn a_job_handed_back_at_shutdown_keeps_its_place_and_its_attempts() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            let queued_at = db.job(id).await.unwrap().unwrap().queued_at;
            assert!(
                db.hand_back_job(id, 1, true).await.unwrap().is_none(),
                "not running"
            );
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            let row = db.hand_back_job(id, 1, true).await.unwrap().unwrap();
            assert_eq!(
                (row.status, row.attempt, row.runs, row.queued_at),
                (JobStatus::Queued, 0, 1, queued_at)
            );
            // A try that broke off partway (the model server died under it) counts.
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            let row = db.hand_back_job(id, 2, false).await.unwrap().unwrap();
            assert_eq!(
                (row.status, row.attempt, row.runs, row.queued_at),
                (JobStatus::Queued, 1, 2, queued_at)
            );
        }
    }

    #[tokio::test]
    async fn a_run_that_is_no_longer_the_jobs_current_one_writes_nothing() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            db.claim_job(id, &ANY_SLOT).await.unwrap();
            db.hand_back_job(id, 1, true).await.unwrap().unwrap();
            db.claim_job(id, &ANY_SLOT).await.unwrap().unwrap();
            let progress = Progress {
                current_tokens: 9,
                ..Default::default()
            };
            let write = |run| ProgressWrite {
                run,
                status: JobStatus::Generating,
                progress: &progress,
                text: "stale",
                retry_at: None,
                error: None,
                failure: None,
                attempt: 1,
                thinking: "",
                reasoning: None,
            };
            db.write_progress(id, write(1)).await.unwrap();
            assert_eq!(db.job(id).await.unwrap().unwrap().partial_text, "");
            let stale = Written {
                run: Some(1),
                text: "stale",
                ..Written::default()
            };
            assert!(db
                .fail_job(id, "late", Failure::BrokeOff, stale)
                .await
                .unwrap()
                .is_none());
            assert!(db
                .cancel_running_job(id, "late", stale)
                .await
                .unwrap()
                .is_none());
            assert!(db.hand_back_job(id, 1, true).await.unwrap().is_none());
            let row = db.job(id).await.unwrap().unwrap();
            assert_eq!(
                (row.status, row.runs),
                (JobStatus::Loading, 2),
                "run 2 untouched"
            );

            db.write_progress(id, write(2)).await.unwrap();
            assert_eq!(db.job(id).await.unwrap().unwrap().partial_text, "stale");
        }
    }
}
