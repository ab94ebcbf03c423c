-- pgstore:no-transaction
-- Lease from three small partial indexes instead of one over every unfinished message:
-- with many messages in flight, a single (seq) index over pending, leased and retrying rows
-- made every lease walk past the leased ones (and read their heap rows) before reaching
-- pending work. Built concurrently, so running replicas keep writing.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_pending ON messages (seq) WHERE status = 'pending';
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_retry ON messages (next_retry_after) WHERE status = 'temporary_failure';
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_leased ON messages (leased_until) WHERE status = 'leased';
DROP INDEX CONCURRENTLY IF EXISTS messages_unfinished;

-- Dedupe keys are hex digests: compare them bytewise, not with the database's collation
-- (strcoll on every index insert and probe). A unique index with the "C" collation replaces
-- the column's unique constraint (changing the column's collation would rebuild the index
-- under an exclusive lock).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_dedupe_key_c ON messages (dedupe_key COLLATE "C");
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_dedupe_key_key;

-- Every status change rewrites each index entry of the row (the status is in partial index
-- predicates, so updates are never HOT). The per-user listing index cost two index inserts
-- per message for an admin query; AdminStore.Messages filtered by user now scans.
DROP INDEX CONCURRENTLY IF EXISTS messages_user;
