package pgstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// poolConfig returns a context that ends with the test (a minute at most) and a pool
// configuration for the test database, for tests that set up a pool of their own.
func poolConfig(t *testing.T) (context.Context, *pgxpool.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return ctx, cfg
}

// migratedPool opens a pool with cfg and migrates a schema of its own on it.
func migratedPool(t *testing.T, ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, string) {
	t.Helper()
	_, schema := pgtest.Schema(t)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	return pool, schema
}

// storeOnPool opens a pool with cfg, migrates a schema of its own, and returns the pool, a
// store on it and a registered template.
func storeOnPool(t *testing.T, ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, *pgstore.Store, notifications.Template) {
	t.Helper()
	pool, schema := migratedPool(t, ctx, cfg)
	store, tmpl := storeWithTemplate(t, ctx, pool, schema)
	return pool, store, tmpl
}

// databaseOfItsOwn creates a database for the test alone (dropped when it ends), named
// prefix and a random suffix, and returns a pool configuration for it and its name.
func databaseOfItsOwn(t *testing.T, ctx context.Context, prefix string) (*pgxpool.Config, string) {
	t.Helper()
	admin := pgtest.Pool(t)
	name := prefix + "_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		pgtest.Unavailable(t, "cannot create a database (needs CREATEDB): %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = name
	return cfg, name
}

// storeWithTemplate returns a store on the schema (no periodic wake-ups) and a template
// registered in it.
func storeWithTemplate(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) (*pgstore.Store, notifications.Template) {
	t.Helper()
	store := pgstore.New(pool, pgstore.Config{Schema: schema, WakeInterval: -1})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	return store, tmpl
}

