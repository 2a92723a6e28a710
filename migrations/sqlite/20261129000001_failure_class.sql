-- Why a job failed (or waits to retry) as a class, beside the technical detail in `error`:
-- the card says it in plain words. Spelled as app::types::Failure; NULL for jobs that did not
-- fail and for those that failed before this column existed.
ALTER TABLE ai_generation_jobs ADD COLUMN failure TEXT;
