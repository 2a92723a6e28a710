//! Posts: creating them (an AI post together with its job, in one transaction), reading the
//! wall page by page, and deleting.
use std::collections::HashMap;

use app::types::{JobStatus, PostKind};
use sqlx::QueryBuilder;

use crate::metrics;

use super::{jobs::JobRow, now_ms, Begin as _, Db, DbResult};

/// A row of `posts`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PostRow {
    pub id: i64,
    pub author_id: String,
    pub author_name: String,
    pub kind: PostKind,
    pub text: String,
    pub prompt: Option<String>,
    pub created_at: i64,
}

/// A post and, for an AI post, its job.
#[derive(Clone, Debug)]
pub struct PostWithJob {
    pub post: PostRow,
    pub job: Option<JobRow>,
}

/// How a queue key made of a client's address group begins (the rest is `ClientKey`'s
/// spelling); any other key is an author's.
pub const ADDRESS_KEY: &str = "address:";

/// What the data layer needs to create an AI post and its job.
#[derive(Clone, Debug)]
pub struct NewAiPostRow<'a> {
    pub author_id: &'a str,
    pub author_name: &'a str,
    pub prompt: &'a str,
    pub model: &'a str,
    pub max_tokens: Option<u32>,
    /// Where it was asked from (`ClientKey`'s spelling), stored on the job for the per-address
    /// queue limit.
    pub client_key: Option<&'a str>,
    /// Whose turns it waits in, in the fair queue: the author when the post came with the
    /// cookie, else `address:` and the client's address group.
    pub queue_key: &'a str,
}

