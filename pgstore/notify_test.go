package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// listenFor runs store.Listen until the test ends and returns its wake-ups, after the
// first one (sent once it listens).
func listenFor(t *testing.T, f *fixture, store *pgstore.Store) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(f.ctx)
	woken := make(chan struct{}, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = store.Listen(ctx, func() { woken <- struct{}{} })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-woken:
	case <-f.ctx.Done():
		t.Fatal("Listen never listened")
	}
	return woken
}

func waitWake(t *testing.T, f *fixture, woken <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-woken:
	case <-f.ctx.Done():
		t.Fatalf("no wake-up %s", what)
	}
}

// The transactional enqueue sends no NOTIFY inside the host's transaction: the wake-up it
// schedules arrives from another connection while the transaction is still open (a NOTIFY
// in the transaction would only be delivered at its commit), and Wake after commit wakes
// the listeners again.
func TestTxEnqueueWakesFromAnotherConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	woken := listenFor(t, f, f.store)
	tx, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(f.ctx) //nolint:errcheck
	ids, err := f.enq.SendAtomicTx(f.ctx, tx, notifications.EnqueueRequest{UserID: uuid.New(), TemplateID: f.tmpl.ID, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitWake(t, f, woken, "while the transaction is open (TxWakeDelay)")
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.store.Wake()
	waitWake(t, f, woken, "after Wake")
	if _, err := f.store.Message(f.ctx, ids[0]); err != nil {
		t.Fatalf("committed message: %v", err)
	}
}

// Wake-ups asked for while a NOTIFY is in flight fold into one more: a burst of Wake
// calls sends far fewer NOTIFYs than calls, and the last call is still followed by a
// wake-up.
func TestWakeCoalesces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	woken := listenFor(t, f, f.store)
	const calls = 200
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range calls / 8 {
				f.store.Wake()
			}
		})
	}
	wg.Wait()
	waitWake(t, f, woken, "after a burst of Wake calls")
	// Drain: once no NOTIFY is in flight, the count stops moving.
	deadline := time.Now().Add(10 * time.Second)
	last := -1
	for n := f.store.WakesSent(); n != last; n = f.store.WakesSent() {
		if time.Now().After(deadline) {
			t.Fatal("NOTIFYs still being sent 10s after the burst")
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
	if last < 1 || last >= calls {
		t.Fatalf("%d NOTIFYs for %d Wake calls, want between 1 and %d", last, calls, calls-1)
	}
	for len(woken) > 0 {
		<-woken
	}
	f.store.Wake() // nothing in flight: a fresh NOTIFY
	waitWake(t, f, woken, "after a Wake on an idle store")
}

// An enqueue outside a transaction wakes the listeners after it commits, from a PollOnly
// store too.
func TestEnqueueWakesEvenFromAPollOnlyStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	woken := listenFor(t, f, f.store)
	if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, f, woken, "after an enqueue")

	// A PollOnly store (its pool goes through a transaction pooler) does not listen, but
	// its enqueues still wake the notifiers that listen elsewhere (Config.ListenerDSN).
	quiet := pgstore.New(f.pool, pgstore.Config{Schema: f.schema, PollOnly: true})
	enq, err := notifications.NewStoreEnqueuer(quiet, notifications.EnqueuerConfig{
		DefaultMethods: []notifications.Method{notifications.MethodWebhook},
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id, Email: "a@example.com"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, f, woken, "after an enqueue through a PollOnly store")
}

// A lease commits asynchronously only in its own transaction: leasing through WithTx
// leaves the host transaction's synchronous_commit as it was.
func TestLeaseInTxKeepsSynchronousCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	tx, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(f.ctx) //nolint:errcheck
	if _, err := tx.Exec(f.ctx, "SET LOCAL synchronous_commit = 'remote_apply'"); err != nil {
		t.Fatal(err)
	}
	leased, err := f.store.WithTx(tx).LeaseMessages(f.ctx, driver.LeaseParams{
		NotifierID: uuid.New(), Limit: 10, MaxAttempts: 5, LeasePeriod: time.Minute,
		Methods: []string{string(notifications.MethodWebhook)},
	})
	if err != nil || len(leased) != 1 {
		t.Fatalf("lease in tx: %d messages, %v", len(leased), err)
	}
	var got string
	if err := tx.QueryRow(f.ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "remote_apply" {
		t.Fatalf("synchronous_commit in the host transaction is %q after a lease, want remote_apply", got)
	}
}

// With a wake interval, a burst of Wake calls right after a first one sends no NOTIFY
// until the interval has passed since the first, and then one, which wakes the listener.
func TestWakeInterval(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const interval = time.Second
	store := pgstore.New(f.pool, pgstore.Config{Schema: f.schema, WakeInterval: interval})
	woken := listenFor(t, f, store)
	start := time.Now()
	store.Wake()
	waitWake(t, f, woken, "after the first Wake")
	for range 50 {
		store.Wake()
	}
	waitWake(t, f, woken, "after the burst")
	if d := time.Since(start); d < interval {
		t.Fatalf("the wake-up after the burst came %s after the first, within the interval", d)
	}
	if n := store.WakesSent(); n != 2 {
		t.Fatalf("%d NOTIFYs for a Wake and a burst of 50, want 2", n)
	}
	waitWakerIdle(t, f.ctx, store) // the sender waits out its interval, then ends
}

// waitWakerIdle waits for store's wake-up sender to end: it paces each NOTIFY's interval
// on the store's clock (a real one here, or one the test has advanced), then stops when
// nothing more was asked for.
func waitWakerIdle(t *testing.T, ctx context.Context, store *pgstore.Store) {
	t.Helper()
	for !store.WakerIdle() {
		if ctx.Err() != nil {
			t.Fatal("the wake-up sender did not stop after an interval with nothing to send")
		}
		time.Sleep(time.Millisecond) // the sender's goroutine, not a clock the test controls
	}
}

