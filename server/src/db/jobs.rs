//! AI generation jobs as stored: the row, and the reads (one job, the unfinished ones, an
//! author's count, the recent lengths behind the estimate). Rows in, rows out: what a card
//! shows is built above this layer; status changes are in `transitions`.
use app::types::{Failure, JobStatus};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Db, DbResult};

/// What [`Db::admission_counts`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionCounts {
    pub author_waiting: u32,
    pub address_waiting: u32,
    /// Queued or running jobs in all.
    pub backlog: u32,
    pub author_recent: u32,
    pub address_recent: u32,
    /// When the first of the author's recent AI posts was made (Unix ms).
    pub author_first: Option<i64>,
    pub address_first: Option<i64>,
}

/// A row of `ai_generation_jobs`. Counts and durations are stored as 64-bit integers on both
/// engines and decoded checked: a negative or oversized value is an error, never a silent zero.
#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: i64,
    pub post_id: i64,
    pub author_id: String,
    /// The client address the job was asked from, as the per-address limits count it
    /// (`ClientKey`'s spelling); `None` for jobs from before it was stored.
    pub client_key: Option<String>,
    /// Whose turns in the fair queue the job waits in (`None`: its author's).
    pub queue_key: Option<String>,
    /// The fair queue's round it waits for (`None`, from before there were rounds: 0).
    pub queue_turn: Option<i64>,
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
    /// The instance that runs (or ran last) the job: its `server.instance_id`.
    pub owner: Option<String>,
    /// Until when (Unix ms) the owner's claim on a running job holds unless renewed.
    pub lease_until: Option<i64>,
    /// A Stop was asked on an instance that does not run the job; its runner ends it.
    pub stop_requested: bool,
}

/// The waiting jobs in the fair queue's order (`queue_turn`, see the migration that adds it),
/// which `jobs::queue::Queue` keeps in memory too.
const FAIR_LINE: &str = "SELECT * FROM ai_generation_jobs WHERE status = $1
      ORDER BY COALESCE(queue_turn, 0), queued_at, id";

/// The fair queue's round for a job entering the queue now: one past the latest unfinished job
/// of its client (`whose`, an SQL condition on a job row), and never before the round being
/// served (the head of the line's, or the highest of the running jobs', whichever is later: a
/// job that cannot start, its servers down, does not hold the rounds back). (`$queued`,
/// `$loading` and `$generating` are the statuses.)
///
/// A client with the cookie is its author: all the author's jobs count, the one asked without
/// the cookie that gave it too. One without the cookie is its address: the jobs asked from there
/// without it count, and those of the authors they made (a post without the cookie gets one). So
/// taking a fresh cookie after each post without one buys no turn, while neither a newcomer's
/// first post (without the cookie) nor a writer with the cookie waits behind the others at
/// their address.
pub(super) fn next_turn(whose: &str, queued: &str, loading: &str, generating: &str) -> String {
    format!(
        "(SELECT MAX(turn) FROM (
            SELECT COALESCE(MIN(COALESCE(queue_turn, 0)), 0) AS turn FROM ai_generation_jobs
             WHERE status = {queued}
            UNION ALL
            SELECT COALESCE(MAX(queue_turn), 0) FROM ai_generation_jobs
             WHERE status IN ({loading}, {generating})
            UNION ALL
            SELECT COALESCE(MAX(queue_turn), 0) + 1 FROM ai_generation_jobs
             WHERE status IN ({queued}, {loading}, {generating}) AND {whose}) AS rounds)"
    )
}

