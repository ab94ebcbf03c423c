-- pgstore:no-transaction
-- The keys of the messages stored before 0012_dedupe_keys.sql, then the unique index on
-- messages dropped. From 0012 on, the triggers add every new message's key, so the fill
-- reads only rows stored before; it runs outside 0012's transaction, so that enqueues
-- do not wait for it. Until the index is dropped it refuses duplicates as before.
INSERT INTO dedupe_keys (key, message_id) SELECT dedupe_key, id FROM messages WHERE dedupe_key IS NOT NULL ON CONFLICT (key) DO NOTHING;
-- A purge that deleted a message while the fill read it found no key to delete: remove
-- such keys, whose message is gone.
DELETE FROM dedupe_keys k WHERE NOT EXISTS (SELECT FROM messages m WHERE m.id = k.message_id);
DROP INDEX CONCURRENTLY IF EXISTS messages_dedupe_key_c;
