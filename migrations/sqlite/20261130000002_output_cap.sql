-- The byte cap an answer was cut at (limits.answer_max_bytes when it ran), for a job that
-- completed because its answer reached it: the card says so, distinct from the model's own
-- max length. NULL for every other job, and for those that ended before this column existed.
ALTER TABLE ai_generation_jobs ADD COLUMN cut_at_bytes INTEGER;
