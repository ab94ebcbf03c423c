-- pgstore:no-transaction
-- Host API v1, the indexes (built concurrently: enqueues, leases and result writes go on).

-- The status check of 0005, validated under a lock that does not block writes.
ALTER TABLE messages VALIDATE CONSTRAINT messages_status_check;

-- Operator search (OperatorStore.Messages), newest first on (created_at, seq): every
-- message, a time window or a method; by user; by template (also DeleteTemplate); by status.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_created ON messages (created_at, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_user_created ON messages (user_id, created_at, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_template_created ON messages (template_id, created_at, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_status_created ON messages (status, created_at, seq);

-- The purge of canceled messages (the others are read from messages_finished).
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_canceled ON messages (updated_at) WHERE status = 'canceled';
