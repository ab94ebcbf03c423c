-- The batch enqueue statement of the previous version (schema version 8), verbatim, {{s}} for the schema: what its replicas run during a rolling upgrade. It writes no dedupe_keys row: the insert trigger of 0012_dedupe_keys.sql adds them.
WITH input AS (
	SELECT * FROM unnest($2::text[]::uuid[], $3::text[]::uuid[], $4::text[]::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
		WITH ORDINALITY AS r(id, template_id, user_id, method, payload, targets, created_by, dedupe_key, ord)
),
bad AS (
	SELECT i.template_id, i.user_id, t.id IS NULL OR t.deleted_at IS NOT NULL AS missing
	FROM input i
	LEFT JOIN {{s}}.templates t ON t.id = i.template_id
	LEFT JOIN {{s}}.method_preferences mp ON mp.user_id = i.user_id AND mp.template_id = i.template_id AND mp.method = i.method
	LEFT JOIN {{s}}.preferences p ON p.user_id = i.user_id AND p.template_id = i.template_id
	WHERE t.id IS NULL OR t.deleted_at IS NOT NULL OR coalesce(mp.disabled, p.disabled, NOT t.enabled_by_default)
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
	(SELECT count(*) FROM ins)::int
