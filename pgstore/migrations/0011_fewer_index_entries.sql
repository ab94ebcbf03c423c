-- pgstore:no-transaction
-- Fewer index entries per message. A result write changes the message's status, so it is
-- not a HOT update: it writes an entry in every index whose predicate the new row meets.
-- * The status search index leaves out sent messages, the bulk: a search for them walks
--   messages_created, where they are most of the rows.
-- * No index orders finished messages by age: the purge walks messages_created, oldest
--   first (a message finishes after it is created).
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_status_unsent ON messages (status, created_at, seq) WHERE status <> 'sent';
DROP INDEX CONCURRENTLY IF EXISTS messages_status_created;
DROP INDEX CONCURRENTLY IF EXISTS messages_finished;
DROP INDEX CONCURRENTLY IF EXISTS messages_canceled;