/// Reads a row on either engine: what the derive would write, with each count read as the
/// 64-bit integer both engines store and checked into its Rust type.
impl<'r, R: Row> sqlx::FromRow<'r, R> for JobRow
where
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    JobStatus: Decode<'r, R::Database> + Type<R::Database>,
    Failure: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            post_id: row.try_get("post_id")?,
            author_id: row.try_get("author_id")?,
            client_key: row.try_get("client_key")?,
            queue_key: row.try_get("queue_key")?,
            queue_turn: row.try_get("queue_turn")?,
            status: row.try_get("status")?,
            prompt: row.try_get("prompt")?,
            model: row.try_get("model")?,
            max_tokens: maybe_count(row, "max_tokens")?,
            current_tokens: count(row, "current_tokens")?,
            tokens_per_second: row.try_get("tokens_per_second")?,
            elapsed_time: count(row, "elapsed_time")?,
            estimated_time_remaining: maybe_count(row, "estimated_time_remaining")?,
            percent: row.try_get("percent")?,
            last_update_at: row.try_get("last_update_at")?,
            partial_text: row.try_get("partial_text")?,
            input_tokens: maybe_count(row, "input_tokens")?,
            output_tokens: maybe_count(row, "output_tokens")?,
            total_tokens: maybe_count(row, "total_tokens")?,
            time_to_first_token_ms: maybe_count(row, "time_to_first_token_ms")?,
            load_duration_ns: maybe_count(row, "load_duration_ns")?,
            prompt_eval_duration_ns: maybe_count(row, "prompt_eval_duration_ns")?,
            eval_duration_ns: maybe_count(row, "eval_duration_ns")?,
            total_duration_ns: maybe_count(row, "total_duration_ns")?,
            done_reason: row.try_get("done_reason")?,
            cut_at_bytes: maybe_count(row, "cut_at_bytes")?,
            error: row.try_get("error")?,
            failure: row.try_get("failure")?,
            attempt: count(row, "attempt")?,
            runs: count(row, "runs")?,
            queued_at: row.try_get("queued_at")?,
            retry_at: row.try_get("retry_at")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            backend: row.try_get("backend")?,
            thinking: row.try_get("thinking")?,
            thinking_tokens: maybe_count(row, "thinking_tokens")?,
            thinking_ms: maybe_count(row, "thinking_ms")?,
            owner: row.try_get("owner")?,
            lease_until: row.try_get("lease_until")?,
            stop_requested: row.try_get("stop_requested")?,
        })
    }
}

/// The column `name`, a stored integer, as the unsigned type it counts in.
fn count<'r, R: Row, T: TryFrom<i64>>(row: &'r R, name: &'r str) -> sqlx::Result<T>
where
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let stored: i64 = row.try_get(name)?;
    checked(name, stored)
}

/// [`count`] of a column that may be NULL.
fn maybe_count<'r, R: Row, T: TryFrom<i64>>(row: &'r R, name: &'r str) -> sqlx::Result<Option<T>>
where
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    maybe(name, row.try_get(name)?)
}

/// A stored count in its Rust type, or the column's decode error.
pub(super) fn checked<T: TryFrom<i64>>(column: &str, stored: i64) -> sqlx::Result<T> {
    T::try_from(stored).map_err(|_| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("{stored} is out of range for a count").into(),
    })
}

