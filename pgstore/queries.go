package pgstore

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications/internal/storecheck"
)

// queries holds every statement, qualified with the store's schema. $1 is always the
// explicit "now" (NULL: the database's now()).
type queries struct {
	lease, leaseInTx, markSent, markFailed, purge, purgeInbox, enqueue string
	enqueueOne, enqueueCheck, wakeIfStored                             string
	template, templates, upsertTemplates, deleteTemplate               string
	message, countByStatus, setPaused, paused                          string
	setPreference, setMethodPreference, preferences                    string
	attempts, messageExists, retry, cancel                             string
	pendingByMethod                                                    string
	inboxInsert, inboxUnread, inboxMarkRead, inboxGet                  string
	inboxMaxSeq, inboxSince                                            string
	inboxMarkAllRead, inboxArchive, inboxDelete                        string
	// schema is the quoted schema name, for the queries built per call (message and
	// inbox search).
	schema string
}

func buildQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	q := strings.NewReplacer("{{s}}", s,
		"{{max}}", strconv.Itoa(storecheck.MaxAttempts), "{{keep}}", strconv.Itoa(storecheck.MaxAttempts-1)).Replace
	qs := queries{
		schema: s,
		// One statement: pick eligible rows oldest first (skipping rows another notifier
		// is leasing right now), fail those whose attempts are used up, lease the rest and
		// return them with their template and the recipient's current preference. For each
		// method ($6), pending messages (by enqueue order) and due retries (by retry time),
		// each with the expired leases among them, and leases of the previous version
		// (status 'leased', by enqueue order) are each read from a partial index in that
		// order, so LIMIT stops after the rows taken: the cost does not grow with the
		// number of due retries, expired leases or messages of other methods. Messages in
		// flight (leased and not expired) stay in the pending and retry indexes and are
		// read past: a cost bounded by what the running notifiers have leased.
		//
		// The lease is in place (0009_lease_in_place.sql): it sets leased_by,
		// leased_until, leased_at and attempt_count, which no index reads, and leaves
		// status, updated_at and next_retry_after as they are, so that PostgreSQL can
		// write it as a HOT update, without index entries.
		//
		// {{async}}: the lease's own transaction commits without waiting for its WAL flush
		// (see leaseAsync).
		lease: q(`
WITH now AS (SELECT coalesce($1::timestamptz, now()) AS ts{{async}}),
paused AS (SELECT paused FROM {{s}}.settings WHERE id = 1),
methods AS (SELECT DISTINCT method FROM unnest($6::text[]) AS u(method) WHERE NOT (SELECT paused FROM paused)),
pending AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, m.leased_by IS NOT NULL AS expired, m.leased_until, m.cancel_reason,
			m.leased_by, ` + leasedAtExpr + ` AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'pending' AND m.method = methods.method AND (m.leased_by IS NULL OR m.leased_until <= (SELECT ts FROM now))
		ORDER BY m.seq LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
due AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, m.leased_by IS NOT NULL AS expired, m.leased_until, m.cancel_reason,
			m.leased_by, ` + leasedAtExpr + ` AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'temporary_failure' AND m.method = methods.method AND m.next_retry_after <= (SELECT ts FROM now)
			AND (m.leased_by IS NULL OR m.leased_until <= (SELECT ts FROM now))
		ORDER BY m.next_retry_after LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
expired AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, true AS expired, m.leased_until, m.cancel_reason,
			m.leased_by, ` + leasedAtExpr + ` AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'leased' AND m.method = methods.method AND m.leased_until <= (SELECT ts FROM now)
		ORDER BY m.seq LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
candidates AS (
	SELECT c.id, c.attempt_count, c.expired, c.leased_until, c.leased_by, c.leased_at,
		coalesce(c.cancel_reason, CASE WHEN t.id IS NULL OR t.deleted_at IS NOT NULL THEN 'template deleted' END) AS cancel_reason
	FROM (
		SELECT * FROM pending UNION ALL SELECT * FROM due UNION ALL SELECT * FROM expired
		ORDER BY seq LIMIT $3
	) c LEFT JOIN {{s}}.templates t ON t.id = c.template_id
),
-- An expired lease is an attempt that ended without a result: the only attempt row a lease
-- writes (a rare path), trimmed like markFailed's to the newest attempts. Its lease time is
-- leased_at (for a lease of the previous version, the updated_at its lease set).
lost AS (
	INSERT INTO {{s}}.attempts (message_id, number, notifier_id, leased_at, finished_at, outcome, reason)
	SELECT c.id, c.attempt_count, c.leased_by, c.leased_at, c.leased_until, 'leased', 'lease expired without a result'
	FROM candidates c WHERE c.expired
),
lostcuts AS (
	SELECT c.id, (SELECT x.id FROM {{s}}.attempts x WHERE x.message_id = c.id ORDER BY x.id DESC OFFSET {{keep}} LIMIT 1) AS cut
	FROM candidates c WHERE c.expired
),
losttrim AS (
	DELETE FROM {{s}}.attempts a USING lostcuts c
	WHERE a.message_id = ANY(ARRAY(SELECT id FROM lostcuts WHERE cut IS NOT NULL)) AND a.message_id = c.id AND a.id <= c.cut
),
canceled AS (
	UPDATE {{s}}.messages m SET status = 'canceled', status_reason = coalesce(m.cancel_reason, 'template deleted'), cancel_reason = NULL,
		updated_at = (SELECT ts FROM now), leased_by = NULL, leased_until = NULL, leased_at = NULL, next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NOT NULL))
),
exhausted AS (
	UPDATE {{s}}.messages m SET status = 'permanent_failure',
		status_reason = 'gave up after ' || m.attempt_count || ' attempts whose leases expired without a result (the delivering process probably stopped mid-delivery)',
		updated_at = (SELECT ts FROM now), leased_by = NULL, leased_until = NULL, leased_at = NULL, next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NULL AND attempt_count >= $5))
),
-- No attempt row: while leased, the message row is its current attempt (MessageAttempts
-- reads leased_by, leased_at and attempt_count). A lease of the previous version that
-- expired becomes a lease in place of a pending message.
leased AS (
	UPDATE {{s}}.messages m SET status = CASE WHEN m.status = 'leased' THEN 'pending' ELSE m.status END, leased_by = $2,
		leased_until = (SELECT ts FROM now) + $4 * interval '1 microsecond',
		attempt_count = m.attempt_count + 1, leased_at = (SELECT ts FROM now)
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NULL AND attempt_count < $5))
	RETURNING m.id, m.method, m.template_id, m.user_id, m.payload, m.attempt_count, m.created_at, m.seq
)
SELECT l.id, l.method, l.template_id, t.name, t.title_template, t.body_template, l.payload::text,
	coalesce(mp.disabled, p.disabled, NOT t.enabled_by_default), l.attempt_count, l.created_at, (SELECT ts FROM now)
FROM leased l
JOIN {{s}}.templates t ON t.id = l.template_id
LEFT JOIN {{s}}.method_preferences mp ON mp.user_id = l.user_id AND mp.template_id = l.template_id AND mp.method = l.method
LEFT JOIN {{s}}.preferences p ON p.user_id = l.user_id AND p.template_id = l.template_id
ORDER BY l.seq`),

		// The result writes join the results to the rows by ID, and check the fence (still
		// leased, by this notifier, at this attempt) in one condition over both sides, so
		// the planner never filters messages on their own before the join: with
		// statistics from a moment when few rows were leased it would estimate one leased
		// row, scan the leased index and compare every row with every result (quadratic:
		// 0.4-0.9 s for 1,000 results). Now it probes the primary key once per result, or
		// hashes the table. Likewise the lease updates its candidates by
		// id = ANY(ARRAY(...)) rather than by a join.
		//
		// Both writes are fenced (resultFence) and clear leased_at, which is what tells the
		// trigger of 0009_lease_in_place.sql that this version wrote them.
		//
		// A success writes no attempt row: the message row keeps its last attempt's lease
		// time (leased_at; the SET list reads the row before the update), notifier and
		// duration, from which MessageAttempts lists it.
		markSent: q(`
WITH done AS (
	UPDATE {{s}}.messages m SET status = 'sent', status_reason = '', cancel_reason = NULL, sent_at = coalesce($1::timestamptz, now()),
		updated_at = coalesce($1::timestamptz, now()), leased_by = NULL, leased_until = NULL, leased_at = NULL, next_retry_after = NULL,
		last_leased_at = ` + leasedAtExpr + `, last_notifier = $2, last_duration_ns = r.took
	FROM unnest($3::text[]::uuid[], $4::int[], $5::bigint[]) AS r(id, attempt, took)
	WHERE m.id = r.id AND ` + resultFence + `
	RETURNING 1
)
SELECT count(*)::int FROM done`),

		// A temporary failure of a message whose cancellation was requested ends canceled.
		// Each failure is an attempt row, written in the same statement, and the message's
		// history is trimmed to the newest attempts (storecheck.MaxAttempts, this one included).
		markFailed: q(`
WITH done AS (
	UPDATE {{s}}.messages m SET
		status = CASE WHEN r.status = 'temporary_failure' AND m.cancel_reason IS NOT NULL THEN 'canceled' ELSE r.status END,
		status_reason = CASE WHEN r.status = 'temporary_failure' AND m.cancel_reason IS NOT NULL
			THEN m.cancel_reason || ' (last attempt: ' || r.reason || ')' ELSE r.reason END,
		updated_at = coalesce($1::timestamptz, now()),
		next_retry_after = CASE WHEN r.status = 'temporary_failure' AND m.cancel_reason IS NULL
			THEN coalesce($1::timestamptz, now()) + r.delay * interval '1 microsecond' END,
		leased_by = NULL, leased_until = NULL, leased_at = NULL, cancel_reason = NULL,
		last_leased_at = ` + leasedAtExpr + `, last_notifier = $2, last_duration_ns = r.took
	FROM unnest($3::text[]::uuid[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS r(id, attempt, status, reason, delay, took)
	WHERE m.id = r.id AND ` + resultFence + `
	RETURNING m.id, m.attempt_count, m.last_leased_at, r.status, r.reason, r.took
),
finished AS (
	INSERT INTO {{s}}.attempts (message_id, number, notifier_id, leased_at, finished_at, outcome, reason, duration_ns)
	SELECT d.id, d.attempt_count, $2, d.last_leased_at, coalesce($1::timestamptz, now()), d.status, d.reason, d.took FROM done d
),
cutoffs AS (
	SELECT d.id, (SELECT x.id FROM {{s}}.attempts x WHERE x.message_id = d.id ORDER BY x.id DESC OFFSET {{keep}} LIMIT 1) AS cut
	FROM done d
),
trimmed AS (
	DELETE FROM {{s}}.attempts a USING cutoffs c
	WHERE a.message_id = ANY(ARRAY(SELECT id FROM cutoffs WHERE cut IS NOT NULL)) AND a.message_id = c.id AND a.id <= c.cut
)
SELECT count(*)::int FROM done`),

		// One batch of the purge: at most $4 finished messages (sent, failed for good,
		// inhibited or canceled) that finished before the retention ($2 µs), under a
		// transaction-scoped try-lock so that one replica purges at a time. It walks the
		// (created_at, seq) index oldest first from the position after the previous batch's
		// last message ($5, $6; -infinity and 0 to start): a message finishes after it is
		// created, so every message to purge is among those created before the retention,
		// and unfinished ones among them are read past once per purge. It skips rows that
		// are locked (a late flush), and returns whether it got the lock, how many it
		// deleted and the position of the last one.
		purge: q(`
WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($3)) AS got),
cutoff AS (SELECT coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond' AS ts),
victims AS (
	SELECT id, created_at, seq FROM {{s}}.messages
	WHERE (SELECT got FROM lock)
	  AND (created_at, seq) > ($5::timestamptz, $6::bigint)
	  AND created_at <= (SELECT ts FROM cutoff)
	  AND status IN ('sent', 'permanent_failure', 'inhibited', 'canceled')
	  AND updated_at <= (SELECT ts FROM cutoff)
	ORDER BY created_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED
),
del AS (DELETE FROM {{s}}.messages m USING victims v WHERE m.id = v.id RETURNING v.created_at, v.seq),
last AS (SELECT created_at, seq FROM del ORDER BY created_at DESC, seq DESC LIMIT 1)
SELECT (SELECT got FROM lock), (SELECT count(*) FROM del)::int,
	coalesce((SELECT created_at FROM last), '-infinity'), coalesce((SELECT seq FROM last), 0)`),
		purgeInbox: q(`
WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($3)) AS got),
victims AS (
	SELECT id FROM {{s}}.inbox
	WHERE (SELECT got FROM lock)
	  AND read_at <= coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond'
	ORDER BY read_at LIMIT $4 FOR UPDATE SKIP LOCKED
),
del AS (DELETE FROM {{s}}.inbox i USING victims v WHERE i.id = v.id RETURNING 1)
SELECT (SELECT got FROM lock), (SELECT count(*) FROM del)::int`),

		// One statement: refuse the whole batch if a template is missing or a recipient
		// disabled it, otherwise insert every row and its dedupe key (see keysWritten).
		// (No pg_notify here: an enqueue on an idle store follows it with wakeIfStored;
		// see notify.go.)
		enqueue: q(`
WITH input AS (
	SELECT * FROM unnest($2::text[]::uuid[], $3::text[]::uuid[], $4::text[]::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
		WITH ORDINALITY AS r(id, template_id, user_id, method, payload, targets, created_by, dedupe_key, ord)
),
` + refusedCTE + `,
ins AS (
	INSERT INTO {{s}}.messages (id, template_id, user_id, method, payload, targets, created_by, dedupe_key, created_at, updated_at)
	SELECT id, template_id, user_id, method, payload::json, targets::uuid[], created_by, dedupe_key,
		coalesce($1::timestamptz, now()), coalesce($1::timestamptz, now())
	FROM input WHERE NOT EXISTS (SELECT 1 FROM bad) AND ` + keysWritten + `
	ORDER BY ord
	RETURNING id, dedupe_key
),
` + keysCTE + `
SELECT (SELECT template_id FROM bad), (SELECT user_id FROM bad), (SELECT missing FROM bad),
	(SELECT count(*) FROM ins)::int`),

		// The check of enqueueCopy, over the distinct (template, user, method) triples of
		// a batch in their order: the first refused one, as enqueue's bad, and the time to
		// store (the database's now() is the transaction's, the one the copy commits in).
		// It also tells the insert trigger that the copy writes its own dedupe keys
		// (keysWritten).
		enqueueCheck: q(`
WITH input AS (
	SELECT * FROM unnest($2::text[]::uuid[], $3::text[]::uuid[], $4::text[]) WITH ORDINALITY AS r(template_id, user_id, method, ord)
),
` + refusedCTE + `
SELECT coalesce($1::timestamptz, now()), (SELECT template_id FROM bad), (SELECT user_id FROM bad), (SELECT missing FROM bad)
WHERE ` + keysWritten),

		// enqueue for one message, the common case (and the one inside a host's
		// transaction): scalar parameters and a join on fixed keys, so that it plans in a
		// fraction of the batch statement's time, and a prepared generic plan costs what a
		// custom one does, so PostgreSQL reuses it after its first five calls even where
		// the store cannot ask for it (in the host's transaction, see queryHot). chk
		// has no row for an unknown template.
		enqueueOne: q(`
WITH chk AS (
	SELECT t.deleted_at IS NOT NULL AS missing, coalesce(mp.disabled, p.disabled, NOT t.enabled_by_default) AS disabled
	FROM {{s}}.templates t
	LEFT JOIN {{s}}.method_preferences mp ON mp.user_id = $4::text::uuid AND mp.template_id = t.id AND mp.method = $5::text
	LEFT JOIN {{s}}.preferences p ON p.user_id = $4::text::uuid AND p.template_id = t.id
	WHERE t.id = $3::text::uuid
),
ins AS (
	INSERT INTO {{s}}.messages (id, template_id, user_id, method, payload, targets, created_by, dedupe_key, created_at, updated_at)
	SELECT $2::text::uuid, $3::text::uuid, $4::text::uuid, $5::text, $6::text::json, $7::text::uuid[], $8::text, $9::text,
		coalesce($1::timestamptz, now()), coalesce($1::timestamptz, now())
	FROM chk WHERE NOT chk.missing AND NOT chk.disabled AND ` + keysWritten + `
	RETURNING id, dedupe_key
),
` + keysCTE + `
SELECT coalesce((SELECT missing FROM chk), true), coalesce((SELECT disabled FROM chk), false), (SELECT count(*) FROM ins)::int`),

		template:  q(`SELECT ` + templateColumns + ` FROM {{s}}.templates WHERE id = $1 AND deleted_at IS NULL`),
		templates: q(`SELECT ` + templateColumns + ` FROM {{s}}.templates WHERE deleted_at IS NULL ORDER BY name COLLATE "C"`),

		upsertTemplates: q(`
INSERT INTO {{s}}.templates (id, name, grp, kind, title_template, body_template, actions, method, enabled_by_default, updated_at,
	methods, exclude_methods)
SELECT r.id, r.name, r.grp, r.kind, r.title, r.body, r.actions::jsonb, r.method, r.enabled, coalesce($1::timestamptz, now()),
	r.methods::text[], r.exclude::text[]
FROM unnest($2::text[]::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[],
	$11::text[], $12::text[])
	AS r(id, name, grp, kind, title, body, actions, method, enabled, methods, exclude)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, grp = excluded.grp, kind = excluded.kind,
	title_template = excluded.title_template, body_template = excluded.body_template, actions = excluded.actions,
	method = excluded.method, enabled_by_default = excluded.enabled_by_default, updated_at = excluded.updated_at,
	methods = excluded.methods, exclude_methods = excluded.exclude_methods, deleted_at = NULL`),

		message:         q(`SELECT ` + messageColumns + ` FROM {{s}}.messages m WHERE m.id = $1`),
		countByStatus:   q(`SELECT ` + statusExpr + ` AS st, count(*) FROM {{s}}.messages m GROUP BY st`),
		pendingByMethod: q(`SELECT method, count(*) FROM {{s}}.messages WHERE status = 'pending' AND leased_by IS NULL GROUP BY method`),
		setPaused:       q(`UPDATE {{s}}.settings SET paused = $1 WHERE id = 1`),
		paused:          q(`SELECT paused FROM {{s}}.settings WHERE id = 1`),

		inboxInsert: q(`
INSERT INTO {{s}}.inbox (id, user_id, template_id, title, content, actions, targets, title_markdown, created_at)
VALUES ($2, $3, $4, $5, $6, $7::jsonb, $8::uuid[], $9, coalesce($1::timestamptz, now()))
ON CONFLICT (id) DO NOTHING`),
		inboxGet: q(`SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at, archived_at
FROM {{s}}.inbox WHERE id = $1`),
		inboxMaxSeq: q(`SELECT coalesce(max(seq), 0) FROM {{s}}.inbox`),
		inboxSince: q(`SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at, archived_at
FROM {{s}}.inbox WHERE seq > $1 AND seq <= $2 AND user_id = ANY($3::text[]::uuid[]) ORDER BY seq`),
		inboxUnread: q(`SELECT count(*) FROM {{s}}.inbox WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL`),
		inboxMarkRead: q(`UPDATE {{s}}.inbox SET read_at = coalesce(read_at, coalesce($1::timestamptz, now()))
WHERE id = $3 AND user_id = $2`),

		inboxMarkAllRead: q(`UPDATE {{s}}.inbox SET read_at = coalesce($1::timestamptz, now()) WHERE user_id = $2 AND read_at IS NULL`),
		inboxArchive: q(`UPDATE {{s}}.inbox SET archived_at = coalesce(archived_at, coalesce($1::timestamptz, now()))
WHERE id = $3 AND user_id = $2`),
		inboxDelete: q(`DELETE FROM {{s}}.inbox WHERE id = $2 AND user_id = $1`),

		// Preferences of templates that are not deleted: the all-methods row in preferences,
		// a method's row in method_preferences. Setting one for a deleted or unknown template
		// inserts nothing.
		setPreference: q(`
INSERT INTO {{s}}.preferences (user_id, template_id, disabled, updated_at)
SELECT $2, t.id, $4, coalesce($1::timestamptz, now()) FROM {{s}}.templates t WHERE t.id = $3 AND t.deleted_at IS NULL
ON CONFLICT (user_id, template_id) DO UPDATE SET disabled = excluded.disabled, updated_at = excluded.updated_at`),
		setMethodPreference: q(`
INSERT INTO {{s}}.method_preferences (user_id, template_id, method, disabled, updated_at)
SELECT $2, t.id, $4, $5, coalesce($1::timestamptz, now()) FROM {{s}}.templates t WHERE t.id = $3 AND t.deleted_at IS NULL
ON CONFLICT (user_id, template_id, method) DO UPDATE SET disabled = excluded.disabled, updated_at = excluded.updated_at`),
		preferences: q(`SELECT p.template_id, p.method, p.disabled FROM (
	SELECT template_id, '' AS method, disabled FROM {{s}}.preferences WHERE user_id = $1
	UNION ALL
	SELECT template_id, method, disabled FROM {{s}}.method_preferences WHERE user_id = $1
) p JOIN {{s}}.templates t ON t.id = p.template_id AND t.deleted_at IS NULL
ORDER BY t.name COLLATE "C", p.method COLLATE "C"`),

		// Soft-delete a template and cancel its unfinished messages in one statement: pending
		// and retrying ones now, leased ones when their result arrives (cancel_reason). One
		// UPDATE decides per row on the row's latest version, so a message leased while this
		// runs is marked too; a message enqueued concurrently is canceled by its lease.
		deleteTemplate: q(`
WITH t AS (
	UPDATE {{s}}.templates SET deleted_at = coalesce($1::timestamptz, now()), updated_at = coalesce($1::timestamptz, now())
	WHERE id = $2 AND deleted_at IS NULL RETURNING id
),
c AS (
	UPDATE {{s}}.messages m SET ` + cancelSet("template deleted") + `
	FROM t WHERE m.template_id = t.id AND m.status IN ('pending', 'leased', 'temporary_failure')
)
SELECT count(*)::int FROM t`),

		// The history: the attempt rows (attempts that did not succeed; a finished row of
		// an earlier version, sent or not, too), then the message's current or final
		// attempt read from its row: leased (its notifier, lease time and number) or sent
		// (the last attempt's columns; a message sent by an earlier version has a sent
		// row instead). Unfinished rows (leases of an earlier version) are left out: the
		// message row stands for them. The newest storecheck.MaxAttempts, oldest first.
		attempts: q(`
SELECT number, notifier_id, leased_at, finished_at, outcome, reason, duration_ns FROM (
	SELECT a.id AS k, a.number, a.notifier_id, a.leased_at, a.finished_at, a.outcome, a.reason, a.duration_ns
	FROM {{s}}.attempts a WHERE a.message_id = $1 AND a.finished_at IS NOT NULL
	UNION ALL
	SELECT 9223372036854775807, m.attempt_count, m.leased_by, ` + leasedAtExpr + `, NULL, 'leased', '', 0
	FROM {{s}}.messages m WHERE m.id = $1 AND ` + statusExpr + ` = 'leased'
	UNION ALL
	SELECT 9223372036854775807, m.attempt_count, m.last_notifier, m.last_leased_at, m.sent_at, 'sent', '', m.last_duration_ns
	FROM {{s}}.messages m WHERE m.id = $1 AND m.status = 'sent' AND m.last_notifier IS NOT NULL
		AND NOT EXISTS (SELECT FROM {{s}}.attempts x WHERE x.message_id = $1 AND x.outcome = 'sent')
	ORDER BY k DESC LIMIT {{max}}
) h ORDER BY k`),
		messageExists: q(`SELECT EXISTS (SELECT FROM {{s}}.messages WHERE id = $1)`),

		// The wake-up an enqueue on an idle store carries (claimInlineWake): after the
		// enqueue statement, in its implicit transaction, and only if it stored the batch
		// (all or nothing: its first message); a refused batch notifies nobody.
		wakeIfStored: q(`SELECT pg_notify($1, '') FROM {{s}}.messages WHERE id = $2::uuid`),

		// Retry: a failed or canceled message of a template that is not deleted becomes
		// pending now. It returns the message's status before (NULL:
		// no such message), whether its template is deleted and whether it changed.
		retry: q(`
WITH before AS (
	SELECT ` + statusExpr + ` AS status, t.id IS NULL OR t.deleted_at IS NOT NULL AS deleted FROM {{s}}.messages m
	LEFT JOIN {{s}}.templates t ON t.id = m.template_id WHERE m.id = $2
),
upd AS (
	UPDATE {{s}}.messages m SET status = 'pending', attempt_count = 0, next_retry_after = NULL, cancel_reason = NULL,
		status_reason = 'retried by an operator after ' || m.status || ': ' || m.status_reason,
		updated_at = coalesce($1::timestamptz, now())
	WHERE m.id = $2 AND m.status IN ('temporary_failure', 'permanent_failure', 'canceled') AND m.leased_by IS NULL
	  AND NOT (SELECT deleted FROM before)
	RETURNING 1
)
SELECT (SELECT status FROM before), coalesce((SELECT deleted FROM before), false), (SELECT count(*) FROM upd)::int`),

		// Cancel: pending and retrying messages now, a leased one when its result arrives.
		cancel: q(`
WITH before AS (SELECT ` + statusExpr + ` AS status FROM {{s}}.messages m WHERE id = $2),
upd AS (
	UPDATE {{s}}.messages m SET ` + cancelSet("canceled by an operator") + `
	WHERE m.id = $2 AND m.status IN ('pending', 'leased', 'temporary_failure')
	RETURNING 1
)
SELECT (SELECT status FROM before), (SELECT count(*) FROM upd)::int`),
	}
	qs.leaseInTx = strings.Replace(qs.lease, "{{async}}", "", 1)
	qs.lease = strings.Replace(qs.lease, "{{async}}", leaseAsync, 1)
	return qs
}