// TestLeaseAndSingleEnqueueAreNotPlannedPerCall: the lease and a single enqueue, the
// statements on the path from an enqueue to its delivery, run on their prepared
// statement's generic plan instead of being planned again for every call (planning these
// statements took longer than running them: about 1 ms each, most of the idle latency).
// The setting that asks for it stays in the statement's own transaction: the pool's
// connection is back to plan_cache_mode auto afterwards. A batch enqueue keeps plans made
// for its arrays.
func TestLeaseAndSingleEnqueueAreNotPlannedPerCall(t *testing.T) {
	t.Parallel()
	ctx, cfg := poolConfig(t)
	cfg.MaxConns = 1 // every statement on the one connection whose prepared statements and settings the test reads
	pool, store, tmpl := storeOnPool(t, ctx, cfg)
	const calls = 8 // PostgreSQL plans the first five executions of a statement for their parameters anyway
	notifier := uuid.New()
	for range calls {
		msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
		if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{msg}, true); err != nil {
			t.Fatal(err)
		}
		// In a host's transaction, where the store leaves plan_cache_mode to the host,
		// PostgreSQL picks the generic plan by itself after the fifth call.
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`), DedupeKey: uuid.NewString()}
			_, err := store.WithTx(tx).EnqueueMessages(ctx, []driver.NewMessage{msg}, true)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{"smtp"},
			Limit: 10, LeasePeriod: time.Minute, MaxAttempts: 3})
		if err != nil || len(leased) != 2 {
			t.Fatalf("lease: %d, %v; want the two messages just stored", len(leased), err)
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
			// The enqueue: calls on the pool, forced, and calls in a host's transaction,
			// of which PostgreSQL plans the first five for their parameters.
			want, wantCustom := int64(calls), int64(0)
			if name == "enqueue" {
				want, wantCustom = 2*calls-5, 5
			}
			if custom != wantCustom || generic < want {
				t.Errorf("%s: %d custom plans, %d executions on the generic plan; want %d and %d", name, custom, generic, wantCustom, want)
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

// TestHotPathStatementsAreNotJITCompiled: the statements a drain and an enqueue run (the
// lease, the enqueues, the result writes, the purge) never JIT-compile. PostgreSQL
// compiles a statement whose estimated cost is above jit_above_cost (100,000 by default),
// and the lease's generic plan, which cannot know its LIMIT, is estimated above that on a
// backlog of about 100,000 messages: compiling its 170-odd expressions took 80–100 ms on
// every lease, more than the lease itself, and cut the drain of a large backlog to a
// third. The test lowers jit_above_cost to 0, so that any statement left to the server's
// setting compiles, and reads each statement's plan through auto_explain (as a notice).
func TestHotPathStatementsAreNotJITCompiled(t *testing.T) {
	t.Parallel()
	ctx, cfg := poolConfig(t)
	plans := autoExplain(cfg, "SET jit = on", "SET jit_above_cost = 0")
	cfg.MaxConns = 1 // every statement on the one connection whose prepared statements and settings the test reads
	pool, store, tmpl := storeOnPool(t, ctx, cfg)
	var jit bool
	if err := pool.QueryRow(ctx, "SELECT pg_jit_available()").Scan(&jit); err != nil {
		t.Fatal(err)
	}
	if plans.err() != nil || !jit {
		pgtest.Unavailable(t, "JIT available: %v; auto_explain: %v", jit, plans.err())
	}
	// The control: a statement of the test's own, run on the server's settings, compiles.
	plans.take()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_class").Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	control := strings.Join(plans.take(), "\n")
	if !strings.Contains(control, "JIT:") {
		t.Fatalf("the control statement did not JIT-compile; its plan: %s", control)
	}
	plans.take()
	newMessage := func() driver.NewMessage {
		return driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
	}
	batch := []driver.NewMessage{newMessage(), newMessage(), newMessage()}
	var copied []driver.NewMessage // enough for the COPY path
	for range 64 {
		copied = append(copied, newMessage())
	}
	for _, msgs := range [][]driver.NewMessage{{newMessage()}, batch, copied} {
		if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
			t.Fatal(err)
		}
	}
	// A refused batch is tried again message by message, in a transaction of the store's.
	unknown := newMessage()
	unknown.TemplateID = uuid.New()
	if refused, err := store.EnqueueMessages(ctx, []driver.NewMessage{newMessage(), unknown}, false); err != nil || len(refused) != 2 || refused[0] != nil || refused[1] == nil {
		t.Fatalf("enqueue with one refusal: %v, %v", refused, err)
	}
	notifier := uuid.New()
	leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{"smtp"},
		Limit: 100, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != 69 {
		t.Fatalf("lease: %d, %v", len(leased), err)
	}
	if n, err := store.MarkSent(ctx, notifier, []driver.SentResult{{ID: leased[0].ID, AttemptCount: 1}}); err != nil || n != 1 {
		t.Fatalf("mark sent: %d, %v", n, err)
	}
	if n, err := store.MarkFailed(ctx, notifier, []driver.FailedResult{{ID: leased[1].ID, AttemptCount: 1,
		Status: string(notifications.StatusTemporaryFailure), Reason: "x", RetryDelay: time.Minute}}); err != nil || n != 1 {
		t.Fatalf("mark failed: %d, %v", n, err)
	}
	if _, err := store.PurgeMessages(ctx, driver.PurgeParams{MessagesOlderThan: time.Hour, ReadInboxOlderThan: time.Hour}); err != nil {
		t.Fatal(err)
	}
	var jitSetting string
	if err := pool.QueryRow(ctx, "SHOW jit").Scan(&jitSetting); err != nil {
		t.Fatal(err)
	}
	if jitSetting != "on" {
		t.Errorf("jit on the pool's connection after the store's statements: %q, want on (the setting must not outlive them)", jitSetting)
	}
	markers := map[string]string{"lease": "\nleased AS (", "single enqueue": "FROM chk WHERE NOT chk.missing",
		"batch enqueue": "FROM input WHERE NOT EXISTS", "copied enqueue's check": "r(template_id, user_id, method, ord)",
		"mark sent": "sent_at = coalesce", "mark failed": "\nfinished AS (\n\tINSERT", "purge": "pg_try_advisory_xact_lock"}
	seen := map[string]bool{}
	logged := plans.take()
	for _, plan := range logged {
		text := plan[strings.Index(plan, "Query Text:"):]
		if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(text, "Query Text:")), "SELECT set_config(") {
			continue // the settings before a statement: cost 0.01, never above a real threshold
		}
		name := "a statement"
		for n, marker := range markers {
			if strings.Contains(text, marker) {
				name = n
				seen[n] = true
			}
		}
		if strings.Contains(plan, "JIT:") {
			t.Errorf("%s was JIT-compiled:\n%s", name, plan)
		}
	}
	if len(seen) != len(markers) {
		t.Fatalf("plans seen: %v; want the %d statements (%d plans logged)", seen, len(markers), len(logged))
	}
}

// planLog collects the plans that auto_explain sends as notices on a pool's connections.
type planLog struct {
	mu       sync.Mutex
	plans    []string
	setupErr error
}

// autoExplain makes every connection of cfg send the plan of each statement it runs as
// a notice, after the given settings, and collects them.
func autoExplain(cfg *pgxpool.Config, settings ...string) *planLog {
	l := &planLog{}
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if strings.Contains(n.Message, "Query Text:") {
			l.mu.Lock()
			l.plans = append(l.plans, n.Message)
			l.mu.Unlock()
		}
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for _, sql := range append([]string{"LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
			"SET auto_explain.log_level = notice"}, settings...) {
			if _, err := c.Exec(ctx, sql); err != nil {
				l.mu.Lock()
				l.setupErr = xerrors.Errorf("%s: %w", sql, err)
				l.mu.Unlock()
				return nil // reported by the test (err)
			}
		}
		return nil
	}
	return l
}

// err reports whether loading auto_explain or a setting failed on a connection (the test
// needs a superuser).
func (l *planLog) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setupErr
}

// take returns the plans collected since the last call.
func (l *planLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.plans
	l.plans = nil
	return p
}
