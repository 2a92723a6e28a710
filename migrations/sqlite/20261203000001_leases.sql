-- Several instances share one queue: a running job carries a lease, the instance that runs it
-- (`owner`, its server.instance_id) and until when (`lease_until`, Unix ms), renewed while it
-- runs; any instance gives a job whose lease ran out to the queue again. `stop_requested` is a
-- Stop asked on an instance that does not run the job, kept until its runner hears it. The
-- AI posts per minute are counted here too, over all instances: by author and by address.
ALTER TABLE ai_generation_jobs ADD COLUMN owner TEXT;
ALTER TABLE ai_generation_jobs ADD COLUMN lease_until INTEGER;
ALTER TABLE ai_generation_jobs ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ai_generation_jobs_backend ON ai_generation_jobs (backend, status);
CREATE INDEX ai_generation_jobs_author_recent ON ai_generation_jobs (author_id, created_at);
CREATE INDEX ai_generation_jobs_address_recent ON ai_generation_jobs (client_key, created_at);
