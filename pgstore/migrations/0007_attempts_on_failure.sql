-- The attempt history without a write on the success path. Until 0006 every lease
-- inserted an attempts row and every result updated it (never a HOT update: finished_at is
-- in the attempts_open predicate): two writes per delivered message, for a history that is
-- read only by operators. From this version an attempts row is written only for an
-- attempt that did not succeed: by the failure's result write (MarkFailed), or by the
-- lease that finds an expired lease (no result came). The current or final attempt is read
-- from the message row itself: while leased, its notifier (leased_by), lease time
-- (updated_at, which nothing changes while a message is leased) and attempt number; once
-- sent, the columns below, written by the result write in the same tuple it writes anyway.
-- Catalog-only: nullable columns without a default.
--
-- Rows of earlier versions stay readable: a finished row (sent or not) is listed as it is,
-- an unfinished one (a lease of an earlier version's replica) is not listed, the message
-- row stands for it. attempts_open is no longer written by this version (its rows are
-- never unfinished); replicas of the previous version still use it during a rolling
-- upgrade.

-- The last finished attempt of the message: when it was leased, by which notifier, and
-- how long its delivery took (nanoseconds, as the Manager measured it).
ALTER TABLE messages ADD COLUMN last_leased_at timestamptz;
ALTER TABLE messages ADD COLUMN last_notifier uuid;
ALTER TABLE messages ADD COLUMN last_duration_ns bigint;
