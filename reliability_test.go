package notifications_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// flakyStore fails a share of bulk result writes, deterministically from a seed. Half of
// the failures happen after the write went through (a lost reply: the commit is ambiguous
// to the caller), the other half before.
type flakyStore struct {
	notifications.Store
	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	failures int
	// beforeOnly makes every failure happen before the write.
	beforeOnly bool
}

var errFlaky = errors.New("injected: connection reset by peer")

func (s *flakyStore) fail() (fail, afterWrite bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() < s.failRate {
		s.failures++
		return true, !s.beforeOnly && s.rng.IntN(2) == 0
	}
	return false, false
}

func (s *flakyStore) MarkSent(ctx context.Context, id uuid.UUID, r []driver.SentResult) (int, error) {
	fail, after := s.fail()
	if fail {
		if after {
			_, _ = s.Store.MarkSent(ctx, id, r)
		}
		return 0, errFlaky
	}
	return s.Store.MarkSent(ctx, id, r)
}

func (s *flakyStore) MarkFailed(ctx context.Context, id uuid.UUID, r []driver.FailedResult) (int, error) {
	fail, after := s.fail()
	if fail {
		if after {
			_, _ = s.Store.MarkFailed(ctx, id, r)
		}
		return 0, errFlaky
	}
	return s.Store.MarkFailed(ctx, id, r)
}

// TestFlushFailuresLoseNothing: 40% of bulk writes fail; every result is still written,
// each message is delivered exactly once, and failed batches are kept until a write
// succeeds. The Manager runs on the real clock with 1ms ticks (deliveries are concurrent,
// so the mock clock would only add races between ticks and deliveries); the test waits on
// the written-results count, never on time.
func TestFlushFailuresLoseNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := memstore.New(memstore.Config{})
	const n = 500
	benchkit.EnqueueN(t, base, n)
	flaky := &flakyStore{Store: base, rng: rand.New(rand.NewPCG(1, 2)), failRate: 0.4}
	store := notificationstest.WatchStore(flaky)
	handler := notificationstest.NewRecordingHandler(func(_ context.Context, d notificationstest.Delivery) (bool, error) {
		if strings.HasSuffix(d.MsgID.String(), "7") {
			return false, errors.New("permanently rejected") // failures are results too
		}
		return false, nil
	})
	cfg := benchkit.BenchConfig()
	cfg.StoreSyncBufferSize = 10
	cfg.LeaseCount = 10
	cfg.StoreSyncInterval = time.Millisecond
	cfg.FetchInterval = time.Millisecond
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: handler}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
	if err := store.WaitForResults(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	counts, _ := base.CountByStatus(ctx)
	if final := counts[notifications.StatusSent] + counts[notifications.StatusPermanentFailure]; final != n {
		t.Fatalf("%d of %d messages final: %v", final, n, counts)
	}
	seen := map[uuid.UUID]bool{}
	for _, d := range handler.Deliveries() {
		if seen[d.MsgID] {
			t.Fatalf("message %s delivered twice", d.MsgID)
		}
		seen[d.MsgID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d messages delivered, want %d", len(seen), n)
	}
	if flaky.failures == 0 {
		t.Fatal("no write failed: the test proves nothing")
	}
	t.Logf("%d injected write failures, 0 results lost", flaky.failures)
}

// TestStopReportsUnwritableResults: when the store refuses every write, Stop keeps
// retrying until its context ends and then says how many results it could not write; the
// messages stay leased, and the results buffered for a later Stop, which writes them.
func TestStopReportsUnwritableResults(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	store := &flakyStore{Store: h.store, rng: rand.New(rand.NewPCG(1, 2)), failRate: 1, beforeOnly: true}
	cfg := testConfig()
	m := h.manager(cfg, store)
	ids := h.enqueue(3)
	h.run(m)
	h.waitBuffered(3)
	ctx, cancel := context.WithCancel(h.ctx)
	trap := h.clk.Trap().NewTimer("Manager", "stopFlushRetry")
	defer trap.Close()
	errc := make(chan error, 1)
	go func() { errc <- m.Stop(ctx) }()
	trap.MustWait(h.ctx).MustRelease(h.ctx) // the first write failed and Stop waits to retry
	cancel()
	err := <-errc
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "3 sent and 0 failed results could not be written") {
		t.Fatalf("stop: %v", err)
	}
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusLeased {
			t.Fatalf("message %s, want leased", st)
		}
	}
	// The results stay buffered: once the store accepts writes, a later Stop writes them.
	store.mu.Lock()
	store.failRate = 0
	store.mu.Unlock()
	if err := m.Stop(h.ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("message %s after the second Stop, want sent", st)
		}
	}
}

