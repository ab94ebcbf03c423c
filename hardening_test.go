package notifications_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"cdr.dev/slog"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/notificationstest"
)

// childEnv names the scenario a child test process runs.
const childEnv = "NOTIFICATIONS_TEST_CHILD"

// inChild reports whether this process is the child that runs t's scenario. In the parent
// it runs t alone in a child process and fails t if the child fails or crashes, so a
// scenario that would crash the process (a panic on a goroutine of the library) fails only
// this test instead of the whole test binary.
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the scenario failed or crashed the process (%v):\n%s", err, out)
	}
	return false
}

// TestPanicBeforeDeliveryIsContained: a panic in a Handler's Dispatcher, or in a host
// helper the Dispatcher calls, ends the message permanent_failure with the panic text and
// the Manager goes on delivering.
func TestPanicBeforeDeliveryIsContained(t *testing.T) {
	if !inChild(t) {
		return
	}
	h := newHarness(t)
	h.handlers = map[notifications.Method]notifications.Handler{
		notifications.MethodWebhook: notifications.HandlerFunc(func(p notifications.MessagePayload, title, body string, helpers template.FuncMap) (notifications.DeliveryFunc, error) {
			switch p.Labels["mode"] {
			case "dispatcher":
				panic("boom in Dispatcher")
			case "helper":
				_ = helpers["app_name"].(func() string)()
			}
			return h.handler.Dispatcher(p, title, body, helpers)
		}),
	}
	h.helpers = template.FuncMap{"app_name": func() string { panic("boom in app_name") }}
	m := h.manager(testConfig(), nil)
	ids := map[string]uuid.UUID{}
	for _, mode := range []string{"dispatcher", "helper", "ok"} {
		got, err := h.enq.Enqueue(h.ctx, uuid.New(), h.tmpl.ID, map[string]string{"mode": mode, "build": "1"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		ids[mode] = got[0]
	}
	h.run(m)
	h.waitBuffered(3)
	h.stop(m)
	for mode, want := range map[string]string{"dispatcher": "boom in Dispatcher", "helper": "boom in app_name"} {
		if msg := h.status(ids[mode]); msg.Status != notifications.StatusPermanentFailure || !strings.Contains(msg.StatusReason, want) {
			t.Errorf("%s: %s %q, want permanent_failure with %q", mode, msg.Status, msg.StatusReason, want)
		}
	}
	if st := h.status(ids["ok"]).Status; st != notifications.StatusSent {
		t.Errorf("the message after the panics is %s, want sent", st)
	}
}

// TestGoexitInDeliveryReleasesSlot: runtime.Goexit in a DeliveryFunc (what t.FailNow
// does) ends that message permanent_failure and frees its slot; later messages are
// delivered and Stop reports nothing lost.
func TestGoexitInDeliveryReleasesSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(_ context.Context, d notificationstest.Delivery) (bool, error) {
		if d.Payload.Labels["build"] == "goexit" {
			runtime.Goexit()
		}
		return false, nil
	}
	cfg := testConfig()
	cfg.LeaseCount = 2
	var ids []uuid.UUID
	for _, b := range []string{"goexit", "goexit", "a", "b", "c"} {
		got, err := h.enq.Enqueue(h.ctx, uuid.New(), h.tmpl.ID, map[string]string{"build": b}, "test")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	m := h.manager(cfg, nil)
	h.run(m)
	h.waitBuffered(5)
	h.stop(m)
	for i, id := range ids {
		msg := h.status(id)
		if i < 2 {
			if msg.Status != notifications.StatusPermanentFailure || !strings.Contains(msg.StatusReason, "runtime.Goexit") {
				t.Errorf("goexit message: %s %q", msg.Status, msg.StatusReason)
			}
		} else if msg.Status != notifications.StatusSent {
			t.Errorf("message %d after the Goexits is %s, want sent", i, msg.Status)
		}
	}
}

// TestRetryDelaysAreCapped: a RetryAfter of a century, or of the largest Duration, and
// jitter on a delay already at the maximum all wait at most MaxRetryInterval, never less
// than nothing.
func TestRetryDelaysAreCapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		jitter float64
	}{
		{"century", notifications.RetryAfter(100*365*24*time.Hour, xerrors.New("later")), 0},
		{"max duration", notifications.RetryAfter(time.Duration(math.MaxInt64), xerrors.New("later")), 0},
		{"jitter at the cap", xerrors.New("later"), 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) { return true, tc.err }
			cfg := testConfig()
			cfg.RetryJitter = tc.jitter
			m := h.manager(cfg, nil)
			ids := h.enqueue(20)
			h.run(m)
			h.waitBuffered(20)
			h.stop(m)
			for _, id := range ids {
				msg := h.status(id)
				wait := msg.NextRetryAfter.Sub(msg.UpdatedAt)
				if msg.Status != notifications.StatusTemporaryFailure || wait < 0 || wait > cfg.MaxRetryInterval {
					t.Fatalf("%s, retry in %s (at %s); want temporary_failure within MaxRetryInterval %s",
						msg.Status, wait, msg.NextRetryAfter, cfg.MaxRetryInterval)
				}
			}
		})
	}
}

