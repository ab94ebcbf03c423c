-- pgstore:no-transaction
-- A lease reads, for each method it handles, pending messages in enqueue order, due retries
-- by retry time and expired leases by expiry: each from an index in exactly that order, so
-- LIMIT stops after the rows it takes, however many retries are due or leases expired, and
-- messages of methods no running replica handles are never read. Built concurrently.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_pending_by_method ON messages (method, seq) WHERE status = 'pending';
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_retry_by_method ON messages (method, next_retry_after) WHERE status = 'temporary_failure';
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_leased_by_method ON messages (method, leased_until) WHERE status = 'leased';
DROP INDEX CONCURRENTLY IF EXISTS messages_pending;
DROP INDEX CONCURRENTLY IF EXISTS messages_retry;
DROP INDEX CONCURRENTLY IF EXISTS messages_leased;

-- The purge of read inbox items, oldest read first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_read ON inbox (read_at) WHERE read_at IS NOT NULL;

-- The inbox broker's poll (behind a transaction pooler, where it cannot listen): items
-- inserted since its last look.
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_seq ON inbox (seq);
