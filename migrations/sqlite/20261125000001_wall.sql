-- The wall: posts, the AI generation jobs behind AI posts, and the server's own settings.
-- Written to port to PostgreSQL: times are BIGINT Unix milliseconds, no SQLite-only types.

CREATE TABLE posts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id   TEXT    NOT NULL,
    author_name TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('text', 'ai')),
    text        TEXT    NOT NULL DEFAULT '',
    prompt      TEXT,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE ai_generation_jobs (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id                  BIGINT  NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id                TEXT    NOT NULL,
    status                   TEXT    NOT NULL CHECK (status IN
                                 ('queued', 'loading', 'generating', 'completed', 'failed', 'cancelled')),
    prompt                   TEXT    NOT NULL,
    model                    TEXT    NOT NULL,
    max_tokens               INTEGER,
    -- the seed's live progress fields
    current_tokens           INTEGER NOT NULL DEFAULT 0,
    tokens_per_second        DOUBLE PRECISION NOT NULL DEFAULT 0,
    elapsed_time             BIGINT  NOT NULL DEFAULT 0,
    estimated_time_remaining BIGINT,
    percent                  DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_update_at           BIGINT  NOT NULL,
    partial_text             TEXT    NOT NULL DEFAULT '',
    -- final statistics (Ollama's durations in nanoseconds)
    input_tokens             INTEGER,
    output_tokens            INTEGER,
    total_tokens             INTEGER,
    time_to_first_token_ms   BIGINT,
    load_duration_ns         BIGINT,
    prompt_eval_duration_ns  BIGINT,
    eval_duration_ns         BIGINT,
    total_duration_ns        BIGINT,
    done_reason              TEXT,
    error                    TEXT,
    -- tries in the current life of the job (reset by Retry), bounded by jobs.max_attempts
    attempt                  INTEGER NOT NULL DEFAULT 0,
    -- claims in all, never reset: tells one run's text from another's
    runs                     INTEGER NOT NULL DEFAULT 0,
    -- the place in line: FIFO by this, then id; set again when a job re-enters the queue
    queued_at                BIGINT  NOT NULL,
    retry_at                 BIGINT,
    created_at               BIGINT  NOT NULL,
    started_at               BIGINT,
    finished_at              BIGINT
);

CREATE INDEX ai_generation_jobs_queue ON ai_generation_jobs (status, queued_at, id);
CREATE INDEX ai_generation_jobs_post ON ai_generation_jobs (post_id);
CREATE INDEX ai_generation_jobs_model_done ON ai_generation_jobs (model, status, finished_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
