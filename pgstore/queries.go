package pgstore

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// queries holds every statement, qualified with the store's schema. $1 is always the
// explicit "now" (NULL: the database's now()).
type queries struct {
	lease, leaseInTx, markSent, markFailed, purge, purgeInbox, enqueue string
	template, upsertTemplates                                          string
	message, messages, countByStatus, setPreference, setPaused, paused string
	pendingByMethod                                                    string
	inboxInsert, inboxList, inboxUnread, inboxMarkRead, inboxGet       string
	inboxMaxSeq, inboxSince                                            string
}

func buildQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	q := func(sql string) string { return strings.ReplaceAll(sql, "{{s}}", s) }
	qs := queries{
		// One statement: pick eligible rows oldest first (skipping rows another notifier
		// is leasing right now), fail those whose attempts are used up, lease the rest and
		// return them with their template and the recipient's current preference. For each
		// method ($6), pending messages (by enqueue order), due retries (by retry time) and
		// expired leases (by expiry) are each read from a partial index in that order, so
		// LIMIT stops after the rows taken: the cost does not grow with the number of due
		// retries, expired leases, in-flight messages or messages of other methods.
		//
		// {{async}}: the lease's own transaction commits without waiting for its WAL flush
		// (see leaseAsync).
		lease: q(`
WITH now AS (SELECT coalesce($1::timestamptz, now()) AS ts{{async}}),
paused AS (SELECT paused FROM {{s}}.settings WHERE id = 1),
methods AS (SELECT DISTINCT method FROM unnest($6::text[]) AS u(method) WHERE NOT (SELECT paused FROM paused)),
pending AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq FROM {{s}}.messages m
		WHERE m.status = 'pending' AND m.method = methods.method
		ORDER BY m.seq LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
due AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq FROM {{s}}.messages m
		WHERE m.status = 'temporary_failure' AND m.method = methods.method AND m.next_retry_after <= (SELECT ts FROM now)
		ORDER BY m.next_retry_after LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
expired AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq FROM {{s}}.messages m
		WHERE m.status = 'leased' AND m.method = methods.method AND m.leased_until <= (SELECT ts FROM now)
		ORDER BY m.leased_until LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
candidates AS (
	SELECT id, attempt_count FROM (
		SELECT * FROM pending UNION ALL SELECT * FROM due UNION ALL SELECT * FROM expired
	) c ORDER BY seq LIMIT $3
),
exhausted AS (
	UPDATE {{s}}.messages m SET status = 'permanent_failure',
		status_reason = 'gave up after ' || m.attempt_count || ' attempts whose leases expired without a result (the delivering process probably stopped mid-delivery)',
		updated_at = (SELECT ts FROM now), leased_by = NULL, leased_until = NULL, next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE attempt_count >= $5))
),
leased AS (
	UPDATE {{s}}.messages m SET status = 'leased', leased_by = $2,
		leased_until = (SELECT ts FROM now) + $4 * interval '1 microsecond',
		attempt_count = m.attempt_count + 1, updated_at = (SELECT ts FROM now), next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE attempt_count < $5))
	RETURNING m.id, m.method, m.template_id, m.user_id, m.payload, m.attempt_count, m.created_at, m.seq
)
SELECT l.id, l.method, l.template_id, t.name, t.title_template, t.body_template, l.payload::text,
	coalesce(p.disabled, NOT t.enabled_by_default), l.attempt_count, l.created_at, (SELECT ts FROM now)
FROM leased l
JOIN {{s}}.templates t ON t.id = l.template_id
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
		markSent: q(`
UPDATE {{s}}.messages m SET status = 'sent', status_reason = '', sent_at = coalesce($1::timestamptz, now()),
	updated_at = coalesce($1::timestamptz, now()), leased_by = NULL, leased_until = NULL
FROM unnest($3::text[]::uuid[], $4::int[]) AS r(id, attempt)
WHERE m.id = r.id AND (m.status = 'leased' AND m.leased_by = $2 AND m.attempt_count = r.attempt) IS TRUE`),

		markFailed: q(`
UPDATE {{s}}.messages m SET status = r.status, status_reason = r.reason, updated_at = coalesce($1::timestamptz, now()),
	next_retry_after = CASE WHEN r.status = 'temporary_failure'
		THEN coalesce($1::timestamptz, now()) + r.delay * interval '1 microsecond' END,
	leased_by = NULL, leased_until = NULL
FROM unnest($3::text[]::uuid[], $4::int[], $5::text[], $6::text[], $7::bigint[]) AS r(id, attempt, status, reason, delay)
WHERE m.id = r.id AND (m.status = 'leased' AND m.leased_by = $2 AND m.attempt_count = r.attempt) IS TRUE`),

		// One batch of the purge: at most $4 rows, oldest first, skipping rows that are
		// locked (a late flush), under a transaction-scoped try-lock so that one replica
		// purges at a time. It reports whether it got the lock.
		purge: q(`
WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($3)) AS got),
victims AS (
	SELECT id FROM {{s}}.messages
	WHERE (SELECT got FROM lock)
	  AND status IN ('sent', 'permanent_failure', 'inhibited')
	  AND updated_at <= coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond'
	ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED
),
del AS (DELETE FROM {{s}}.messages m USING victims v WHERE m.id = v.id RETURNING 1)
SELECT (SELECT got FROM lock), (SELECT count(*) FROM del)::int`),
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
		// disabled it, otherwise insert every row. (No pg_notify here: see notify.go.)
		enqueue: q(`