// leaseAsync makes a lease statement's transaction commit asynchronously (no wait for the
// WAL flush, which on a durable server is most of its latency). Losing a lease in a server
// crash is harmless: the message is as it was before the lease, and delivered again, as
// after any crash (at-least-once). Any later synchronous commit, such as the result
// write, flushes the lease with it. The now CTE is materialized (set_config is volatile)
// and read by every write of the statement. A store bound to the host's transaction
// (WithTx) leases without it.
const leaseAsync = `, set_config('synchronous_commit', 'off', true) AS async`

// keysWritten is a condition of the enqueue statements, always true, that sets
// pgstore.dedupe_keys to "written" for the rest of the transaction, once, before the
// statement inserts its first message: the statements write each message's dedupe key
// into dedupe_keys themselves (a CTE, or a COPY after enqueueCheck), so the insert
// trigger of 0012_dedupe_keys.sql, which adds the keys of any other writer's rows (the
// previous version's replicas), skips their rows without being called. In a host's
// transaction the setting lasts until the host commits: its other inserts into messages,
// if any, are this package's too.
const keysWritten = `(SELECT set_config('pgstore.dedupe_keys', 'written', true)) IS NOT NULL`

// keysCTE writes the dedupe keys of the messages an enqueue statement inserted, in its
// ins CTE (RETURNING id, dedupe_key), after keysWritten.
const keysCTE = `keys AS (INSERT INTO {{s}}.dedupe_keys (key, message_id) SELECT dedupe_key, id FROM ins WHERE dedupe_key IS NOT NULL)`

