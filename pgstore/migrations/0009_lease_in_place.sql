-- A lease in place. Until this version a lease set status = 'leased' and so wrote a new
-- entry in every index of the row (seven), and so did the result write: index
-- maintenance was two thirds of the server's work per delivered message. From this version
-- a lease leaves status, updated_at and next_retry_after as they are and sets only
-- columns no index reads (leased_by, leased_until, leased_at, attempt_count): a HOT
-- update, with no index entry, when the row's page has room for the new version. A leased
-- message is a pending or retrying row whose leased_by is set; its lease expires at
-- leased_until, and the lease time is leased_at. The result write clears all three.

ALTER TABLE messages ADD COLUMN leased_at timestamptz;

-- Room on each page for the new versions of its rows, so that the lease can be HOT: a
-- lease takes every row of a page at once, and a leased version is 32 bytes longer than
-- the row it replaces, so the room must exceed half the page for rows of about 200 bytes.
-- Only pages written from now on; pruning and the result write's versions reuse the room.
ALTER TABLE messages SET (fillfactor = 40);

-- Replicas of the previous version lease by status = 'pending' and know nothing of
-- leased_by: this trigger keeps any update of theirs that would change the status of a
-- message leased in place and not expired (their lease, or their cancellation of a
-- message being delivered) from touching it, as if another replica had it locked. This
-- version's own updates of such a row clear leased_at (its result writes) or keep the
-- status (a cancellation, which takes effect with the result), so the trigger never
-- fires for them; its WHEN is evaluated without calling the function. An expired lease
-- in place is a pending message to the previous version: its lease (status 'leased')
-- and result write go through, and leased_at, which it does not know, stays behind;
-- this version reads leased_at only while a row is leased in place (leased_by set,
-- status not 'leased').
CREATE FUNCTION skip_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN NULL;
END
$$;
CREATE TRIGGER messages_leased_in_place BEFORE UPDATE ON messages FOR EACH ROW
	WHEN (OLD.status <> 'leased' AND OLD.leased_at IS NOT NULL AND OLD.leased_until > now()
		AND NEW.status IS DISTINCT FROM OLD.status AND NEW.leased_at IS NOT DISTINCT FROM OLD.leased_at)
	EXECUTE FUNCTION skip_update();
