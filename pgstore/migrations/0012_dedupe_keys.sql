-- The dedupe key's uniqueness in a table of its own. A result write changes a message's
-- status, so it writes an entry in every index of the row; a unique index on dedupe_key
-- made it write a 64-character key on a random page of that index, for every message
-- delivered. dedupe_keys holds each stored message's key once, written when the message
-- is stored and removed when it is purged; 0013_dedupe_keys_fill.sql fills it with the
-- keys of the messages stored before and drops the index. A duplicate is refused with a
-- unique violation on dedupe_keys_pkey, which waits, like the index did, for a
-- concurrent transaction that stored the same key to commit or roll back.
CREATE TABLE dedupe_keys (
    key        text COLLATE "C" NOT NULL,
    message_id uuid NOT NULL,
    CONSTRAINT dedupe_keys_pkey PRIMARY KEY (key)
);

-- This version's enqueues write the keys of the messages they store themselves, and set
-- pgstore.dedupe_keys to 'written' for their transaction first. Any other writer's rows
-- (the previous version's replicas during a rolling upgrade) get theirs here, one row at
-- a time; the WHEN clause is evaluated without calling the function.
-- The functions run with the search_path of this migration, whatever the session's is.
CREATE FUNCTION dedupe_key_add() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO dedupe_keys (key, message_id) VALUES (NEW.dedupe_key, NEW.id);
	RETURN NULL;
END
$$;
CREATE TRIGGER dedupe_key_add AFTER INSERT ON messages FOR EACH ROW
	WHEN (NEW.dedupe_key IS NOT NULL AND current_setting('pgstore.dedupe_keys', true) IS DISTINCT FROM 'written')
	EXECUTE FUNCTION dedupe_key_add();

-- Deletes (the purge, this version's or the previous one's) remove the keys of the rows
-- they delete, from the statement's deleted rows (a key of another message, if one
-- were there, stays). The keys as an array, so that the delete is an index scan of
-- dedupe_keys whatever the number of rows its plan was first made for.
CREATE FUNCTION dedupe_keys_remove() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	DELETE FROM dedupe_keys WHERE key = ANY (ARRAY(SELECT dedupe_key FROM removed WHERE dedupe_key IS NOT NULL))
		AND message_id = ANY (ARRAY(SELECT id FROM removed WHERE dedupe_key IS NOT NULL));
	RETURN NULL;
END
$$;
CREATE TRIGGER dedupe_keys_remove AFTER DELETE ON messages REFERENCING OLD TABLE AS removed
	FOR EACH STATEMENT EXECUTE FUNCTION dedupe_keys_remove();

CREATE FUNCTION dedupe_keys_clear() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	TRUNCATE dedupe_keys;
	RETURN NULL;
END
$$;
CREATE TRIGGER dedupe_keys_clear AFTER TRUNCATE ON messages
	FOR EACH STATEMENT EXECUTE FUNCTION dedupe_keys_clear();

-- No version changes a stored message's key; an update that would is refused, since the
-- table would no longer match.
CREATE FUNCTION dedupe_key_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the dedupe_key of a stored message cannot change (message %)', OLD.id
		USING ERRCODE = 'check_violation', TABLE = TG_TABLE_NAME, COLUMN = 'dedupe_key';
END
$$;
CREATE TRIGGER dedupe_key_unchanged BEFORE UPDATE OF dedupe_key ON messages FOR EACH ROW
	WHEN (NEW.dedupe_key IS DISTINCT FROM OLD.dedupe_key)
	EXECUTE FUNCTION dedupe_key_unchanged();
