#!/usr/bin/env bash
# Builds a throw-away schema "explain_v1" with 1,000,000 messages (one INSERT ... SELECT
# generate_series), prints EXPLAIN (ANALYZE, BUFFERS) of each operator search shape
# (the SQL pgstore.Store.Messages builds, with literals), and drops the schema. Run it as
# ./scripts/with-postgres.sh ./scripts/explain-search.sh (BENCHMARKS.md has a run).
set -euo pipefail

DB="$NOTIFICATIONS_TEST_DATABASE_URL"
M="$(cd "$(dirname "$0")/.." && pwd)/pgstore/migrations"
run() { psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }
run -c 'DROP SCHEMA IF EXISTS explain_v1 CASCADE' -c 'CREATE SCHEMA explain_v1'
for f in 0001_init.sql 0002_lease_indexes.sql 0003_inbox_title_markdown.sql 0004_lease_indexes_by_method.sql 0005_api_v1.sql; do
  PGOPTIONS='-c search_path=explain_v1' run -f "$M/$f"
done
PGOPTIONS='-c search_path=explain_v1' run <<'SQL'
INSERT INTO templates (id, name, title_template, body_template)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(t), 12, '0'))::uuid, 'template ' || t, 'x', 'y' FROM generate_series(1, 20) t;
-- 1,000,000 messages over 30 days, oldest first: 10,000 users, 20 templates, 3 methods;
-- 95% sent, 3% permanent_failure, 1% temporary_failure, 1% pending.
INSERT INTO messages (id, template_id, user_id, method, status, payload, created_at, updated_at, sent_at, next_retry_after)
SELECT gen_random_uuid(),
  ('00000000-0000-0000-0000-' || lpad(to_hex(1 + g % 20), 12, '0'))::uuid,
  ('00000000-0000-0000-0001-' || lpad(to_hex(1 + (g::bigint * 7919) % 10000), 12, '0'))::uuid,
  (ARRAY['smtp', 'webhook', 'inbox'])[1 + g % 3],
  CASE WHEN g % 100 < 95 THEN 'sent' WHEN g % 100 < 98 THEN 'permanent_failure' WHEN g % 100 < 99 THEN 'temporary_failure' ELSE 'pending' END,
  '{}', timestamptz '2026-10-01' + g * interval '2.592 second', timestamptz '2026-10-01' + g * interval '2.592 second',
  CASE WHEN g % 100 < 95 THEN timestamptz '2026-10-01' + g * interval '2.592 second' END,
  CASE WHEN g % 100 = 98 THEN timestamptz '2026-10-31' END
FROM generate_series(1, 1000000) g;
SQL
# The later migrations (the search indexes among them) after the rows, as on a live table.
for f in "$M"/*.sql; do
  [ "$(basename "$f")" \> 0006 ] && PGOPTIONS='-c search_path=explain_v1' run -f "$f"
done
run -c 'VACUUM ANALYZE explain_v1.messages'
S=explain_v1.messages
COLS="id, template_id, user_id, method, status, status_reason, attempt_count, payload::text, targets, created_by, created_at, updated_at, leased_by, leased_until, next_retry_after, sent_at, seq"
ex() { echo "### $1"; echo; echo '```'; run -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2" | sed 's/ *$//'; echo '```'; echo; }
ex "Every message, first page" "SELECT $COLS FROM $S m WHERE true ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "Every message, a later page (cursor)" "SELECT $COLS FROM $S m WHERE (m.created_at, m.seq) < ('2026-10-15 12:00:00+00'::timestamptz, 480000::bigint) ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "By user" "SELECT $COLS FROM $S m WHERE m.user_id = '00000000-0000-0000-0001-000000000abc' ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "By template" "SELECT $COLS FROM $S m WHERE m.template_id = '00000000-0000-0000-0000-000000000007' ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "By method" "SELECT $COLS FROM $S m WHERE m.method = 'smtp' ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "Time window (one day)" "SELECT $COLS FROM $S m WHERE m.created_at >= '2026-10-10' AND m.created_at < '2026-10-11' ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ST="CASE WHEN m.leased_by IS NOT NULL AND m.status IN ('pending', 'temporary_failure') THEN 'leased' ELSE m.status END"
walk() { echo "(SELECT m.* FROM $S m WHERE m.status = '$1' AND $ST = '$1' AND true ORDER BY m.created_at DESC, m.seq DESC LIMIT 51)"; }
ex "By statuses (temporary_failure, permanent_failure)" "SELECT $COLS FROM ($(walk permanent_failure) UNION ALL $(walk temporary_failure)) m ORDER BY created_at DESC, seq DESC LIMIT 51"
ex "By status sent" "SELECT $COLS FROM ($(walk sent)) m ORDER BY created_at DESC, seq DESC LIMIT 51"
ex "By user and status" "SELECT $COLS FROM $S m WHERE m.user_id = '00000000-0000-0000-0001-000000000abc' AND $ST = ANY('{permanent_failure}'::text[]) ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
ex "By template, method and time window" "SELECT $COLS FROM $S m WHERE m.template_id = '00000000-0000-0000-0000-000000000007' AND m.method = 'webhook' AND m.created_at >= '2026-10-10' AND m.created_at < '2026-10-20' ORDER BY m.created_at DESC, m.seq DESC LIMIT 51"
run -c 'DROP SCHEMA explain_v1 CASCADE'
