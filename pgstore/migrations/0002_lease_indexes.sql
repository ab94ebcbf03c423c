-- Lease from three small partial indexes instead of one over every unfinished message:
-- with many messages in flight, a single (seq) index over pending, leased and retrying rows
-- made every lease walk past the leased ones (and read their heap rows) before reaching
-- pending work. Now pending work, due retries and expired leases each have an index that
-- holds only their rows.
DROP INDEX messages_unfinished;
CREATE INDEX messages_pending ON messages (seq) WHERE status = 'pending';
CREATE INDEX messages_retry ON messages (next_retry_after) WHERE status = 'temporary_failure';
CREATE INDEX messages_leased ON messages (leased_until) WHERE status = 'leased';