impl Db {
    pub async fn job(&self, id: i64) -> DbResult<Option<JobRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRow>("SELECT * FROM ai_generation_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    pub async fn job_of_post(&self, post_id: i64) -> DbResult<Option<JobRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRow>(
                "SELECT * FROM ai_generation_jobs WHERE post_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(post_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Every job that is queued or running, in the order of the queue.
    pub async fn unfinished_jobs(&self) -> DbResult<Vec<JobRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRow>(
                "SELECT * FROM ai_generation_jobs WHERE status IN ($1, $2, $3)
                  ORDER BY queued_at, id",
            )
            .bind(JobStatus::Queued)
            .bind(JobStatus::Loading)
            .bind(JobStatus::Generating)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The ids of the jobs queued or running.
    pub async fn unfinished_ids(&self) -> DbResult<std::collections::HashSet<i64>> {
        let ids: Vec<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM ai_generation_jobs WHERE status IN ($1, $2, $3)")
                .bind(JobStatus::Queued)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Generating)
                .fetch_all(pool)
                .await
        })?;
        Ok(ids.into_iter().collect())
    }

    /// The waiting jobs, head of the line first: the fair order every instance dispatches in
    /// and shows positions by.
    pub async fn queued_jobs(&self) -> DbResult<Vec<JobRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRow>(FAIR_LINE)
                .bind(JobStatus::Queued)
                .fetch_all(pool)
                .await
        })?)
    }

    /// What the admission of one more AI post counts, all in the database, where every
    /// instance's jobs are: the queued or running jobs of this author, of this client address
    /// (`ClientKey`'s spelling, whoever's) and in all, and the AI posts each made since
    /// `since` (Unix ms), with the time of the first of them.
    pub async fn admission_counts(
        &self,
        author_id: &str,
        client_key: &str,
        since: i64,
    ) -> DbResult<AdmissionCounts> {
        let row: (i64, i64, i64, i64, Option<i64>, Option<i64>, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE author_id = $1 AND status IN ($3, $4, $5)),
                        COUNT(*) FILTER (WHERE client_key = $2 AND status IN ($3, $4, $5)),
                        COUNT(*) FILTER (WHERE author_id = $1 AND created_at > $6),
                        COUNT(*) FILTER (WHERE client_key = $2 AND created_at > $6),
                        MIN(created_at) FILTER (WHERE author_id = $1 AND created_at > $6),
                        MIN(created_at) FILTER (WHERE client_key = $2 AND created_at > $6),
                        (SELECT COUNT(*) FROM ai_generation_jobs WHERE status IN ($3, $4, $5))
                   FROM ai_generation_jobs
                  WHERE (author_id = $1 OR client_key = $2)
                    AND (status IN ($3, $4, $5) OR created_at > $6)",
            )
            .bind(author_id)
            .bind(client_key)
            .bind(JobStatus::Queued)
            .bind(JobStatus::Loading)
            .bind(JobStatus::Generating)
            .bind(since)
            .fetch_one(pool)
            .await
        })?;
        let (author, address, author_recent, address_recent, author_first, address_first, all) =
            row;
        Ok(AdmissionCounts {
            author_waiting: checked("count", author)?,
            address_waiting: checked("count", address)?,
            backlog: checked("count", all)?,
            author_recent: checked("count", author_recent)?,
            address_recent: checked("count", address_recent)?,
            author_first,
            address_first,
        })
    }

    /// How many jobs are in each status (for `/metrics`).
    pub async fn job_counts(&self) -> DbResult<Vec<(JobStatus, i64)>> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT status, COUNT(*) FROM ai_generation_jobs GROUP BY status"
        )
        .fetch_all(pool)
        .await)?)
    }

    /// What the model's most recent completed jobs did, newest first: the history behind
    /// the time estimates.
    pub async fn recent_runs(&self, model: &str, limit: u32) -> DbResult<Vec<PastRun>> {
        type Columns = (
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Columns> = on_pool!(self, |pool| {
            sqlx::query_as(
                // Everything it wrote: a thinking model's reasoning takes its time as the answer
                // does.
                "SELECT backend, output_tokens + COALESCE(thinking_tokens, 0), eval_duration_ns,
                        load_duration_ns, input_tokens, prompt_eval_duration_ns,
                        time_to_first_token_ms
                   FROM ai_generation_jobs
                  WHERE model = $1 AND status = $3 AND output_tokens IS NOT NULL
                  ORDER BY finished_at DESC LIMIT $2",
            )
            .bind(model)
            .bind(i64::from(limit))
            .bind(JobStatus::Completed)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(backend, written, eval, load, input, prompt, ttft)| {
                Ok(PastRun {
                    backend,
                    written: checked("output_tokens", written)?,
                    eval_ns: maybe("eval_duration_ns", eval)?,
                    load_ns: maybe("load_duration_ns", load)?,
                    input_tokens: maybe("input_tokens", input)?,
                    prompt_ns: maybe("prompt_eval_duration_ns", prompt)?,
                    first_token_ms: maybe("time_to_first_token_ms", ttft)?,
                })
            })
            .collect::<sqlx::Result<_>>()?)
    }
}

/// [`checked`] of a value that may be NULL.
fn maybe<T: TryFrom<i64>>(column: &str, stored: Option<i64>) -> sqlx::Result<Option<T>> {
    stored.map(|v| checked(column, v)).transpose()
}