// countWakes returns a tracer that counts the wake-up NOTIFYs a pool's statements carry:
// inline ones run in an enqueue's implicit transaction, after the enqueue, if it stored
// its messages; separate ones are Wake's own statement.
func countWakes(inline, separate *atomic.Int64) sqlTracer {
	return func(sql string) {
		switch {
		case !strings.Contains(sql, "pg_notify"):
		case strings.Contains(sql, "synchronous_commit"):
			separate.Add(1)
		case strings.Contains(sql, ".messages"):
			inline.Add(1)
		}
	}
}

// An enqueue outside a transaction on an idle store carries the wake-up NOTIFY in its own
// statement, so its commit wakes the listeners, and no separate NOTIFY follows. An
// enqueue while a wake-up is pacing, or in the host's transaction, carries none: its
// wake-up is Wake's, at the end of the interval. Once the store has sent no wake-up for
// two intervals it is idle again.
func TestIdleEnqueueCarriesItsWakeUp(t *testing.T) {
	t.Parallel()
	ctx, cfg := poolConfig(t)
	var inline, separate atomic.Int64
	cfg.ConnConfig.Tracer = countWakes(&inline, &separate)
	pool, schema := migratedPool(t, ctx, cfg)
	clk := quartz.NewMock(t)
	const interval = 10 * time.Millisecond
	trap := clk.Trap().NewTimer("pgstore", "wakeInterval")
	defer trap.Close()
	store := pgstore.New(pool, pgstore.Config{Schema: schema, WakeInterval: interval}.WithTestClock(clk))
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	f := &fixture{ctx: ctx}
	woken := listenFor(t, f, store)
	enqueue := func(s *pgstore.Store) {
		t.Helper()
		msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
		if _, err := s.EnqueueMessages(ctx, []driver.NewMessage{msg}, true); err != nil {
			t.Fatal(err)
		}
	}
	counts := func(what string, wantInline, wantSeparate int64) {
		t.Helper()
		if i, s := inline.Load(), separate.Load(); i != wantInline || s != wantSeparate {
			t.Fatalf("%s: %d inline and %d separate NOTIFYs, want %d and %d", what, i, s, wantInline, wantSeparate)
		}
	}

	// waitIdle ends the interval the sender paces (it stops, having nothing to send), then
	// lets the rest of d pass.
	waitIdle := func(d time.Duration) {
		t.Helper()
		clk.Advance(interval).MustWait(ctx)
		waitWakerIdle(t, ctx, store)
		if d > interval {
			clk.Advance(d - interval).MustWait(ctx)
		}
	}
	enqueue(store)
	trap.MustWait(ctx).MustRelease(ctx) // the interval starts with the enqueue's NOTIFY
	counts("an enqueue on an idle store", 1, 0)
	waitWake(t, f, woken, "from the commit of an enqueue on an idle store")

	enqueue(store) // within the interval: Wake's NOTIFY, when it ends
	counts("an enqueue within the wake interval", 1, 0)
	clk.Advance(interval).MustWait(ctx)
	trap.MustWait(ctx).MustRelease(ctx) // sent, and pacing again
	counts("the end of the wake interval", 1, 1)
	waitWake(t, f, woken, "at the end of the wake interval")

	waitIdle(interval) // nothing asked for meanwhile: the sender stops
	enqueue(store)     // an interval after the last NOTIFY: not idle yet, and Wake sends at once
	trap.MustWait(ctx).MustRelease(ctx)
	counts("an enqueue an interval after a NOTIFY", 1, 2)
	waitWake(t, f, woken, "from Wake an interval after a NOTIFY")

	waitIdle(2 * interval)
	enqueue(store) // two intervals after the last NOTIFY: idle again
	trap.MustWait(ctx).MustRelease(ctx)
	counts("an enqueue two intervals after the last NOTIFY", 2, 2)
	waitWake(t, f, woken, "from the commit of an enqueue on a store idle again")

	// In the host's transaction, on an idle store: no NOTIFY inside it (its wake-up is the
	// TxWakeDelay one, which the mock clock holds back).
	waitIdle(2 * interval)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(store.WithTx(tx))
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	counts("an enqueue in the host's transaction", 2, 2)
}

// A refused enqueue on an idle store wakes nobody: its statement commits (a refusal is an
// answer, not an error), but the NOTIFY it carries goes out only if the message was
// stored. NOTIFYs reach a listener in commit order, so the first one after the refusal
// is the test's own marker.
func TestRefusedEnqueueOnAnIdleStoreWakesNobody(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	store := pgstore.New(f.pool, pgstore.Config{Schema: f.schema, WakeInterval: 50 * time.Millisecond})
	defer waitWakerIdle(t, f.ctx, store) // the sender paces the interval the refused enqueue started
	conn, err := pgx.Connect(f.ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(f.ctx))
	channel := f.schema + ".wake"
	if _, err := conn.Exec(f.ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	refused := driver.NewMessage{ID: uuid.New(), TemplateID: uuid.New(), UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
	if _, err := store.EnqueueMessages(f.ctx, []driver.NewMessage{refused}, true); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("enqueue for a missing template: %v, want ErrNotFound", err)
	}
	if _, err := f.pool.Exec(f.ctx, "SELECT pg_notify($1, 'marker')", channel); err != nil {
		t.Fatal(err)
	}
	n, err := conn.WaitForNotification(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != "marker" {
		t.Fatalf("first notification after a refused enqueue has payload %q, want the marker: the refusal woke the notifiers", n.Payload)
	}
}
