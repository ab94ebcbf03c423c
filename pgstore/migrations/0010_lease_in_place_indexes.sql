-- pgstore:no-transaction
-- Leases of the previous version (status = 'leased'), found by method in enqueue order,
-- on columns a lease in place does not change: an index on leased_until would make every
-- lease write an index entry. Only replicas of the previous version create such rows.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_leased_method ON messages (method, seq) WHERE status = 'leased';
DROP INDEX CONCURRENTLY IF EXISTS messages_leased_by_method;