/// One completed job, as the time estimates learn from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PastRun {
    /// The model server that ran it.
    pub backend: Option<String>,
    /// Tokens written, reasoning and answer.
    pub written: u32,
    /// Time spent writing, as the model server reported it.
    pub eval_ns: Option<u64>,
    /// Time spent loading the model (long when it was not in memory).
    pub load_ns: Option<u64>,
    pub input_tokens: Option<u32>,
    /// Time spent reading the prompt.
    pub prompt_ns: Option<u64>,
    /// From the request to the first token, as measured here.
    pub first_token_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use app::types::{Failure, JobStatus, PostKind};

    use crate::db::{
        testing::{each_engine, queued_job, sqlite, temp_db},
        Db,
    };

    /// A job of `key`'s, queued now: its id and round.
    async fn post_as(db: &Db, key: &str) -> (i64, i64) {
        post_from(db, key, key, "198.51.100.7").await
    }

    /// A job of `author`'s in `key`'s turns, asked from `address`, queued now: its id and round.
    async fn post_from(db: &Db, author: &str, key: &str, address: &str) -> (i64, i64) {
        let new = crate::db::NewAiPostRow {
            author_id: author,
            author_name: author,
            prompt: "p",
            model: "m",
            max_tokens: None,
            client_key: Some(address),
            queue_key: key,
        };
        let job = db.insert_ai_post(new).await.unwrap().job.unwrap();
        (job.id, job.queue_turn.unwrap())
    }

    #[tokio::test]
    async fn taking_a_fresh_cookie_after_each_post_without_one_buys_no_turn() {
        for (db, _keep) in each_engine().await {
            let here = "192.0.2.1";
            let bare = format!("{}{here}", crate::db::ADDRESS_KEY);
            // Each post without the cookie makes an author, whose cookie the next post uses.
            let mut rounds = Vec::new();
            for made in ["c1", "c2"] {
                rounds.push(post_from(&db, made, &bare, here).await.1);
                rounds.push(post_from(&db, made, made, here).await.1);
            }
            assert_eq!(rounds, [1, 2, 3, 4], "one client, one turn after another");
            // Ann, at the same address with her cookie, has two posts waiting: a newcomer's
            // first post there does not wait behind them.
            let office = "203.0.113.9";
            post_from(&db, "ann", "ann", office).await;
            assert_eq!(post_from(&db, "ann", "ann", office).await.1, 2);
            let newcomer = format!("{}{office}", crate::db::ADDRESS_KEY);
            assert_eq!(post_from(&db, "carl", &newcomer, office).await.1, 1);
        }
    }

    #[tokio::test]
    async fn rounds_follow_each_client_and_never_fall_behind_the_one_being_served() {
        for (db, _keep) in each_engine().await {
            let mut ann = Vec::new();
            for _ in 0..3 {
                ann.push(post_as(&db, "ann").await);
            }
            assert_eq!(ann.iter().map(|j| j.1).collect::<Vec<_>>(), [1, 2, 3]);
            let (bob, bob_round) = post_as(&db, "bob").await;
            assert_eq!(bob_round, 1, "a newcomer goes in the head's round");
            let line: Vec<i64> = db
                .queued_jobs()
                .await
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect();
            assert_eq!(line, [ann[0].0, bob, ann[1].0, ann[2].0]);
            // Ann's three run (round 3 is being served) and Bob's ended: his next is not
            // sent back to round 2, behind what already ran.
            for (id, _) in &ann {
                edit(&db, "SET status = 'generating'", *id).await;
            }
            edit(&db, "SET status = 'completed'", bob).await;
            assert_eq!(post_as(&db, "bob").await.1, 3);
            assert_eq!(post_as(&db, "ann").await.1, 4, "one past her latest");
        }
    }

    #[tokio::test]
    async fn a_failure_class_written_by_a_newer_release_reads_as_other() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            edit(&db, "SET status = 'failed', failure = 'quota'", id).await;
            let row = db.job(id).await.unwrap().unwrap();
            assert_eq!(row.failure, Some(Failure::Other), "the row still reads");
        }
    }

    /// Changes job `id` by hand: `UPDATE ai_generation_jobs {set} WHERE id = $1`.
    async fn edit(db: &Db, set: &str, id: i64) {
        let sql = format!("UPDATE ai_generation_jobs {set} WHERE id = $1");
        on_pool!(db, |pool| sqlx::query(&sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap();
    }

    /// `value` as the database spells it when it is bound to a query.
    async fn spelled<T>(db: &Db, value: T) -> String
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        T: Send,
    {
        on_pool!(db, |pool| sqlx::query_scalar("SELECT $1")
            .bind(value)
            .fetch_one(pool)
            .await)
        .unwrap()
    }

    #[tokio::test]
    async fn the_database_spells_statuses_and_kinds_as_the_wire_and_the_schema_do() {
        for (db, _keep) in each_engine().await {
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
    }

    #[tokio::test]
    async fn an_unknown_status_or_a_negative_count_is_an_error_not_a_default() {
        let (db, _dir) = temp_db().await;
        let id = queued_job(&db, "a").await;
        // What an older or newer release, or a hand edit, could leave behind.
        let mut conn = sqlite(&db).acquire().await.unwrap();
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

    #[tokio::test]
    async fn a_negative_count_is_an_error_on_either_engine() {
        for (db, _keep) in each_engine().await {
            let id = queued_job(&db, "a").await;
            edit(&db, "SET runs = -3", id).await;
            let error = db.job(id).await.unwrap_err();
            assert!(error.is_corrupt(), "not worth retrying: {error}");
            assert!(error.to_string().contains("runs"), "{error}");
        }
    }
}
