package pgstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// TestLeaseAndSingleEnqueueAreNotPlannedPerCall: the lease and a single enqueue, the
// statements on the path from an enqueue to its delivery, run on their prepared
// statement's generic plan instead of being planned again for every call (planning these
// statements took longer than running them: about 1 ms each, most of the idle latency).
// The setting that asks for it stays in the statement's own transaction: the pool's
// connection is back to plan_cache_mode auto afterwards. A batch enqueue keeps plans made
// for its arrays.
func TestLeaseAndSingleEnqueueAreNotPlannedPerCall(t *testing.T) {
	t.Parallel()
	_, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement below on one connection, whose prepared statements we read
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema, WakeInterval: -1})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	const calls = 8 // PostgreSQL plans the first five executions of a statement for their parameters anyway
	notifier := uuid.New()
	for range calls {
		msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
		if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{msg}, true); err != nil {
			t.Fatal(err)
		}
		leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{"smtp"},
			Limit: 10, LeasePeriod: time.Minute, MaxAttempts: 3})
		if err != nil || len(leased) != 1 {
			t.Fatalf("lease: %d, %v", len(leased), err)
		}
	}
	var mode string
	if err := pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "auto" {
		t.Fatalf("plan_cache_mode on the pool's connection after the store's statements: %q, want auto", mode)
	}
	if cfg.ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		return // no prepared statements to read
	}
	rows, err := pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for rows.Next() {
		var sql string
		var generic, custom int64
		if err := rows.Scan(&sql, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		for name, marker := range map[string]string{"lease": "\nleased AS (", "enqueue": "\nins AS ("} {
			if !strings.Contains(sql, marker) {
				continue
			}
			found[name] = true
			if custom != 0 || generic < calls {
				t.Errorf("%s: %d custom plans, %d executions on the generic plan; want 0 and %d", name, custom, generic, calls)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !found["lease"] || !found["enqueue"] {
		t.Fatalf("prepared statements found: %v; want the lease and the enqueue", found)
	}
}
