package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// leaseTimer records the longest LeaseMessages call.
type leaseTimer struct {
	notifications.NotifierStore
	worst atomic.Int64
}

func (l *leaseTimer) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	start := time.Now()
	msgs, err := l.NotifierStore.LeaseMessages(ctx, p)
	d := int64(time.Since(start))
	for {
		w := l.worst.Load()
		if d <= w || l.worst.CompareAndSwap(w, d) {
			return msgs, err
		}
	}
}

// untilClosed calls fn until stop is closed or fn fails, and returns fn's error.
func untilClosed(stop <-chan struct{}, fn func() error) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := fn(); err != nil {
			return err
		}
	}
}

// TestMigrateWhileReplicasRun migrates a schema from version 12 (the oldest this code runs
// on: its enqueues write the dedupe_keys table of 0012_dedupe_keys.sql) to the current
// one, filling that table with the keys of a backlog stored before 0012 (by the previous
// version's enqueue) and dropping the unique index of messages, while a purge runs, two
// Managers drain a backlog and a host keeps enqueueing, and bounds the longest enqueue and
// lease during the migration: index builds run CONCURRENTLY and every other DDL waits at
// most lock_timeout for its lock.
func TestMigrateWhileReplicasRun(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 messages")
	}
	if !pgtest.Long() {
		t.Skip("long test: runs in the default exec mode only")
	}
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const previous = 12 // the code needs 0012's table
	if err := pgstore.MigrateTo(ctx, pool, previous-1, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", BodyTemplate: "b", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	var (
		idsMu sync.Mutex
		ids   []uuid.UUID
	)
	newMsg := func() driver.NewMessage {
		id := uuid.New()
		m := driver.NewMessage{ID: id, TemplateID: tmpl.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook), Payload: []byte(`{}`),
			DedupeKey: "key " + id.String()}
		idsMu.Lock()
		ids = append(ids, m.ID)
		idsMu.Unlock()
		return m
	}
	// A backlog stored before 0012 by the previous version, so that the fill has its keys
	// to copy while the Managers drain it.
	const backlog = 20_000
	enqueueSQL := previousStatement(t, "enqueue", schema)
	for i := 0; i < backlog; i += 5000 {
		batch := make([]driver.NewMessage, 5000)
		for j := range batch {
			batch[j] = newMsg()
		}
		if n, err := previousEnqueue(ctx, pool, enqueueSQL, batch); err != nil || n != len(batch) {
			t.Fatalf("the previous version's enqueue stored %d of %d: %v", n, len(batch), err)
		}
	}
	if err := pgstore.MigrateTo(ctx, pool, previous, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}

	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 50
	cfg.StoreSyncInterval = 20 * time.Millisecond
	cfg.FetchInterval = 100 * time.Millisecond
	timer := &leaseTimer{NotifierStore: store}
	var managers []*notifications.Manager
	for range 2 {
		m, err := notifications.NewManager(timer, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Run(ctx)
		managers = append(managers, m)
	}

	// The host keeps enqueueing, one message per call, and times each call.
	var (
		enqueued    atomic.Int64
		worstEnq    atomic.Int64
		stopEnqueue = make(chan struct{})
		wg          sync.WaitGroup
	)
	var enqErr error
	wg.Go(func() {
		enqErr = untilClosed(stopEnqueue, func() error {
			start := time.Now()
			if _, err := store.EnqueueMessages(ctx, []driver.NewMessage{newMsg()}, true); err != nil {
				return err
			}
			if d := int64(time.Since(start)); d > worstEnq.Load() {
				worstEnq.Store(d)
			}
			enqueued.Add(1)
			return nil
		})
	})

	// Let the drain get going, then migrate under load; only waits during the migration
	// count. A purge deletes what has been delivered meanwhile, keys and all.
	if err := h.WaitForDeliveries(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	var purged atomic.Int64
	var purgeErr error
	wg.Go(func() {
		purgeErr = untilClosed(stopEnqueue, func() error {
			n, err := store.PurgeMessages(ctx, driver.PurgeParams{MessagesOlderThan: 0, BatchSize: 500})
			purged.Add(int64(n))
			return err
		})
	})
	worstEnq.Store(0)
	timer.worst.Store(0)
	start := time.Now()
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatalf("migrate under load: %v", err)
	}
	took := time.Since(start)
	enqDuring, leaseDuring := time.Duration(worstEnq.Load()), time.Duration(timer.worst.Load())
	close(stopEnqueue)
	wg.Wait()
	if enqErr != nil || purgeErr != nil {
		t.Fatalf("during the migration: enqueue: %v; purge: %v", enqErr, purgeErr)
	}
	total := backlog + int(enqueued.Load())
	if err := h.WaitForDeliveries(ctx, total); err != nil {
		t.Fatal(err)
	}
	for _, m := range managers {
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	requireEachOnce(t, h.Deliveries(), ids)
	// The keys of the backlog (filled by the migration) and of the enqueues during it
	// (written by them) are there for every message the purge left, each naming its
	// message, and none for a purged one.
	if got := checkDedupeKeys(t, ctx, pool, schema); got != total-int(purged.Load()) {
		t.Fatalf("%d dedupe keys for %d messages stored and %d purged", got, total, purged.Load())
	}
	msg := fmt.Sprintf("migration %d -> %d took %s with %d messages and two Managers draining; during it the worst enqueue took %s and the worst lease %s (%d enqueues, %d messages purged)",
		previous, pgstore.SchemaVersion(), took.Round(time.Millisecond), backlog, enqDuring.Round(time.Microsecond), leaseDuring.Round(time.Microsecond), enqueued.Load(), purged.Load())
	t.Log(msg)
	const bound = time.Second
	if enqDuring > bound || leaseDuring > bound {
		t.Fatalf("%s; want both under %s", msg, bound)
	}
}
