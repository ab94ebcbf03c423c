-- pgstore:no-transaction
-- The keys of the messages stored before 0012_dedupe_keys.sql, then the unique index on
-- messages dropped. From 0012 on, every message stored gets its key (this version's
-- enqueues write it, the trigger adds it for other writers), so the fill reads only rows
-- stored before; it runs outside 0012's transaction, so that enqueues do not wait for it.
-- Until the index is dropped it refuses duplicates as before. A message purged while the
-- fill runs keeps its key until the fill ends: an enqueue of that key meanwhile waits
-- for the fill and is refused as a duplicate.
INSERT INTO dedupe_keys (key, message_id) SELECT dedupe_key, id FROM messages WHERE dedupe_key IS NOT NULL ON CONFLICT (key) DO NOTHING;
-- The drop waits for every transaction that holds a lock on messages, among them any
-- purge that deleted a message while the fill had not committed its key (the purge's
-- trigger could not see it).
DROP INDEX CONCURRENTLY IF EXISTS messages_dedupe_key_c;
-- Such keys, whose message is gone. (Run again after the index is gone, the fill adds no
-- key: every stored message has its own by then.)
DELETE FROM dedupe_keys k WHERE NOT EXISTS (SELECT FROM messages m WHERE m.id = k.message_id);