// TestValidateRefusesLeaseShorterThanDeliveryAndWrite: a lease that can expire before a
// delivery's result is written would let the Manager deliver its own success again.
func TestValidateRefusesLeaseShorterThanDeliveryAndWrite(t *testing.T) {
	t.Parallel()
	cfg := notifications.DefaultConfig()
	cfg.LeasePeriod = time.Second
	cfg.DispatchTimeout = 900 * time.Millisecond
	cfg.StoreSyncInterval = 1500 * time.Millisecond
	err := cfg.Validate()
	if !errors.Is(err, notifications.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "Config.DispatchTimeout (900ms) + Config.StoreSyncInterval (1.5s)") ||
		!strings.Contains(err.Error(), "Config.LeasePeriod (1s)") {
		t.Fatalf("Validate: %v", err)
	}
	cfg.StoreSyncInterval = 50 * time.Millisecond
	cfg.DispatchTimeout = 800 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatalf("800ms + 50ms + 10%% of 1s fits in a 1s lease: %v", err)
	}
}

// TestValidateRefusesAbsurdLimits: limits that would exhaust memory or overflow are refused
// by Validate, before NewManager allocates anything.
func TestValidateRefusesAbsurdLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*notifications.Config)
		want   string
	}{
		{"buffer", func(c *notifications.Config) { c.StoreSyncBufferSize = 1 << 40 }, "Config.StoreSyncBufferSize must be at least 1 and at most 10000"},
		{"lease count", func(c *notifications.Config) { c.LeaseCount = 1 << 40 }, "Config.LeaseCount must be at least 1 and at most 10000"},
		{"attempts", func(c *notifications.Config) { c.MaxSendAttempts = 1 << 40 }, "Config.MaxSendAttempts must be at least 1 and at most 1000"},
		{"retry", func(c *notifications.Config) { c.MaxRetryInterval = 1 << 62 }, "Config.MaxRetryInterval must be at most 720h0m0s"},
		{"lease", func(c *notifications.Config) { c.LeasePeriod = 1 << 62 }, "Config.LeasePeriod must be positive and at most 24h0m0s"},
		{"fetch", func(c *notifications.Config) { c.FetchInterval = 1 << 62 }, "Config.FetchInterval must be positive and at most 1h0m0s"},
		{"sync", func(c *notifications.Config) { c.StoreSyncInterval = time.Hour }, "Config.StoreSyncInterval must be positive and at most 1m0s"},
		{"retention", func(c *notifications.Config) { c.RetentionPeriod = 1 << 62 }, "Config.RetentionPeriod must be 0 (keep forever) or positive and at most"},
		{"inbox retention", func(c *notifications.Config) { c.InboxRetentionPeriod = -1 }, "Config.InboxRetentionPeriod must be 0"},
	} {
		cfg := notifications.DefaultConfig()
		tc.mutate(&cfg)
		if err := cfg.Validate(); !errors.Is(err, notifications.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestManagerLeavesOtherMethodsAlone: a Manager leases only the methods it has handlers
// for, so a message of a method it cannot deliver stays pending for a Manager that can
// (a rolling deploy that adds a method).
func TestManagerLeavesOtherMethodsAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sms := notifications.Template{ID: uuid.New(), Name: "sms only", TitleTemplate: "code", Methods: []notifications.Method{"sms"}, EnabledByDefault: true}
	if err := h.store.UpsertTemplates(h.ctx, sms); err != nil {
		t.Fatal(err)
	}
	smsIDs, err := h.enq.Enqueue(h.ctx, uuid.New(), sms.ID, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ids := h.enqueue(2)
	m := h.manager(testConfig(), nil)
	h.run(m)
	h.waitBuffered(2)
	h.tick()
	h.stop(m)
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("webhook message %s, want sent", st)
		}
	}
	if msg := h.status(smsIDs[0]); msg.Status != notifications.StatusPending || msg.AttemptCount != 0 {
		t.Fatalf("sms message %s after %d attempts (%q), want pending and untouched", msg.Status, msg.AttemptCount, msg.StatusReason)
	}
}

