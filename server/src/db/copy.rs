//! `aiwall migrate-to`: copies a SQLite wall (posts, jobs with their history and statistics,
//! settings) into an empty PostgreSQL database, ids kept, in one transaction.
use sqlx::{PgPool, Postgres, QueryBuilder, SqlitePool};

use super::{
    engine::shown, jobs::JobRow, posts::PostRow, storable, to_db_int, Db, DbError, DbResult,
    Engine, Pool,
};

/// Rows per INSERT: PostgreSQL takes at most 65,535 parameters in one statement, and a job has
/// 38 columns.
const BATCH: usize = 500;

/// What a copy moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub posts: usize,
    pub jobs: usize,
    pub settings: usize,
}

/// The key the cookie key had in `settings` before it moved to its own file (issue 10).
const OLD_KEY_SETTING: &str = "cookie_key";

/// Copies the SQLite wall at `from` into the empty PostgreSQL database at `to`. Both are
/// locked meanwhile, so no server runs on either; both are migrated first.
pub async fn migrate_to(from: &str, to: &str) -> DbResult<Copied> {
    if Engine::of(from)? != Engine::Sqlite {
        return Err(DbError::Unavailable(format!(
            "database.url is {}: migrate-to copies a SQLite wall (sqlite://FILE) into PostgreSQL",
            shown(from)
        )));
    }
    if Engine::of(to)? != Engine::Postgres {
        return Err(DbError::Unavailable(format!(
            "{} is not a PostgreSQL database: give postgres://USER@HOST/DATABASE",
            shown(to)
        )));
    }
    match super::database_file(from)? {
        Some(file) if file.is_file() => {}
        Some(file) => {
            return Err(DbError::Unavailable(format!(
                "there is no SQLite wall at {} (database.url is {}): run migrate-to where the \
                 wall runs, with its settings",
                file.display(),
                shown(from)
            )))
        }
        None => {
            return Err(DbError::Unavailable(
                "database.url names an in-memory database: there is no wall to copy".into(),
            ))
        }
    }
    // The target first: a refusal there leaves the SQLite file untouched (opening it migrates it).
    let target = Db::connect(to, 2).await?;
    let Pool::Postgres(target_pool) = &target.pool else {
        unreachable!("the engine was checked above");
    };
    let used: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM posts) OR EXISTS (SELECT 1 FROM ai_generation_jobs)
             OR EXISTS (SELECT 1 FROM settings)",
    )
    .fetch_one(target_pool)
    .await?;
    if used {
        return Err(DbError::Unavailable(format!(
            "{} is not empty: migrate-to copies into a new, empty database only, so that \
             nothing there is overwritten or mixed",
            shown(to)
        )));
    }
    let source = Db::connect(from, 2).await?;
    let (Pool::Sqlite(source), Pool::Postgres(target)) = (&source.pool, &target.pool) else {
        unreachable!("the engines were checked above");
    };
    let old_key: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(OLD_KEY_SETTING)
        .fetch_optional(source)
        .await?;
    if old_key.is_some() {
        return Err(DbError::Unavailable(
            "this wall still keeps its cookie key in the database, as releases before issue 10 \
             did: start this release on it once (which moves the key to its file), stop it, \
             and run migrate-to again"
                .into(),
        ));
    }
    copy(source, target).await
}

