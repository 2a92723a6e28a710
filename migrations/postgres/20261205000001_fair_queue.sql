-- The fair queue serves its clients in turn. `queue_key` is whose turns a job waits in: the
-- author when the post came with the author's cookie, else 'address:' and the client's address
-- group (ClientKey's spelling), so that a client dropping its cookie gains no turns.
-- `queue_turn` is the round the job waits for, set as it enters the queue: one past the
-- key's latest unfinished job, but never before the round being served (the head of the line's
-- or the running jobs' highest). The line is ordered by queue_turn, then queued_at, then id.
-- Jobs from before these columns read as their author's, in round 0 (first).
ALTER TABLE ai_generation_jobs ADD COLUMN queue_key TEXT;
ALTER TABLE ai_generation_jobs ADD COLUMN queue_turn BIGINT;
