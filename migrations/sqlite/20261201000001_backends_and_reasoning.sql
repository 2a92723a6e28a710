-- Generation backends and reasoning (issue 12).
-- The model server (by its configured name) that ran the job last; NULL for jobs from before
-- there were several, which all ran on the one Ollama.
ALTER TABLE ai_generation_jobs ADD COLUMN backend TEXT;
-- A thinking model's reasoning, kept apart from the answer (partial_text), with how many
-- chunks of it streamed and how long it took (ms, from its first chunk to the answer's first
-- token). Empty / NULL for a job that did not reason, and for every job from before.
ALTER TABLE ai_generation_jobs ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
ALTER TABLE ai_generation_jobs ADD COLUMN thinking_tokens INTEGER;
ALTER TABLE ai_generation_jobs ADD COLUMN thinking_ms BIGINT;