// TestStopAgainWritesWhatWasBuffered: a Stop whose context is already done says what it
// left, without claiming deliveries were running when none were; a later Stop writes
// what is buffered, and pending_updates follows the buffers.
func TestStopAgainWritesWhatWasBuffered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.StoreSyncInterval = time.Minute
	m := h.manager(cfg, nil)
	h.run(m)
	id := h.enqueue(1)[0]
	h.waitBuffered(1)
	done, cancel := context.WithCancel(h.ctx)
	cancel()
	err := m.Stop(done)
	if err == nil || strings.Contains(err.Error(), "deliveries") || !strings.Contains(err.Error(), "1 sent and 0 failed results") {
		t.Fatalf("first stop: %v, want an error that says 1 sent result is left", err)
	}
	if got := testutil.ToFloat64(h.metrics.PendingUpdates); got != 1 {
		t.Fatalf("pending_updates %v with one result buffered", got)
	}
	if err := m.Stop(h.ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if st := h.status(id).Status; st != notifications.StatusSent {
		t.Fatalf("message %s after the second Stop, want sent", st)
	}
	if s, f := m.BufferedUpdatesCount(); s+f != 0 {
		t.Fatalf("still buffered: %d, %d", s, f)
	}
	if got := testutil.ToFloat64(h.metrics.PendingUpdates); got != 0 {
		t.Fatalf("pending_updates %v after everything was written", got)
	}
	if err := m.Run(h.ctx); !errors.Is(err, notifications.ErrManagerAlreadyClosed) {
		t.Fatalf("Run after Stop: %v, want ErrManagerAlreadyClosed", err)
	}
}

// TestDispatchTimeoutIsADeadline: the handler's context carries the dispatch deadline on
// the Manager's clock and ends with context.DeadlineExceeded, and the stored reason says
// which limit was hit.
func TestDispatchTimeoutIsADeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.DispatchTimeout = 2 * tick
	cfg.LeasePeriod = 10 * tick
	type seen struct {
		deadline time.Time
		ok       bool
		err      error
		start    time.Time
	}
	got := make(chan seen, 1)
	h.handler.Outcome = func(ctx context.Context, _ notificationstest.Delivery) (bool, error) {
		s := seen{start: h.clk.Now()}
		s.deadline, s.ok = ctx.Deadline()
		child, cancel := context.WithCancel(ctx) // what an HTTP client derives
		defer cancel()
		<-child.Done()
		s.err = child.Err()
		got <- s
		return true, child.Err()
	}
	m := h.manager(cfg, nil)
	h.run(m)
	id := h.enqueue(1)[0]
	h.waitDeliveries(1)
	h.tick()
	h.tick()
	s := <-got
	if !s.ok || !s.deadline.Equal(s.start.Add(cfg.DispatchTimeout)) {
		t.Errorf("Deadline() = %s, %v; want %s", s.deadline, s.ok, s.start.Add(cfg.DispatchTimeout))
	}
	if !errors.Is(s.err, context.DeadlineExceeded) {
		t.Errorf("Err() = %v, want context.DeadlineExceeded", s.err)
	}
	h.waitBuffered(1)
	h.stop(m)
	if msg := h.status(id); msg.Status != notifications.StatusTemporaryFailure || !strings.Contains(msg.StatusReason, "DispatchTimeout (2s)") {
		t.Errorf("stored %s %q, want temporary_failure naming DispatchTimeout", msg.Status, msg.StatusReason)
	}
}

