-- The lease statement of the previous version (schema version 8), verbatim, {{s}} for the schema: what its replicas run during a rolling upgrade.
WITH now AS (SELECT coalesce($1::timestamptz, now()) AS ts),
paused AS (SELECT paused FROM {{s}}.settings WHERE id = 1),
methods AS (SELECT DISTINCT method FROM unnest($6::text[]) AS u(method) WHERE NOT (SELECT paused FROM paused)),
pending AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, false AS expired, NULL::timestamptz AS leased_until, m.cancel_reason,
			NULL::uuid AS leased_by, NULL::timestamptz AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'pending' AND m.method = methods.method
		ORDER BY m.seq LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
due AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, false AS expired, NULL::timestamptz AS leased_until, m.cancel_reason,
			NULL::uuid AS leased_by, NULL::timestamptz AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'temporary_failure' AND m.method = methods.method AND m.next_retry_after <= (SELECT ts FROM now)
		ORDER BY m.next_retry_after LIMIT $3 FOR UPDATE SKIP LOCKED) c
),
expired AS (
	SELECT c.* FROM methods, LATERAL (
		SELECT m.id, m.attempt_count, m.seq, m.template_id, true AS expired, m.leased_until, m.cancel_reason,
			m.leased_by, m.updated_at AS leased_at
		FROM {{s}}.messages m
		WHERE m.status = 'leased' AND m.method = methods.method AND m.leased_until <= (SELECT ts FROM now)
		ORDER BY m.leased_until LIMIT $3 FOR UPDATE SKIP LOCKED) c
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
-- the updated_at of the leased row (nothing changes it while the message is leased).
lost AS (
	INSERT INTO {{s}}.attempts (message_id, number, notifier_id, leased_at, finished_at, outcome, reason)
	SELECT c.id, c.attempt_count, c.leased_by, c.leased_at, c.leased_until, 'leased', 'lease expired without a result'
	FROM candidates c WHERE c.expired
),
lostcuts AS (
	SELECT c.id, (SELECT x.id FROM {{s}}.attempts x WHERE x.message_id = c.id ORDER BY x.id DESC OFFSET 49 LIMIT 1) AS cut
	FROM candidates c WHERE c.expired
),
losttrim AS (
	DELETE FROM {{s}}.attempts a USING lostcuts c
	WHERE a.message_id = ANY(ARRAY(SELECT id FROM lostcuts WHERE cut IS NOT NULL)) AND a.message_id = c.id AND a.id <= c.cut
),
canceled AS (
	UPDATE {{s}}.messages m SET status = 'canceled', status_reason = coalesce(m.cancel_reason, 'template deleted'), cancel_reason = NULL,
		updated_at = (SELECT ts FROM now), leased_by = NULL, leased_until = NULL, next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NOT NULL))
),
exhausted AS (
	UPDATE {{s}}.messages m SET status = 'permanent_failure',
		status_reason = 'gave up after ' || m.attempt_count || ' attempts whose leases expired without a result (the delivering process probably stopped mid-delivery)',
		updated_at = (SELECT ts FROM now), leased_by = NULL, leased_until = NULL, next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NULL AND attempt_count >= $5))
),
-- No attempt row: while leased, the message row is its current attempt (MessageAttempts
-- reads leased_by, updated_at and attempt_count).
leased AS (
	UPDATE {{s}}.messages m SET status = 'leased', leased_by = $2,
		leased_until = (SELECT ts FROM now) + $4 * interval '1 microsecond',
		attempt_count = m.attempt_count + 1, updated_at = (SELECT ts FROM now), next_retry_after = NULL
	WHERE m.id = ANY(ARRAY(SELECT id FROM candidates WHERE cancel_reason IS NULL AND attempt_count < $5))
	RETURNING m.id, m.method, m.template_id, m.user_id, m.payload, m.attempt_count, m.created_at, m.seq
)
SELECT l.id, l.method, l.template_id, t.name, t.title_template, t.body_template, l.payload::text,
	coalesce(mp.disabled, p.disabled, NOT t.enabled_by_default), l.attempt_count, l.created_at, (SELECT ts FROM now)
FROM leased l
JOIN {{s}}.templates t ON t.id = l.template_id
LEFT JOIN {{s}}.method_preferences mp ON mp.user_id = l.user_id AND mp.template_id = l.template_id AND mp.method = l.method
LEFT JOIN {{s}}.preferences p ON p.user_id = l.user_id AND p.template_id = l.template_id
ORDER BY l.seq
