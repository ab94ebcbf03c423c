-- The purge statement of the previous version (schema versions 8 to 10), verbatim, {{s}} for the schema: what its replicas run during a rolling upgrade.
WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext($3)) AS got),
finished AS (
	SELECT id, updated_at FROM {{s}}.messages
	WHERE (SELECT got FROM lock)
	  AND status IN ('sent', 'permanent_failure', 'inhibited')
	  AND updated_at <= coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond'
	ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED
),
canceled AS (
	SELECT id, updated_at FROM {{s}}.messages
	WHERE (SELECT got FROM lock)
	  AND status = 'canceled'
	  AND updated_at <= coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond'
	ORDER BY updated_at LIMIT $4 FOR UPDATE SKIP LOCKED
),
victims AS (
	SELECT id FROM (SELECT * FROM finished UNION ALL SELECT * FROM canceled) f ORDER BY updated_at LIMIT $4
),
del AS (DELETE FROM {{s}}.messages m USING victims v WHERE m.id = v.id RETURNING 1)
SELECT (SELECT got FROM lock), (SELECT count(*) FROM del)::int
