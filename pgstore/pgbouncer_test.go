package pgstore_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// The tests in this file run through a real PgBouncer in transaction mode
// (scripts/with-postgres.sh starts it), with the one connection option the README's
// "Deploying" section asks for: default_query_exec_mode=exec (PgBouncer 1.18 cannot keep
// prepared statements across transactions). The exec-mode matrix of `make test` runs them
// in cache_describe and simple_protocol too.

// bouncerDSN is the PgBouncer URL with the exec mode of this run, when that mode works
// through a transaction pooler, and exec otherwise. cache_statement keeps named prepared
// statements; describe_exec prepares and executes in two exchanges, which the pooler may
// send to two different servers ("unnamed prepared statement does not exist").
func bouncerDSN(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(pgtest.PgBouncerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	mode := os.Getenv(pgtest.EnvExecMode)
	if mode == "" || mode == "cache_statement" || mode == "describe_exec" {
		mode = "exec"
	}
	q := u.Query()
	q.Set("default_query_exec_mode", mode)
	u.RawQuery = q.Encode()
	return u.String()
}

func bouncerPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(bouncerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestPgBouncerConformance: the Store conformance suite through PgBouncer, with wake-ups
// on a direct listener connection (Config.ListenerDSN).
func TestPgBouncerConformance(t *testing.T) {
	t.Parallel()
	notificationstest.RunStoreTests(t, func(t *testing.T, clk quartz.Clock) notifications.Store { return bouncerStore(t, clk) })
}

// bouncerStore is a PollOnly store through PgBouncer in a schema of its own, migrated
// through PgBouncer, with wake-ups on a direct listener connection.
func bouncerStore(t *testing.T, clk quartz.Clock) *pgstore.Store {
	t.Helper()
	_, schema := pgtest.Schema(t)
	pool := bouncerPool(t)
	cfg := pgstore.Config{Schema: schema, PollOnly: true, ListenerDSN: pgtest.URL(t)}.WithTestClock(clk)
	if err := pgstore.Migrate(context.Background(), pool, cfg); err != nil {
		t.Fatalf("migrate through PgBouncer: %v", err)
	}
	return pgstore.New(pool, cfg)
}

// TestPgBouncerMigrateFromFourProcesses: four processes migrate one schema through
// PgBouncer at once: all succeed, every migration applies once, and no lock or claim is
// left behind.
func TestPgBouncerMigrateFromFourProcesses(t *testing.T) {
	t.Parallel()
	direct, schema := pgtest.Schema(t)
	dsn := bouncerDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "MIGRATE_CHILD=1", "MIGRATE_DSN="+dsn, "MIGRATE_SCHEMA="+schema)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%v: %s", err, out)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate process %d: %v", i, err)
		}
	}
	sch := pgx.Identifier{schema}.Sanitize()
	var rows, version, claims int
	if err := direct.QueryRow(ctx, "SELECT count(*), max(version) FROM "+sch+".schema_version").Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != pgstore.SchemaVersion() || version != pgstore.SchemaVersion() {
		t.Fatalf("schema_version: %d rows, version %d; want each of %d migrations once", rows, version, pgstore.SchemaVersion())
	}
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM "+sch+".migration_claim").Scan(&claims); err != nil || claims != 0 {
		t.Fatalf("migration claims left: %d, %v", claims, err)
	}
	// A session advisory lock left on a pooled server connection would show on an idle
	// backend.
	var leaked int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND a.state = 'idle'`).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("advisory locks held by idle backends: %d, %v", leaked, err)
	}
	var invalid int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT i.indisvalid`, schema).Scan(&invalid); err != nil || invalid != 0 {
		t.Fatalf("invalid indexes: %d, %v", invalid, err)
	}
}

// migrateChildMain is a migrating process of TestPgBouncerMigrateFromFourProcesses.
func migrateChildMain() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, os.Getenv("MIGRATE_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: os.Getenv("MIGRATE_SCHEMA")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestPgBouncerManagerPollOnly: a Manager on a PollOnly store through PgBouncer drains
// 1,000 messages, each delivered exactly once.
func TestPgBouncerManagerPollOnly(t *testing.T) {
	t.Parallel()
	testBouncerManager(t, nil, pgstore.Config{PollOnly: true})
}

// TestPgBouncerManagerDetectsPooler: without PollOnly, the store finds that its pool goes
// through a transaction pooler (a LISTEN there never hears a NOTIFY), says so, and the
// Manager drains by polling.
func TestPgBouncerManagerDetectsPooler(t *testing.T) {
	t.Parallel()
	sink := newEventSink()
	// The drain may well end before the probe does: the Manager stops once the warning is
	// out.
	warned := func(ctx context.Context) error {
		return sink.waitFor(ctx, func(map[string]int) bool { return sink.countLocked(poolerWarning) > 0 })
	}
	testBouncerManager(t, warned, pgstore.Config{Logger: slog.Make(sink)})
	if n := sink.count(poolerWarning); n != 1 {
		t.Fatalf("logged %v; want the pooler warning once", sink.counts)
	}
}

// count returns how many messages logged so far contain sub.
func (s *eventSink) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(sub)
}