/// Copies page by page (by id, `BATCH` rows at a time), so that a wall larger than memory
/// moves too, all in one transaction on the target.
async fn copy(source: &SqlitePool, target: &PgPool) -> DbResult<Copied> {
    let mut copied = Copied::default();
    let mut tx = target.begin().await?;
    let page = i64::try_from(BATCH).unwrap_or(i64::MAX);
    let mut after = i64::MIN;
    loop {
        let posts: Vec<PostRow> =
            sqlx::query_as("SELECT * FROM posts WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(page)
                .fetch_all(source)
                .await?;
        let Some(last) = posts.last() else { break };
        after = last.id;
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO posts (id, author_id, author_name, kind, text, prompt, created_at) ",
        );
        insert.push_values(&posts, |mut row, p| {
            row.push_bind(p.id)
                .push_bind(&p.author_id)
                .push_bind(&p.author_name)
                .push_bind(p.kind)
                .push_bind(storable(&p.text))
                .push_bind(p.prompt.as_deref().map(storable))
                .push_bind(p.created_at);
        });
        insert.build().execute(&mut *tx).await?;
        copied.posts += posts.len();
    }
    after = i64::MIN;
    loop {
        let jobs: Vec<JobRow> =
            sqlx::query_as("SELECT * FROM ai_generation_jobs WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(page)
                .fetch_all(source)
                .await?;
        let Some(last) = jobs.last() else { break };
        after = last.id;
        insert_jobs(&jobs)?.build().execute(&mut *tx).await?;
        copied.jobs += jobs.len();
    }
    let settings: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM settings")
        .fetch_all(source)
        .await?;
    for (key, value) in &settings {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    copied.settings = settings.len();
    // The identities continue where SQLite's would have: after the highest id it ever gave
    // (AUTOINCREMENT keeps it in sqlite_sequence), so that the id of a deleted post or job is
    // never given again.
    for table in ["posts", "ai_generation_jobs"] {
        let given: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = $1")
                .bind(table)
                .fetch_optional(source)
                .await?;
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                           GREATEST($1, COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1, false)"
        ))
        .bind(given.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(copied)
}

/// One INSERT of `batch`, every column of the job table.
fn insert_jobs(batch: &[JobRow]) -> DbResult<QueryBuilder<'_, Postgres>> {
    let wide = |v: Option<u64>| v.map(to_db_int).transpose();
    let mut rows = Vec::with_capacity(batch.len());
    for j in batch {
        rows.push((
            j,
            to_db_int(j.elapsed_time)?,
            wide(j.estimated_time_remaining)?,
            [
                wide(j.time_to_first_token_ms)?,
                wide(j.load_duration_ns)?,
                wide(j.prompt_eval_duration_ns)?,
                wide(j.eval_duration_ns)?,
                wide(j.total_duration_ns)?,
                wide(j.thinking_ms)?,
            ],
        ));
    }
    let mut insert = QueryBuilder::<Postgres>::new(
        "INSERT INTO ai_generation_jobs (id, post_id, author_id, client_key, status, prompt, \
         model, max_tokens, current_tokens, tokens_per_second, elapsed_time, \
         estimated_time_remaining, percent, last_update_at, partial_text, input_tokens, \
         output_tokens, total_tokens, time_to_first_token_ms, load_duration_ns, \
         prompt_eval_duration_ns, eval_duration_ns, total_duration_ns, done_reason, \
         cut_at_bytes, error, failure, attempt, runs, queued_at, retry_at, created_at, \
         started_at, finished_at, backend, thinking, thinking_tokens, thinking_ms, queue_key, \
         queue_turn) ",
    );
    let count = |n: Option<u32>| n.map(i64::from);
    insert.push_values(rows, |mut row, (j, elapsed, remaining, durations)| {
        let [first_token, load, prompt_eval, eval, total, thinking_ms] = durations;
        row.push_bind(j.id)
            .push_bind(j.post_id)
            .push_bind(&j.author_id)
            .push_bind(&j.client_key)
            .push_bind(j.status)
            .push_bind(storable(&j.prompt))
            .push_bind(&j.model)
            .push_bind(count(j.max_tokens))
            .push_bind(i64::from(j.current_tokens))
            .push_bind(j.tokens_per_second)
            .push_bind(elapsed)
            .push_bind(remaining)
            .push_bind(j.percent)
            .push_bind(j.last_update_at)
            .push_bind(storable(&j.partial_text))
            .push_bind(count(j.input_tokens))
            .push_bind(count(j.output_tokens))
            .push_bind(count(j.total_tokens))
            .push_bind(first_token)
            .push_bind(load)
            .push_bind(prompt_eval)
            .push_bind(eval)
            .push_bind(total)
            .push_bind(j.done_reason.as_deref().map(storable))
            .push_bind(count(j.cut_at_bytes))
            .push_bind(j.error.as_deref().map(storable))
            .push_bind(j.failure)
            .push_bind(i64::from(j.attempt))
            .push_bind(i64::from(j.runs))
            .push_bind(j.queued_at)
            .push_bind(j.retry_at)
            .push_bind(j.created_at)
            .push_bind(j.started_at)
            .push_bind(j.finished_at)
            .push_bind(&j.backend)
            .push_bind(storable(&j.thinking))
            .push_bind(count(j.thinking_tokens))
            .push_bind(thinking_ms)
            .push_bind(&j.queue_key)
            .push_bind(j.queue_turn);
    });
    Ok(insert)
}

#[cfg(test)]
mod tests {
    use crate::db::{scratch::ScratchDb, testing::queued_job, Db};

    #[tokio::test]
    async fn a_wall_of_several_pages_moves_whole_and_new_ids_follow() {
        let dir = tempfile::tempdir().unwrap();
        let from = format!("sqlite://{}", dir.path().join("wall.db").display());
        let source = Db::connect(&from, 2).await.unwrap();
        for i in 0..super::BATCH * 2 + 7 {
            source
                .insert_text_post("a", "Ann", &format!("post {i}"))
                .await
                .unwrap();
        }
        let job = queued_job(&source, "the last one").await;
        // The newest post, deleted: its id is never given again.
        let gone = source
            .insert_text_post("a", "Ann", "deleted")
            .await
            .unwrap();
        assert!(source.delete_post(gone.id).await.unwrap());
        source.close().await;
        drop(source);

        let scratch = ScratchDb::create().await;
        let copied = super::migrate_to(&from, &scratch.url).await.unwrap();
        assert_eq!((copied.posts, copied.jobs), (super::BATCH * 2 + 8, 1));

        let target = Db::connect(&scratch.url, 2).await.unwrap();
        let newest = target.list_posts(None, 3).await.unwrap();
        assert_eq!(newest[0].job.as_ref().map(|j| j.id), Some(job));
        assert_eq!(
            newest[1].post.text,
            format!("post {}", super::BATCH * 2 + 6)
        );
        let next = target.insert_text_post("b", "Bo", "after").await.unwrap();
        assert_eq!(next.id, gone.id + 1, "not the deleted post's id");
        target.close().await;
        drop(target);
        let again = super::migrate_to(&from, &scratch.url).await.unwrap_err();
        assert!(again.to_string().contains("is not empty"), "{again}");

        let typo = format!("sqlite://{}", dir.path().join("typo.db").display());
        let none = super::migrate_to(&typo, &scratch.url).await.unwrap_err();
        assert!(
            none.to_string().contains("there is no SQLite wall at"),
            "{none}"
        );
        assert!(!dir.path().join("typo.db").exists(), "nothing made");
    }
}
