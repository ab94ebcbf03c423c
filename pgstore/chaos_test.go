package pgstore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/internal/pgtest"
)

// chaosHandler fails at random (retryable and permanent), with random latency, and checks
// the invariants as it goes: never two deliveries of one message at the same time, never
// more calls than MaxSendAttempts. It counts messages whose outcome is final.
type chaosHandler struct {
	maxAttempts int
	total       int
	done        chan struct{}
	halfway     chan struct{}

	mu          sync.Mutex
	rng         *rand.Rand
	inflight    map[uuid.UUID]bool
	calls       map[uuid.UUID]int
	final       int
	concurrent  int
	overAttempt int
}

func (h *chaosHandler) deliver(_ context.Context, id uuid.UUID) (bool, error) {
	h.mu.Lock()
	if h.inflight[id] {
		h.concurrent++
	}
	h.inflight[id] = true
	h.calls[id]++
	attempt := h.calls[id]
	if attempt > h.maxAttempts {
		h.overAttempt++
	}
	roll := h.rng.Float64()
	latency := time.Duration(h.rng.IntN(500)) * time.Microsecond
	h.mu.Unlock()

	// Network latency of a real receiver (wall time is the point here, not the clock).
	time.Sleep(latency)

	var retryable bool
	var err error
	switch {
	case roll < 0.15:
		retryable, err = true, errors.New("injected: 503 service unavailable")
	case roll < 0.18:
		retryable, err = false, errors.New("injected: 410 gone")
	}
	h.mu.Lock()
	delete(h.inflight, id)
	if err == nil || !retryable || attempt >= h.maxAttempts {
		h.final++
		switch h.final {
		case h.total / 3:
			close(h.halfway)
		case h.total:
			close(h.done)
		}
	}
	h.mu.Unlock()
	return retryable, err
}

// TestChaos: three Managers on one database deliver 20,000 messages through a handler that
// fails at random and takes random time; a third of the way through, one Manager is
// stopped and a fourth started. At the end every message is in exactly one terminal
// status, no message had more handler calls than MaxSendAttempts or two calls at once, and
// the Managers' metrics add up to the database's counts.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	if !pgtest.Long() {
		t.Skipf("long test: runs in the default exec mode only (this run: %s)", os.Getenv(pgtest.EnvExecMode))
	}
	t.Parallel()
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("NOTIFICATIONS_SOAK_MESSAGES")); err == nil && v > 0 {
		n = v // make soak
	}
	store, _, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	benchkit.EnqueueN(t, store, n)

	cfg := benchkit.BenchConfig()
	cfg.LeaseCount = 50
	cfg.StoreSyncBufferSize = 50
	cfg.StoreSyncInterval = 20 * time.Millisecond
	cfg.FetchInterval = 20 * time.Millisecond
	cfg.RetryInterval = 5 * time.Millisecond
	cfg.MaxRetryInterval = 40 * time.Millisecond
	cfg.MaxSendAttempts = 4
	cfg.LeasePeriod = time.Minute
	cfg.DispatchTimeout = 10 * time.Second
	h := &chaosHandler{
		maxAttempts: cfg.MaxSendAttempts, total: n, done: make(chan struct{}), halfway: make(chan struct{}),
		rng: rand.New(rand.NewPCG(7, 11)), inflight: map[uuid.UUID]bool{}, calls: map[uuid.UUID]int{},
	}
	handler := notifications.HandlerFunc(func(notifications.MessagePayload, string, string, template.FuncMap) (notifications.DeliveryFunc, error) {
		return h.deliver, nil
	})

	var registries []*prometheus.Registry
	start := func() *notifications.Manager {
		reg := prometheus.NewRegistry()
		registries = append(registries, reg)
		cfg.Metrics = notifications.NewMetrics(reg, notifications.MetricsConfig{})
		m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: handler}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Run(ctx)
		return m
	}
	managers := []*notifications.Manager{start(), start(), start()}
	select {
	case <-h.halfway:
	case <-ctx.Done():
		t.Fatal("no progress")
	}
	if err := managers[0].Stop(ctx); err != nil {
		t.Fatalf("stop one Manager mid-run: %v", err)
	}
	managers = append(managers[1:], start())
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		t.Fatalf("only %d of %d messages reached a final outcome", h.final, n)
	}
	for _, m := range managers {
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}

	counts, err := store.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent, perm := counts[notifications.StatusSent], counts[notifications.StatusPermanentFailure]
	if sent+perm != n {
		t.Fatalf("statuses %v: %d terminal of %d", counts, sent+perm, n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.concurrent != 0 || h.overAttempt != 0 || len(h.calls) != n {
		t.Fatalf("%d concurrent deliveries of one message, %d calls over MaxSendAttempts, %d messages called (want 0, 0, %d)",
			h.concurrent, h.overAttempt, len(h.calls), n)
	}
	totalCalls := 0
	for _, c := range h.calls {
		totalCalls += c
	}
	var mSent, mTemp, mPerm float64
	for _, reg := range registries {
		by := attemptsByResult(t, reg)
		mSent += by[notifications.ResultSent]
		mTemp += by[notifications.ResultTemporaryFailure]
		mPerm += by[notifications.ResultPermanentFailure]
	}
	if int(mSent) != sent || int(mPerm) != perm || int(mSent+mTemp+mPerm) != totalCalls {
		t.Fatalf("metrics sent %v temporary %v permanent %v; database sent %d permanent %d; handler calls %d",
			mSent, mTemp, mPerm, sent, perm, totalCalls)
	}
	t.Logf("%d messages, %d handler calls across 4 Managers (one stopped mid-run): %d sent, %d permanent failures; metrics agree",
		n, totalCalls, sent, perm)
}

// attemptsByResult sums notifications_dispatch_attempts_total per result label.
func attemptsByResult(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "notifications_dispatch_attempts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
