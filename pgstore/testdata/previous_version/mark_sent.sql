-- The mark_sent statement of the previous version (schema version 8), verbatim, {{s}} for the schema: what its replicas run during a rolling upgrade.
WITH done AS (
	UPDATE {{s}}.messages m SET status = 'sent', status_reason = '', cancel_reason = NULL, sent_at = coalesce($1::timestamptz, now()),
		updated_at = coalesce($1::timestamptz, now()), leased_by = NULL, leased_until = NULL,
		last_leased_at = m.updated_at, last_notifier = $2, last_duration_ns = r.took
	FROM unnest($3::text[]::uuid[], $4::int[], $5::bigint[]) AS r(id, attempt, took)
	WHERE m.id = r.id AND (m.status = 'leased' AND m.leased_by = $2 AND m.attempt_count = r.attempt) IS TRUE
	RETURNING 1
)
SELECT count(*)::int FROM done