// overLeasingStore returns more messages than it was asked for (a broken Store).
type overLeasingStore struct {
	notifications.Store
	mu     sync.Mutex
	limits []int
}

func (s *overLeasingStore) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	s.mu.Lock()
	s.limits = append(s.limits, p.Limit)
	s.mu.Unlock()
	p.Limit += 3
	return s.Store.LeaseMessages(ctx, p)
}

// TestStoreReturningTooManyMessages: the notifier never asks a store for a limit below 1,
// even after the store broke the contract by returning more than asked.
func TestStoreReturningTooManyMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	store := &overLeasingStore{Store: h.store}
	logs := &logRecorder{}
	h.logs = logs
	cfg := testConfig()
	cfg.LeaseCount = 2
	ids := h.enqueue(10)
	m := h.manager(cfg, store)
	h.run(m)
	h.waitBuffered(len(ids))
	h.stop(m)
	if !logs.has("the store returned more messages than asked for") {
		t.Error("the contract breach was not logged")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, l := range store.limits {
		if l < 1 || l > cfg.LeaseCount {
			t.Fatalf("asked the store for limit %d (LeaseCount %d); all limits: %v", l, cfg.LeaseCount, store.limits)
		}
	}
}

// TestQueuedSecondsOnFirstLeaseOnly: a retried message is observed once in queued_seconds,
// so backoff is not reported as queueing.
func TestQueuedSecondsOnFirstLeaseOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var once sync.Once
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (retryable bool, err error) {
		once.Do(func() { retryable, err = true, xerrors.New("try again") })
		return retryable, err
	}
	m := h.manager(testConfig(), nil)
	h.run(m)
	id := h.enqueue(1)[0]
	h.waitDeliveries(1)
	h.waitBuffered(1)
	for h.handler.Count(id) < 2 {
		h.tick()
		h.waitLease()
	}
	h.waitBuffered(1)
	h.stop(m)
	if st := h.status(id).Status; st != notifications.StatusSent {
		t.Fatalf("message %s, want sent on the retry", st)
	}
	if n := testutil.CollectAndCount(h.metrics.QueuedSeconds); n != 1 {
		t.Fatalf("%d queued_seconds series", n)
	}
	if got := histogramCount(t, h.metrics, "webhook"); got != 1 {
		t.Fatalf("queued_seconds observed %d times for one message, want 1", got)
	}
}

// TestStopWaitsForAFlushInProgress: a Stop that starts while a ticker flush has taken its
// batch from the buffer but not yet written it waits for that write instead of seeing an
// empty buffer, returning and cancelling the write (which left the message leased).
func TestStopWaitsForAFlushInProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m := h.manager(testConfig(), nil)
	inFlush, release, stopFlushing := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once, stopOnce sync.Once
	notifications.SetFlushHooks(m, func() {
		once.Do(func() {
			close(inFlush)
			<-release
		})
	}, func() { stopOnce.Do(func() { close(stopFlushing) }) })
	h.run(m)
	id := h.enqueue(1)[0]
	h.waitBuffered(1)
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		h.clk.Advance(tick).MustWait(h.ctx)
	}()
	<-inFlush
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(h.ctx) }()
	var err error
	select {
	case err = <-stopped: // Stop saw nothing buffered and returned early
		close(release)
	case <-stopFlushing:
		close(release)
		err = <-stopped
	}
	<-tickDone
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := h.status(id).Status; st != notifications.StatusSent {
		t.Fatalf("message %s after Stop, want sent", st)
	}
}