// refusedCTE is the check an enqueue makes before it writes, over its input CTE (template_id,
// user_id, method, ord): bad is the first row, in input order, whose template is missing or
// deleted (missing) or that the recipient disabled or did not opt in to.
const refusedCTE = `bad AS (
	SELECT i.template_id, i.user_id, t.id IS NULL OR t.deleted_at IS NOT NULL AS missing
	FROM input i
	LEFT JOIN {{s}}.templates t ON t.id = i.template_id
	LEFT JOIN {{s}}.method_preferences mp ON mp.user_id = i.user_id AND mp.template_id = i.template_id AND mp.method = i.method
	LEFT JOIN {{s}}.preferences p ON p.user_id = i.user_id AND p.template_id = i.template_id
	WHERE t.id IS NULL OR t.deleted_at IS NOT NULL OR coalesce(mp.disabled, p.disabled, NOT t.enabled_by_default)
	ORDER BY i.ord
	LIMIT 1
)`

const templateColumns = `id, name, grp, kind, title_template, body_template, actions::text, methods, exclude_methods, enabled_by_default`

// cancelSet is the SET list that cancels an unfinished message for reason: pending and
// retrying ones now, a leased one when its result arrives (cancel_reason). Each row is
// judged on its latest version, so a message leased while the statement waited for its
// lock is marked rather than missed. reason is a constant of this package.
//
// A leased row (leased_by set: a lease in place or one of the previous version) keeps its
// status, its retry time (an expired lease of a retry is found again by it) and its
// updated_at.
func cancelSet(reason string) string {
	return `
		status = CASE WHEN m.leased_by IS NOT NULL THEN m.status ELSE 'canceled' END,
		status_reason = CASE WHEN m.leased_by IS NOT NULL THEN m.status_reason ELSE '` + reason + `' END,
		cancel_reason = CASE WHEN m.leased_by IS NOT NULL THEN '` + reason + `' END,
		next_retry_after = CASE WHEN m.leased_by IS NOT NULL THEN m.next_retry_after END,
		updated_at = CASE WHEN m.leased_by IS NOT NULL THEN m.updated_at ELSE coalesce($1::timestamptz, now()) END`
}

// statusExpr is a message's status as the API reports it, over a row aliased m: a row
// leased in place keeps its stored status (pending or temporary_failure) and is leased
// while leased_by is set (a finished row never has it set: the checks on the stored
// status are a second line of defence).
const statusExpr = `CASE WHEN m.leased_by IS NOT NULL AND m.status IN ('pending', 'temporary_failure') THEN 'leased' ELSE m.status END`

// leasedAtExpr is, over a row aliased m, the time of its lease while it is leased in place
// (leased_at, set only then: every write that ends a lease in place clears it, the
// trigger of 0009_lease_in_place.sql included), and otherwise updated_at: the lease time
// of a lease of the previous version, or the time of the row's last change.
const leasedAtExpr = `coalesce(m.leased_at, m.updated_at)`

// resultFence is the condition of the result writes, over a row aliased m and a result r
// (id, attempt) written by notifier $2: the row is still leased (in place, as this version
// leases, or with status 'leased', as the previous version did) by this notifier
// (leased_by, which only a lease sets and every other change of a leased row keeps or
// clears) at this attempt.
const resultFence = `(m.leased_by = $2 AND m.attempt_count = r.attempt AND m.status IN ('pending', 'temporary_failure', 'leased')) IS TRUE`