WITH input AS (
	SELECT * FROM unnest($2::text[]::uuid[], $3::text[]::uuid[], $4::text[]::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
		WITH ORDINALITY AS r(id, template_id, user_id, method, payload, targets, created_by, dedupe_key, ord)
),
bad AS (
	SELECT i.template_id, i.user_id, t.id IS NULL AS missing
	FROM input i
	LEFT JOIN {{s}}.templates t ON t.id = i.template_id
	LEFT JOIN {{s}}.preferences p ON p.user_id = i.user_id AND p.template_id = i.template_id
	WHERE t.id IS NULL OR coalesce(p.disabled, NOT t.enabled_by_default)
	ORDER BY i.ord
	LIMIT 1
),
ins AS (
	INSERT INTO {{s}}.messages (id, template_id, user_id, method, payload, targets, created_by, dedupe_key, created_at, updated_at)
	SELECT id, template_id, user_id, method, payload::json, targets::uuid[], created_by, dedupe_key,
		coalesce($1::timestamptz, now()), coalesce($1::timestamptz, now())
	FROM input WHERE NOT EXISTS (SELECT 1 FROM bad)
	ORDER BY ord
	RETURNING 1
)
SELECT (SELECT template_id FROM bad), (SELECT user_id FROM bad), (SELECT missing FROM bad),
	(SELECT count(*) FROM ins)::int`),

		template: q(`SELECT id, name, grp, kind, title_template, body_template, actions::text, method, enabled_by_default
FROM {{s}}.templates WHERE id = $1`),

		upsertTemplates: q(`
INSERT INTO {{s}}.templates (id, name, grp, kind, title_template, body_template, actions, method, enabled_by_default, updated_at)
SELECT r.id, r.name, r.grp, r.kind, r.title, r.body, r.actions::jsonb, r.method, r.enabled, coalesce($1::timestamptz, now())
FROM unnest($2::text[]::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[])
	AS r(id, name, grp, kind, title, body, actions, method, enabled)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, grp = excluded.grp, kind = excluded.kind,
	title_template = excluded.title_template, body_template = excluded.body_template, actions = excluded.actions,
	method = excluded.method, enabled_by_default = excluded.enabled_by_default, updated_at = excluded.updated_at`),

		message: q(`SELECT ` + messageColumns + ` FROM {{s}}.messages WHERE id = $1`),
		messages: q(`SELECT ` + messageColumns + ` FROM {{s}}.messages
WHERE ($1 = '' OR status = $1) AND ($2::uuid IS NULL OR user_id = $2) AND ($3 = '' OR method = $3)
ORDER BY seq LIMIT $4`),
		countByStatus:   q(`SELECT status, count(*) FROM {{s}}.messages GROUP BY status`),
		pendingByMethod: q(`SELECT method, count(*) FROM {{s}}.messages WHERE status = 'pending' GROUP BY method`),
		setPreference: q(`
INSERT INTO {{s}}.preferences (user_id, template_id, disabled, updated_at)
VALUES ($2, $3, $4, coalesce($1::timestamptz, now()))
ON CONFLICT (user_id, template_id) DO UPDATE SET disabled = excluded.disabled, updated_at = excluded.updated_at`),
		setPaused: q(`UPDATE {{s}}.settings SET paused = $1 WHERE id = 1`),
		paused:    q(`SELECT paused FROM {{s}}.settings WHERE id = 1`),

		inboxInsert: q(`
INSERT INTO {{s}}.inbox (id, user_id, template_id, title, content, actions, targets, title_markdown, created_at)
VALUES ($2, $3, $4, $5, $6, $7::jsonb, $8::uuid[], $9, coalesce($1::timestamptz, now()))
ON CONFLICT (id) DO NOTHING`),
		inboxList: q(`SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at
FROM {{s}}.inbox WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) ORDER BY seq DESC LIMIT $3`),
		inboxGet: q(`SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at
FROM {{s}}.inbox WHERE id = $1`),
		inboxMaxSeq: q(`SELECT coalesce(max(seq), 0) FROM {{s}}.inbox`),
		inboxSince: q(`SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at
FROM {{s}}.inbox WHERE seq > $1 AND seq <= $2 AND user_id = ANY($3::text[]::uuid[]) ORDER BY seq`),
		inboxUnread: q(`SELECT count(*) FROM {{s}}.inbox WHERE user_id = $1 AND read_at IS NULL`),
		inboxMarkRead: q(`UPDATE {{s}}.inbox SET read_at = coalesce(read_at, coalesce($1::timestamptz, now()))
WHERE id = $3 AND user_id = $2`),
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
