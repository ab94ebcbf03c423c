-- The cancel statement of the previous version (schema version 8), verbatim, {{s}} for the schema: what its replicas run during a rolling upgrade.
WITH before AS (SELECT status FROM {{s}}.messages WHERE id = $2),
upd AS (
	UPDATE {{s}}.messages m SET 
		status = CASE WHEN m.status = 'leased' THEN m.status ELSE 'canceled' END,
		status_reason = CASE WHEN m.status = 'leased' THEN m.status_reason ELSE 'canceled by an operator' END,
		cancel_reason = CASE WHEN m.status = 'leased' THEN 'canceled by an operator' END,
		next_retry_after = NULL,
		updated_at = CASE WHEN m.status = 'leased' THEN m.updated_at ELSE coalesce($1::timestamptz, now()) END
	WHERE m.id = $2 AND m.status IN ('pending', 'leased', 'temporary_failure')
	RETURNING 1
)
SELECT (SELECT status FROM before), (SELECT count(*) FROM upd)::int