// TestHandlerIgnoringContext: a handler that ignores cancellation keeps its slot; the
// message is not leased again while its lease holds, even after DispatchTimeout; Stop
// returns when its own context ends.
func TestHandlerIgnoringContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	defer close(release)
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		<-release // ignores ctx
		return false, nil
	}
	cfg := testConfig()
	cfg.DispatchTimeout = 2 * tick
	cfg.LeasePeriod = 10 * tick
	m := h.manager(cfg, nil)
	id := h.enqueue(1)[0]
	h.run(m)
	h.waitDeliveries(1)
	for range 5 { // past DispatchTimeout, within the lease
		h.tick()
	}
	leased, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: uuid.New(), Methods: []string{string(notifications.MethodWebhook)}, Limit: 10, LeasePeriod: time.Minute, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(leased) != 0 || h.handler.Count(id) != 1 {
		t.Fatalf("another notifier leased %d messages; handler calls %d", len(leased), h.handler.Count(id))
	}
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := m.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("stop: %v, want context.Canceled", err)
	}
}

// TestSuccessAfterDeadline: a handler that notices the deadline late but did deliver
// reports success; the message is sent, once.
func TestSuccessAfterDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(ctx context.Context, _ notificationstest.Delivery) (bool, error) {
		<-ctx.Done()
		return false, nil // the remote side accepted it anyway
	}
	cfg := testConfig()
	cfg.DispatchTimeout = 2 * tick
	cfg.LeasePeriod = 10 * tick
	m := h.manager(cfg, nil)
	id := h.enqueue(1)[0]
	h.run(m)
	h.waitDeliveries(1)
	h.tick()
	h.tick() // DispatchTimeout fires
	h.waitBuffered(1)
	h.tick()
	h.stop(m)
	if msg := h.status(id); msg.Status != notifications.StatusSent || h.handler.Count(id) != 1 {
		t.Fatalf("status %s after %d calls, want sent after 1", msg.Status, h.handler.Count(id))
	}
}

// blockingLeaseStore holds the first LeaseMessages until released, then leases; if the
// caller's context was cancelled meanwhile it returns the context's error anyway, like a
// database driver whose statement committed while the caller gave up.
type blockingLeaseStore struct {
	notifications.Store
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingLeaseStore) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	block := false
	s.once.Do(func() { block = true })
	if block {
		close(s.entered)
		<-s.release
	}
	msgs, err := s.Store.LeaseMessages(context.WithoutCancel(ctx), p)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return msgs, err
}

// TestStopDuringLeaseDeliversWhatWasLeased: a Stop that arrives while a lease statement
// runs waits for it and delivers what it leased, instead of abandoning leased messages
// until their lease expires.
func TestStopDuringLeaseDeliversWhatWasLeased(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	store := &blockingLeaseStore{Store: h.store, entered: make(chan struct{}), release: make(chan struct{})}
	ids := h.enqueue(3)
	m := h.manager(testConfig(), store)
	m.Run(h.ctx)
	<-store.entered
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(h.ctx) }()
	// Stop has begun once the Manager's lease context is done; release the lease then.
	<-m.StopRequested()
	close(store.release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("message %s after Stop, want sent", st)
		}
	}
}
