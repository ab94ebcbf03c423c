package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

type fixture struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
	store  *pgstore.Store
	enq    *notifications.StoreEnqueuer
	tmpl   notifications.Template
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	store, pool, schema := newStore(t)
	tmpl := notifications.Template{ID: uuid.New(), Name: "welcome", TitleTemplate: "Welcome {{.UserName}}", BodyTemplate: "Hello", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		DefaultMethods: []notifications.Method{notifications.MethodWebhook},
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id, Email: "u@example.com", Name: "U"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, pool: pool, schema: schema, store: store, enq: enq, tmpl: tmpl}
}

func (f *fixture) manager(cfg notifications.Config, h notifications.Handler) *notifications.Manager {
	f.t.Helper()
	m, err := notifications.NewManager(f.store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	m.Run(f.ctx)
	f.t.Cleanup(func() {
		if err := m.Stop(context.Background()); err != nil {
			f.t.Errorf("stop: %v", err)
		}
	})
	return m
}

func TestThreeManagersDeliverExactlyOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	f := newFixture(t)
	const total = 10000
	reqs := make([]notifications.EnqueueRequest, 0, 1000)
	var ids []uuid.UUID
	for i := 0; i < total; i++ {
		reqs = append(reqs, notifications.EnqueueRequest{TemplateID: f.tmpl.ID, UserID: uuid.New(), Labels: map[string]string{"i": fmt.Sprint(i)}})
		if len(reqs) == cap(reqs) {
			got, err := f.enq.SendAtomic(f.ctx, reqs...)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got...)
			reqs = reqs[:0]
		}
	}
	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 100
	cfg.StoreSyncBufferSize = 200
	cfg.StoreSyncInterval = 50 * time.Millisecond
	metrics := notifications.NewMetrics(prometheus.NewRegistry(), notifications.MetricsConfig{})
	cfg.Metrics = metrics
	managers := []*notifications.Manager{f.manager(cfg, h), f.manager(cfg, h), f.manager(cfg, h)}
	if err := h.WaitForDeliveries(f.ctx, total); err != nil {
		t.Fatal(err)
	}
	for _, m := range managers {
		if err := m.Stop(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	requireEachOnce(t, h.Deliveries(), ids)
	counts, err := f.store.CountByStatus(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[notifications.StatusSent] != total || len(counts) != 1 {
		t.Fatalf("statuses %v, want all %d sent", counts, total)
	}
}

func TestTransactionalEnqueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.FetchInterval = time.Hour // a delivery within the test can only come from a wake-up
	// The Manager's clock is a mock that the test never advances: no poll, no sync tick.
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	cfg.Clock = clk
	f.manager(cfg, h)

	begin := func() pgx.Tx {
		tx, err := f.pool.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	// Rolled back: no row, no delivery.
	tx := begin()
	rolledBack, err := f.enq.SendAtomicTx(f.ctx, tx, notifications.EnqueueRequest{UserID: uuid.New(), TemplateID: f.tmpl.ID, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Message(f.ctx, rolledBack[0]); err == nil {
		t.Fatal("a rolled-back enqueue left a row")
	}
	// Committed: delivered through the LISTEN/NOTIFY wake-up (the one the store sends
	// TxWakeDelay after the enqueue; a host would also call Wake after committing).
	tx = begin()
	committed, err := f.enq.SendAtomicTx(f.ctx, tx, notifications.EnqueueRequest{UserID: uuid.New(), TemplateID: f.tmpl.ID, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(f.ctx, 1); err != nil {
		t.Fatal(err)
	}
	ds := h.Deliveries()
	if len(ds) != 1 || ds[0].MsgID != committed[0] {
		t.Fatalf("deliveries %+v, want only %s", ds, committed[0])
	}
}

func TestListenerSurvivesTerminatedBackend(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.FetchInterval = time.Hour
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	cfg.Clock = clk
	f.manager(cfg, h)

	if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(f.ctx, 1); err != nil {
		t.Fatal(err)
	}
	channel := f.schema + ".wake"
	pid := f.listenerPID(channel, 0)
	var terminated bool
	if err := f.pool.QueryRow(f.ctx, "SELECT pg_terminate_backend($1, 10000)", pid).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate listener backend %d: %v, %v", pid, terminated, err)
	}
	// Enqueued while the listener is down or reconnecting: the reconnect's catch-up
	// wake-up finds it.
	if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(f.ctx, 2); err != nil {
		t.Fatal(err)
	}
	// And the new connection keeps delivering notifications.
	f.listenerPID(channel, pid)
	if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(f.ctx, 3); err != nil {
		t.Fatal(err)
	}
}

// listenerPID waits for a backend, other than not, that is listening on channel. The
// listener connects on its own schedule, so this polls pg_stat_activity (bounded).
func (f *fixture) listenerPID(channel string, not int) int {
	f.t.Helper()
	for i := 0; i < 500; i++ {
		var pid int
		err := f.pool.QueryRow(f.ctx, `SELECT pid FROM pg_stat_activity
			WHERE query = 'LISTEN ' || quote_ident($1) AND pid <> $2 AND pid <> pg_backend_pid() LIMIT 1`, channel, not).Scan(&pid)
		if err == nil {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("no listener on %s", channel)
	return 0
}

// requireEachOnce fails unless deliveries are exactly the messages ids, each delivered once.
func requireEachOnce(t *testing.T, deliveries []notificationstest.Delivery, ids []uuid.UUID) {
	t.Helper()
	seen := make(map[uuid.UUID]int, len(ids))
	for _, d := range deliveries {
		seen[d.MsgID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("message %s delivered %d times", id, seen[id])
		}
	}
	if len(seen) != len(ids) {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), len(ids))
	}
}
