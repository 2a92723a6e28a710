-- The client address a job was asked from, as the per-address limits count it (an IPv4 address,
-- or an IPv6 /64 written `2001:db8:1:2::/64`): the queue cap per address is counted from here, so
-- that several instances sharing the database count the same jobs. NULL for jobs from before.
ALTER TABLE ai_generation_jobs ADD COLUMN client_key TEXT;
CREATE INDEX ai_generation_jobs_client_key ON ai_generation_jobs (client_key, status);
