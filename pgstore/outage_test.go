package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cdr.dev/slog"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/internal/signal"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// eventSink counts log entries whose message starts with one of the watched prefixes and
// signals each time one arrives.
type eventSink struct {
	mu      sync.Mutex
	counts  map[string]int
	changed signal.Signal
}

func newEventSink() *eventSink {
	return &eventSink{counts: map[string]int{}}
}

func (s *eventSink) LogEntry(_ context.Context, e slog.SinkEntry) {
	s.mu.Lock()
	s.counts[e.Message]++
	s.mu.Unlock()
	s.changed.Broadcast()
}

func (*eventSink) Sync() {}

// waitFor blocks until cond holds over the counts, or ctx ends.
func (s *eventSink) waitFor(ctx context.Context, cond func(counts map[string]int) bool) error {
	return s.changed.Wait(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return cond(s.counts)
	})
}

func countPrefix(counts map[string]int, prefix string) int {
	n := 0
	for msg, c := range counts {
		if strings.HasPrefix(msg, prefix) {
			n += c
		}
	}
	return n
}

// TestDatabaseOutage takes the database away in the middle of a drain: connections are
// refused and every backend is terminated, until the Manager has failed to write its
// buffered results three times, logging each time. Then the database comes back. The Manager must keep
// its buffered results, write them, resume leasing, and end with every message sent,
// each delivered once (the outage is shorter than LeasePeriod).
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a database offline")
	}
	if !pgtest.Long() {
		t.Skipf("long test: runs in the default exec mode only (this run: %s)", os.Getenv(pgtest.EnvExecMode))
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// A database of its own, so that taking it offline affects no other test.
	pcfg, dbName := databaseOfItsOwn(t, ctx, "outage")
	admin := pgtest.Pool(t)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{})
	const n = 10000
	benchkit.EnqueueN(t, store, n)

	sink := newEventSink()
	var delivered atomic.Int64
	quarter, outage := make(chan struct{}), make(chan struct{})
	h := notificationstest.NewRecordingHandler(func(context.Context, notificationstest.Delivery) (bool, error) {
		switch d := delivered.Add(1); {
		case d == n/4:
			close(quarter)
			fallthrough
		case d > n/4:
			// Deliveries from here on finish only once the outage has begun, so their
			// results must be written during it (however fast the drain was).
			<-outage
		}
		return false, nil
	})
	cfg := benchkit.BenchConfig()
	cfg.LeaseCount = 100
	cfg.StoreSyncBufferSize = 100
	cfg.StoreSyncInterval = 20 * time.Millisecond
	cfg.FetchInterval = 50 * time.Millisecond
	cfg.LeasePeriod = time.Minute
	cfg.DispatchTimeout = 30 * time.Second
	cfg.Logger = slog.Make(sink).Leveled(slog.LevelWarn)
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
	<-quarter

	// Outage: no new connections, every existing one terminated.
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", dbName); err != nil {
		t.Fatal(err)
	}
	close(outage)
	var bufferedDuringOutage int
	if err := sink.waitFor(ctx, func(c map[string]int) bool {
		// Three failed writes: the first batch failed, was kept, and failed again on retry.
		// (Leases fail too while a slot is free; with every slot waiting on a result
		// write, the notifier does not lease at all.)
		if countPrefix(c, "write delivery results") >= 3 {
			s, f := m.BufferedUpdatesCount()
			bufferedDuringOutage = s + f
			return true
		}
		return false
	}); err != nil {
		sink.mu.Lock()
		t.Fatalf("the Manager did not report failing writes and leases: %v (logged: %v; delivered %d)", err, sink.counts, delivered.Load())
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}

	if err := h.WaitForDeliveries(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop after the outage: %v", err)
	}
	counts, err := store.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[notifications.StatusSent] != n {
		t.Fatalf("after the outage: %v, want all %d sent", counts, n)
	}
	seen := map[uuid.UUID]bool{}
	for _, d := range h.Deliveries() {
		if seen[d.MsgID] {
			t.Fatalf("message %s delivered twice", d.MsgID)
		}
		seen[d.MsgID] = true
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	t.Logf("outage at %d deliveries: %d failed result writes, %d failed leases logged; %d results were buffered during the outage and none was lost; %s",
		n/4, countPrefix(sink.counts, "write delivery results"), countPrefix(sink.counts, "lease messages"), bufferedDuringOutage,
		fmt.Sprint(len(seen), " messages delivered once each"))
}
