-- A lease in place. Until this version a lease set status = 'leased' and so wrote a new
-- entry in every index of the row (seven), and so did the result write: index
-- maintenance was two thirds of the server's work per delivered message. From this version
-- a lease leaves status, updated_at and next_retry_after as they are and sets only
-- leased_by, leased_until, leased_at and attempt_count, which no index reads once
-- 0010_lease_in_place_indexes.sql has replaced the index on leased_until: a HOT update,
-- with no index entry, when the row's page has room for the new version. A leased
-- message is a pending or retrying row whose leased_by is set; its lease expires at
-- leased_until, and the lease time is leased_at. The result write clears all three.

ALTER TABLE messages ADD COLUMN leased_at timestamptz;

-- Room on each page for the new versions of its rows, so that the lease can be HOT: a
-- lease takes every row of a page at once, and a leased version is 32 bytes longer than
-- the row it replaces, so the room must exceed half the page for rows of about 200 bytes.
-- Only pages written from now on; pruning and the result write's versions reuse the room.
ALTER TABLE messages SET (fillfactor = 40);

-- Replicas of the previous version lease by status = 'pending' and know nothing of
-- leased_by. Any update of theirs that changes the status of a message leased in place
-- (their lease, their cancellation, an operator's retry through them) is caught here: if
-- the lease has not expired (judged at the update's own updated_at, which each of their
-- status changes sets to its statement's time), the update is skipped, as if another
-- replica had the row locked; if it has, the update goes through and ends the lease in
-- place (leased_at cleared, and leased_by and leased_until unless it is their own lease,
-- status 'leased'), so that the late result of the notifier that held it changes nothing.
-- This version's own updates of such a row clear leased_at (its result writes) or keep
-- the status (a cancellation, which takes effect with the result), so the WHEN clause,
-- evaluated without calling the function, never holds for them. A later migration drops
-- the trigger once no replica of the previous version can run.
CREATE FUNCTION previous_version_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.leased_until > NEW.updated_at THEN
		RETURN NULL;
	END IF;
	NEW.leased_at := NULL;
	IF NEW.status <> 'leased' THEN
		NEW.leased_by := NULL;
		NEW.leased_until := NULL;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER messages_leased_in_place BEFORE UPDATE ON messages FOR EACH ROW
	WHEN (OLD.status <> 'leased' AND OLD.leased_at IS NOT NULL
		AND NEW.status IS DISTINCT FROM OLD.status AND NEW.leased_at IS NOT DISTINCT FROM OLD.leased_at)
	EXECUTE FUNCTION previous_version_update();
