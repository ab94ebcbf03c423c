-- The dedupe key's uniqueness in a table of its own. A result write changes a message's
-- status, so it writes an entry in every index of the row; a unique index on dedupe_key
-- made it write a 64-character key on a random page of that index, for every message
-- delivered. dedupe_keys holds each stored message's key once, written when the message
-- is stored and removed when it is purged; 0013_dedupe_keys_fill.sql fills it with the
-- keys of the messages stored before and drops the index.
--
-- Statement-level triggers keep it, from the rows each statement inserts or deletes
-- (transition tables), so that every writer keeps it right: this version's enqueues,
-- COPY included, and the previous version's replicas during a rolling upgrade. A
-- duplicate is refused at the end of the inserting statement with a unique violation
-- on dedupe_keys_pkey, which waits, like the index did, for a concurrent transaction
-- that stored the same key to commit or roll back.
CREATE TABLE dedupe_keys (
    key        text COLLATE "C" NOT NULL,
    message_id uuid NOT NULL,
    CONSTRAINT dedupe_keys_pkey PRIMARY KEY (key)
);

-- The functions run with the search_path of this migration, whatever the inserting
-- session's is.
CREATE FUNCTION dedupe_keys_add() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO dedupe_keys (key, message_id) SELECT dedupe_key, id FROM added WHERE dedupe_key IS NOT NULL;
	RETURN NULL;
END
$$;
-- An array of the keys, so that the delete is an index scan of dedupe_keys whatever the
-- number of rows the plan was first made for.
CREATE FUNCTION dedupe_keys_remove() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	DELETE FROM dedupe_keys WHERE key = ANY (ARRAY(SELECT dedupe_key FROM removed WHERE dedupe_key IS NOT NULL));
	RETURN NULL;
END
$$;
CREATE FUNCTION dedupe_keys_clear() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	TRUNCATE dedupe_keys;
	RETURN NULL;
END
$$;
-- No version changes a stored message's key; an update that would is refused, since the
-- table would no longer match.
CREATE FUNCTION dedupe_key_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the dedupe_key of a stored message cannot change (message %)', OLD.id
		USING ERRCODE = 'check_violation', TABLE = TG_TABLE_NAME, COLUMN = 'dedupe_key';
END
$$;

CREATE TRIGGER dedupe_keys_add AFTER INSERT ON messages REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION dedupe_keys_add();
CREATE TRIGGER dedupe_keys_remove AFTER DELETE ON messages REFERENCING OLD TABLE AS removed
	FOR EACH STATEMENT EXECUTE FUNCTION dedupe_keys_remove();
CREATE TRIGGER dedupe_keys_clear AFTER TRUNCATE ON messages
	FOR EACH STATEMENT EXECUTE FUNCTION dedupe_keys_clear();
CREATE TRIGGER dedupe_key_unchanged BEFORE UPDATE OF dedupe_key ON messages FOR EACH ROW
	WHEN (NEW.dedupe_key IS DISTINCT FROM OLD.dedupe_key)
	EXECUTE FUNCTION dedupe_key_unchanged();