// TestHelperErrorsMarkedRetryable: a host helper that fails transiently while a template
// renders returns notifications.Retryable(err) and the message is retried; an unmarked
// helper error stays permanent.
func TestHelperErrorsMarkedRetryable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.helpers = template.FuncMap{
		"app_name": func() (string, error) {
			return "", notifications.Retryable(xerrors.New("database timeout reading the app name"))
		},
		"broken": func() (string, error) { return "", xerrors.New("helper misconfigured") },
	}
	transient := notifications.Template{ID: uuid.New(), Name: "transient", TitleTemplate: "{{app_name}}", EnabledByDefault: true}
	permanent := notifications.Template{ID: uuid.New(), Name: "permanent", TitleTemplate: "{{broken}}", EnabledByDefault: true}
	if err := notifications.NewRegistry(h.helpers).Register(h.ctx, h.store, transient, permanent); err != nil {
		t.Fatal(err)
	}
	a, err := h.enq.Enqueue(h.ctx, uuid.New(), transient.ID, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.enq.Enqueue(h.ctx, uuid.New(), permanent.ID, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	m := h.manager(testConfig(), nil)
	h.run(m)
	h.waitBuffered(2)
	h.stop(m)
	if msg := h.status(a[0]); msg.Status != notifications.StatusTemporaryFailure || !strings.Contains(msg.StatusReason, "database timeout") {
		t.Errorf("Retryable helper error: %s %q, want temporary_failure", msg.Status, msg.StatusReason)
	}
	if msg := h.status(b[0]); msg.Status != notifications.StatusPermanentFailure || !strings.Contains(msg.StatusReason, "helper misconfigured") {
		t.Errorf("plain helper error: %s %q, want permanent_failure", msg.Status, msg.StatusReason)
	}
}

// TestPermanentOverridesRetryable: a DeliveryFunc that reports retryable with an error
// marked Permanent fails permanently at once.
func TestPermanentOverridesRetryable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		return true, notifications.Permanent(xerrors.New("mailbox does not exist"))
	}
	m := h.manager(testConfig(), nil)
	h.run(m)
	id := h.enqueue(1)[0]
	h.waitBuffered(1)
	h.stop(m)
	if msg := h.status(id); msg.Status != notifications.StatusPermanentFailure || msg.AttemptCount != 1 {
		t.Fatalf("%s after %d attempts, want permanent_failure after 1", msg.Status, msg.AttemptCount)
	}
}

// TestStopAndCancel: the hard stop cancels a delivery that would otherwise hold Stop, keeps
// its message leased for redelivery, still writes the results already buffered, and closes
// Stopped.
func TestStopAndCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(ctx context.Context, d notificationstest.Delivery) (bool, error) {
		if d.Payload.Labels["build"] == "slow" {
			<-ctx.Done()
			return true, ctx.Err()
		}
		return false, nil
	}
	cfg := testConfig()
	cfg.StoreSyncInterval = time.Minute
	m := h.manager(cfg, nil)
	h.run(m)
	fast := h.enqueue(1)[0]
	h.waitBuffered(1)
	slow, err := h.enq.Enqueue(h.ctx, uuid.New(), h.tmpl.ID, map[string]string{"build": "slow"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	h.waitDeliveries(2)
	select {
	case <-m.Stopped():
		t.Fatal("Stopped closed while running")
	default:
	}
	if err := m.StopAndCancel(h.ctx); err != nil {
		t.Fatalf("StopAndCancel: %v", err)
	}
	<-m.Stopped()
	if st := h.status(fast).Status; st != notifications.StatusSent {
		t.Errorf("buffered result not written: %s", st)
	}
	if st := h.status(slow[0]).Status; st != notifications.StatusLeased {
		t.Errorf("cancelled delivery's message %s, want leased", st)
	}
}

// logRecorder is a slog.Sink that keeps the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) LogEntry(_ context.Context, e slog.SinkEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, e.Message)
}

func (r *logRecorder) Sync() {}

func (r *logRecorder) has(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}
