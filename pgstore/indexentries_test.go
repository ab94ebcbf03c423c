package pgstore_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
)

// TestSentMessageIndexEntries: a message's result write changes its status, so it is not
// a HOT update and writes an entry in every index whose predicate the new row meets. A
// sent message, the bulk of a drain, is in four indexes: the primary key and the search
// indexes by creation time, user and template. The status index leaves out sent
// messages, no index orders finished messages by age (the purge walks the creation-time
// index), and the dedupe keys are in a table of their own, written once per message.
func TestSentMessageIndexEntries(t *testing.T) {
	t.Parallel()
	ctx, _ := poolConfig(t)
	// A database of its own: VACUUM removes the rows' earlier versions only if no other
	// transaction in the same database could still see them, and no autovacuum worker
	// (whose ANALYZE holds a snapshot) runs on its tables.
	cfg, _ := databaseOfItsOwn(t, ctx, "entries")
	pool, schema := migratedPool(t, ctx, cfg)
	if _, err := pool.Exec(ctx, `DO $$ DECLARE r record; BEGIN
	FOR r IN SELECT schemaname, tablename FROM pg_tables WHERE schemaname = '`+schema+`' LOOP
		EXECUTE format('ALTER TABLE %I.%I SET (autovacuum_enabled = false)', r.schemaname, r.tablename);
	END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
	store, tmpl := storeWithTemplate(t, ctx, pool, schema)
	const n = 200
	notifier, leased := leaseNew(t, ctx, store, tmpl, n)
	markAllSent(t, ctx, store, notifier, leased)
	// VACUUM removes the entries of the rows' earlier versions and counts what is left
	// in each index (INDEX_CLEANUP ON: even when few rows are dead).
	if _, err := pool.Exec(ctx, "VACUUM (INDEX_CLEANUP ON) "+pgx.Identifier{schema, "messages"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT c.relname, c.reltuples::bigint FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace ns ON ns.oid = t.relnamespace
WHERE ns.nspname = $1 AND t.relname = 'messages' ORDER BY c.relname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Index   string
		Entries int64
	}])
	if err != nil {
		t.Fatal(err)
	}
	var with []string
	for _, e := range entries {
		switch e.Entries {
		case n:
			with = append(with, e.Index)
		case 0:
		default:
			t.Errorf("index %s has %d entries for %d sent messages", e.Index, e.Entries, n)
		}
	}
	t.Logf("entries per index after %d messages were sent: %v", n, entries)
	if want := []string{"messages_created", "messages_pkey", "messages_template_created", "messages_user_created"}; !slices.Equal(with, want) {
		t.Fatalf("a sent message is in the indexes %v; want %v", with, want)
	}
}

// TestSearchAndPurgeReadIndexes: on a table whose messages are mostly sent (the
// statistics say so), a search for sent messages walks the creation-time index (sent
// messages are most of its rows), a search for another status reads the status index of
// unsent messages, and the purge walks the creation-time index oldest first; no search
// reads the whole table, and the purge does not sort what it finds. The plans come from
// auto_explain.
func TestSearchAndPurgeReadIndexes(t *testing.T) {
	t.Parallel()
	ctx, cfg := poolConfig(t)
	plans := autoExplain(cfg)
	cfg.MaxConns = 1
	pool, schema := migratedPool(t, ctx, cfg)
	if err := plans.err(); err != nil {
		pgtest.Unavailable(t, "auto_explain: %v", err)
	}
	store, tmpl := storeWithTemplate(t, ctx, pool, schema)
	sch := pgx.Identifier{schema}.Sanitize()
	// 20,000 sent messages over two days, 100 of each other status among them.
	if _, err := pool.Exec(ctx, `INSERT INTO `+sch+`.messages (id, template_id, user_id, method, status, payload, created_at, updated_at, sent_at)
SELECT gen_random_uuid(), $1, gen_random_uuid(), 'webhook', CASE WHEN g % 200 = 1 THEN 'permanent_failure' WHEN g % 200 = 2 THEN 'canceled'
	WHEN g % 200 = 3 THEN 'inhibited' WHEN g % 200 = 4 THEN 'temporary_failure' ELSE 'sent' END, '{}',
	now() - interval '2 days' + g * interval '8 seconds', now() - interval '2 days' + g * interval '8 seconds' + interval '1 minute',
	now() - interval '2 days' + g * interval '8 seconds' + interval '1 minute'
FROM generate_series(1, 20000) g`, tmpl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE "+sch+".messages"); err != nil {
		t.Fatal(err)
	}
	plans.take()
	// plan returns the plan of the statement of run that names marker.
	plan := func(what, marker string, run func() error) string {
		t.Helper()
		if err := run(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, p := range plans.take() {
			if strings.Contains(p, marker) {
				return p
			}
		}
		t.Fatalf("%s: no plan of a statement with %q", what, marker)
		return ""
	}
	search := func(statuses ...notifications.Status) func() error {
		return func() error {
			page, err := store.Messages(ctx, notifications.MessageQuery{Statuses: statuses, Limit: 20})
			if err == nil && len(page.Messages) != 20 {
				t.Errorf("search for %v: %d messages, want 20", statuses, len(page.Messages))
			}
			return err
		}
	}
	for _, c := range []struct {
		what, marker, plan, not string
		run                     func() error
	}{
		{"search for sent messages", "ORDER BY", "Index Scan Backward using messages_created on", "Seq Scan on messages",
			search(notifications.StatusSent)},
		{"search for permanent failures", "ORDER BY", "using messages_status_unsent on", "Seq Scan on messages",
			search(notifications.StatusPermanentFailure)},
		{"search for failures and canceled messages", "ORDER BY", "using messages_status_unsent on", "Seq Scan on messages",
			search(notifications.StatusPermanentFailure, notifications.StatusCanceled)},
		// The victims in index order, not found and then sorted. (The DELETE may join
		// them with a scan of this small table.)
		{"purge", "pg_try_advisory_xact_lock", "Index Scan using messages_created on messages", "Sort Key: messages.created_at", func() error {
			n, err := store.PurgeMessages(ctx, driver.PurgeParams{MessagesOlderThan: 24 * time.Hour, BatchSize: 500})
			if err == nil && (n < 9000 || n > 11000) {
				t.Errorf("purged %d messages finished more than a day ago, want about 10,000", n)
			}
			return err
		}},
	} {
		p := plan(c.what, c.marker, c.run)
		if !strings.Contains(p, c.plan) || strings.Contains(p, c.not) {
			t.Errorf("%s: want a plan with %q and without %q; got\n%s", c.what, c.plan, c.not, p)
		}
	}
}