impl Db {
    pub async fn insert_text_post(
        &self,
        author_id: &str,
        author_name: &str,
        text: &str,
    ) -> DbResult<PostRow> {
        metrics::db_write("text_post");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, PostRow>(
                "INSERT INTO posts (author_id, author_name, kind, text, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING *",
            )
            .bind(author_id)
            .bind(author_name)
            .bind(PostKind::Text)
            .bind(text)
            .bind(now_ms())
            .fetch_one(pool)
            .await
        })?)
    }

    /// Stores the post and its queued job in one transaction: both or neither.
    pub async fn insert_ai_post(&self, new: NewAiPostRow<'_>) -> DbResult<PostWithJob> {
        metrics::db_write("ai_post");
        let now = now_ms();
        let (post, job) = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let post = sqlx::query_as::<_, PostRow>(
                "INSERT INTO posts (author_id, author_name, kind, text, prompt, created_at)
                 VALUES ($1, $2, $5, '', $3, $4) RETURNING *",
            )
            .bind(new.author_id)
            .bind(new.author_name)
            .bind(new.prompt)
            .bind(now)
            .bind(PostKind::Ai)
            .fetch_one(&mut *tx)
            .await?;
            // $2 is the author, $9 the client's key in the queue (see `next_turn`).
            let whose = if new.queue_key.starts_with(ADDRESS_KEY) {
                "(COALESCE(queue_key, author_id) = $9 OR author_id IN (
                    SELECT author_id FROM ai_generation_jobs
                     WHERE queue_key = $9 AND status IN ($3, $10, $11)))"
            } else {
                "author_id = $2"
            };
            let insert = format!(
                "INSERT INTO ai_generation_jobs
                     (post_id, author_id, client_key, status, prompt, model, max_tokens,
                      last_update_at, created_at, queued_at, queue_key, queue_turn)
                 VALUES ($1, $2, $8, $3, $4, $5, $6, $7, $7, $7, $9, {}) RETURNING *",
                super::jobs::next_turn(whose, "$3", "$10", "$11")
            );
            let job = sqlx::query_as::<_, JobRow>(&insert)
                .bind(post.id)
                .bind(new.author_id)
                .bind(JobStatus::Queued)
                .bind(new.prompt)
                .bind(new.model)
                .bind(new.max_tokens.map(i64::from))
                .bind(now)
                .bind(new.client_key)
                .bind(new.queue_key)
                .bind(JobStatus::Loading)
                .bind(JobStatus::Generating)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            (post, job)
        });
        Ok(PostWithJob {
            post,
            job: Some(job),
        })
    }

    /// Up to `limit` posts older than `before` (all when `None`), newest first, with their jobs.
    pub async fn list_posts(&self, before: Option<i64>, limit: u32) -> DbResult<Vec<PostWithJob>> {
        let (posts, page_jobs) = on_pool!(self, |pool| {
            let posts = sqlx::query_as::<_, PostRow>(
                "SELECT * FROM posts WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            // The page's jobs in one query, not one per post: every wall stream starts with a
            // page.
            let ai_posts: Vec<i64> = posts
                .iter()
                .filter(|p| p.kind == PostKind::Ai)
                .map(|p| p.id)
                .collect();
            let mut jobs = Vec::new();
            if !ai_posts.is_empty() {
                let mut query =
                    QueryBuilder::new("SELECT * FROM ai_generation_jobs WHERE post_id IN (");
                let mut ids = query.separated(", ");
                for id in &ai_posts {
                    ids.push_bind(*id);
                }
                query.push(") ORDER BY id");
                jobs = query.build_query_as::<JobRow>().fetch_all(pool).await?;
            }
            (posts, jobs)
        });
        // Ordered by id, so a post's newest job is the one that stays.
        let mut jobs: HashMap<i64, JobRow> =
            page_jobs.into_iter().map(|j| (j.post_id, j)).collect();
        Ok(posts
            .into_iter()
            .map(|post| PostWithJob {
                job: jobs.remove(&post.id),
                post,
            })
            .collect())
    }

    pub async fn post(&self, id: i64) -> DbResult<Option<PostWithJob>> {
        let post = on_pool!(self, |pool| {
            sqlx::query_as::<_, PostRow>("SELECT * FROM posts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        let Some(post) = post else {
            return Ok(None);
        };
        let job = self.job_of_post(post.id).await?;
        Ok(Some(PostWithJob { post, job }))
    }

    /// Deletes a post and (by cascade) its job. Returns whether there was one.
    pub async fn delete_post(&self, id: i64) -> DbResult<bool> {
        metrics::db_write("delete");
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM posts WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::db::testing::{each_engine, sqlite};

    #[tokio::test]
    async fn posts_come_back_newest_first_in_pages() {
        for (db, _keep) in each_engine().await {
            for i in 0..5 {
                db.insert_text_post("a1", "Ann", &format!("post {i}"))
                    .await
                    .unwrap();
            }
            let first = db.list_posts(None, 2).await.unwrap();
            let texts: Vec<_> = first.iter().map(|p| p.post.text.as_str()).collect();
            assert_eq!(texts, ["post 4", "post 3"]);
            let next = db.list_posts(Some(first[1].post.id), 10).await.unwrap();
            let texts: Vec<_> = next.iter().map(|p| p.post.text.as_str()).collect();
            assert_eq!(texts, ["post 2", "post 1", "post 0"]);
        }
    }

    #[tokio::test]
    async fn an_ai_post_is_stored_with_its_queued_job() {
        for (db, _keep) in each_engine().await {
            let created = db
                .insert_ai_post(super::NewAiPostRow {
                    author_id: "a1",
                    author_name: "Ann",
                    prompt: "Why is the sky blue?",
                    model: "llama3.2:1b",
                    max_tokens: Some(100),
                    client_key: None,
                    queue_key: "a1",
                })
                .await
                .unwrap();
            let job = created.job.unwrap();
            assert_eq!(job.status, app::types::JobStatus::Queued);
            assert_eq!(job.post_id, created.post.id);
            assert_eq!(job.max_tokens, Some(100));
            let listed = db.list_posts(None, 10).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].job.as_ref().unwrap().id, job.id);
            assert_eq!(
                listed[0].post.prompt.as_deref(),
                Some("Why is the sky blue?")
            );
        }
    }

    #[tokio::test]
    async fn a_page_mixing_text_and_ai_posts_carries_each_ai_posts_own_job() {
        for (db, _keep) in each_engine().await {
            let mut expected = Vec::new();
            for i in 0..4 {
                if i % 2 == 0 {
                    let p = db.insert_text_post("a1", "Ann", "text").await.unwrap();
                    expected.push((p.id, None));
                } else {
                    let new = super::NewAiPostRow {
                        author_id: "a1",
                        author_name: "Ann",
                        prompt: "p",
                        model: "m",
                        max_tokens: None,
                        client_key: None,
                        queue_key: "a1",
                    };
                    let created = db.insert_ai_post(new).await.unwrap();
                    expected.push((created.post.id, Some(created.job.unwrap().id)));
                }
            }
            expected.reverse();
            let listed: Vec<_> = db
                .list_posts(None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.post.id, p.job.map(|j| j.id)))
                .collect();
            assert_eq!(listed, expected);
        }
    }

    #[tokio::test]
    async fn deleting_a_post_deletes_its_job() {
        for (db, _keep) in each_engine().await {
            let created = db
                .insert_ai_post(super::NewAiPostRow {
                    author_id: "a1",
                    author_name: "Ann",
                    prompt: "p",
                    model: "m",
                    max_tokens: None,
                    client_key: None,
                    queue_key: "a1",
                })
                .await
                .unwrap();
            assert!(db.delete_post(created.post.id).await.unwrap());
            assert!(db.job(created.job.unwrap().id).await.unwrap().is_none());
            assert!(!db.delete_post(created.post.id).await.unwrap());
        }
    }

    #[tokio::test]
    async fn the_database_file_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wall.db").display());
        let db = crate::db::Db::connect(&url, 2).await.unwrap();
        db.insert_text_post("a1", "Ann", "hello").await.unwrap();
        db.close().await;
        // The last handle gone, the file's lock goes too.
        drop(db);
        let again = crate::db::Db::connect(&url, 2).await.unwrap();
        assert_eq!(
            again.list_posts(None, 10).await.unwrap()[0].post.text,
            "hello"
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(sqlite(&again))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