func (s *eventSink) countLocked(sub string) int {
	n := 0
	for msg, c := range s.counts {
		if strings.Contains(msg, sub) {
			n += c
		}
	}
	return n
}

// poolerWarning is in the message the store logs when it finds a transaction pooler.
const poolerWarning = "transaction pooler detected"

// TestPgBouncerListenDetectsPooler: Listen on a store whose pool goes through PgBouncer in
// transaction mode, without PollOnly, does not claim to listen: it logs the pooler
// warning and returns, without a wake-up, so that the notifier relies on its
// FetchInterval.
func TestPgBouncerListenDetectsPooler(t *testing.T) {
	t.Parallel()
	_, schema := pgtest.Schema(t)
	pool := bouncerPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	sink := newEventSink()
	store := pgstore.New(pool, pgstore.Config{Schema: schema, Logger: slog.Make(sink)})
	var wakes atomic.Int64
	if err := store.Listen(ctx, func() { wakes.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Listen returned only when its context ended")
	}
	if n := wakes.Load(); n != 0 {
		t.Fatalf("%d wake-ups from a listener behind a transaction pooler; want none (it cannot listen)", n)
	}
	if n := sink.count(poolerWarning); n != 1 {
		t.Fatalf("logged %v; want the pooler warning once", sink.counts)
	}
}

// testBouncerManager: a Manager on a store through PgBouncer with scfg drains 1,000
// messages, each delivered exactly once. beforeStop, if not nil, must return nil before
// the Manager is stopped.
func testBouncerManager(t *testing.T, beforeStop func(context.Context) error, scfg pgstore.Config) {
	_, schema := pgtest.Schema(t)
	pool := bouncerPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scfg.Schema = schema
	if err := pgstore.Migrate(ctx, pool, scfg); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, scfg)
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "b", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	cfg := notifications.DefaultConfig()
	cfg.FetchInterval = 50 * time.Millisecond
	cfg.StoreSyncInterval = 50 * time.Millisecond
	cfg.LeaseCount = 50
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{DefaultMethods: []notifications.Method{notifications.MethodWebhook}})
	if err != nil {
		t.Fatal(err)
	}
	const total = 1000
	reqs := make([]notifications.EnqueueRequest, total)
	for i := range reqs {
		reqs[i] = notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: &notifications.Recipient{Name: "u"}}
	}
	ids, err := enq.SendAtomic(ctx, reqs...)
	if err != nil {
		t.Fatal(err)
	}
	h := notificationstest.NewRecordingHandler(nil)
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
	if err := h.WaitForDeliveries(ctx, total); err != nil {
		t.Fatal(err)
	}
	if beforeStop != nil {
		if err := beforeStop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	requireEachOnce(t, h.Deliveries(), ids)
	counts, err := store.CountByStatus(ctx)
	if err != nil || counts[notifications.StatusSent] != total {
		t.Fatalf("statuses %v, %v; want %d sent", counts, err, total)
	}
}

// TestPgBouncerBrokerPolls: behind a transaction pooler without a listener connection the
// inbox broker polls, and a subscriber receives every item: with PollOnly, and without it
// (the broker finds the pooler, says so, and polls).
func TestPgBouncerBrokerPolls(t *testing.T) {
	t.Parallel()
	t.Run("PollOnly", func(t *testing.T) {
		t.Parallel()
		testBouncerBroker(t, pgstore.Config{PollOnly: true})
	})
	t.Run("detected", func(t *testing.T) {
		t.Parallel()
		sink := newEventSink()
		testBouncerBroker(t, pgstore.Config{Logger: slog.Make(sink)})
		if n := sink.count(poolerWarning); n != 1 {
			t.Fatalf("logged %v; want the pooler warning once", sink.counts)
		}
	})
}

func testBouncerBroker(t *testing.T, cfg pgstore.Config) {
	_, schema := pgtest.Schema(t)
	pool := bouncerPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Schema, cfg.BrokerPollInterval = schema, 20*time.Millisecond
	if err := pgstore.Migrate(ctx, pool, cfg); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, cfg)
	broker := store.NewInboxBroker()
	user := uuid.New()
	events := broker.Subscribe(ctx, user)
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- broker.Run(runCtx, func() { ready <- struct{}{} }) }()
	<-ready
	const n = 50
	for i := range n {
		item := notifications.InboxItem{ID: uuid.New(), UserID: user, TemplateID: uuid.New(), Title: fmt.Sprint(i)}
		if _, err := store.InsertInboxItem(ctx, item); err != nil {
			t.Fatal(err)
		}
		if err := broker.Publish(ctx, notifications.InboxEvent{Kind: notifications.InboxEventCreated, UserID: user, ItemID: item.ID}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case ev := <-events:
			if it := ev.Item; ev.Kind != notifications.InboxEventCreated || it.Title != fmt.Sprint(i) {
				t.Fatalf("event %d: %+v", i, it)
			}
		case <-ctx.Done():
			t.Fatalf("received %d of %d items", i, n)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
