-- Lease from three small partial indexes instead of one over every unfinished message:
-- with many messages in flight, a single (seq) index over pending, leased and retrying rows
-- made every lease walk past the leased ones (and read their heap rows) before reaching
-- pending work. Now pending work, due retries and expired leases each have an index that
-- holds only their rows.
DROP INDEX messages_unfinished;
CREATE INDEX messages_pending ON messages (seq) WHERE status = 'pending';
CREATE INDEX messages_retry ON messages (next_retry_after) WHERE status = 'temporary_failure';
CREATE INDEX messages_leased ON messages (leased_until) WHERE status = 'leased';

-- Dedupe keys are hex digests: compare them bytewise, not with the database's collation
-- (strcoll on every index insert and probe).
ALTER TABLE messages ALTER COLUMN dedupe_key TYPE text COLLATE "C";

-- Every status change rewrites each index entry of the row (the status is in partial index
-- predicates, so updates are never HOT). The per-user listing index cost two index inserts
-- per message for an admin query; AdminStore.Messages filtered by user now scans.
DROP INDEX messages_user;
