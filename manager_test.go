package notifications_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const tick = time.Second

// testConfig ticks every second for both fetch and store sync, so one Advance(tick) fires
// both; DispatchTimeout is long so that no dispatch timer falls inside a tick.
func testConfig() notifications.Config {
	cfg := notifications.DefaultConfig()
	cfg.FetchInterval = tick
	cfg.StoreSyncInterval = tick
	cfg.RetryInterval = 3 * tick
	cfg.MaxRetryInterval = 3 * tick
	cfg.RetryJitter = 0
	cfg.LeasePeriod = time.Hour
	cfg.DispatchTimeout = 50 * time.Minute
	cfg.RetentionPeriod = 0
	cfg.MaxSendAttempts = 3
	return cfg
}

type harness struct {
	t        *testing.T
	ctx      context.Context
	clk      *quartz.Mock
	store    notifications.Store
	enq      *notifications.StoreEnqueuer
	tmpl     notifications.Template
	handler  *notificationstest.RecordingHandler
	leases   chan int
	waiting  chan struct{}
	buffered chan struct{}
	metrics  *notifications.Metrics
	// handlers, when set, replace {webhook: handler}; helpers are given to the Manager.
	handlers map[notifications.Method]notifications.Handler
	helpers  template.FuncMap
	// logs, when set, receives the Manager's log entries.
	logs slog.Sink
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	store := memstore.New(memstore.Config{Clock: clk})
	tmpl := notifications.Template{
		ID: uuid.New(), Name: "build failed", TitleTemplate: "Build {{.Labels.build}} failed",
		BodyTemplate: "Hi {{.UserName}}, build **{{.Labels.build}}** failed.", EnabledByDefault: true,
	}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		Clock: clk, DefaultMethods: []notifications.Method{notifications.MethodWebhook},
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id, Email: "a@example.com", Name: "Ada"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		t: t, ctx: ctx, clk: clk, store: store, enq: enq, tmpl: tmpl,
		handler:  notificationstest.NewRecordingHandler(nil),
		leases:   make(chan int, 10000),
		waiting:  make(chan struct{}, 10000),
		buffered: make(chan struct{}, 10000),
		metrics:  notifications.NewMetrics(prometheus.NewRegistry(), notifications.MetricsConfig{}),
	}
}

func (h *harness) manager(cfg notifications.Config, store notifications.NotifierStore) *notifications.Manager {
	h.t.Helper()
	if store == nil {
		store = h.store
	}
	handlers := h.handlers
	if handlers == nil {
		handlers = map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h.handler}
	}
	cfg.Clock, cfg.Metrics, cfg.Registry = h.clk, h.metrics, notifications.NewRegistry(h.helpers)
	if h.logs != nil {
		cfg.Logger = slog.Make(h.logs)
	}
	m, err := notifications.NewManager(store, handlers, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	notifications.SetTestHooks(m,
		func(n int) { h.leases <- n },
		func() { h.waiting <- struct{}{} },
		func() { h.buffered <- struct{}{} })
	return m
}

func (h *harness) run(m *notifications.Manager) {
	h.t.Helper()
	if err := m.Run(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			h.t.Errorf("stop: %v", err)
		}
	})
	// The first lease happens at once; after it the fetch ticker exists.
	h.waitLease()
}

func (h *harness) enqueue(n int) []uuid.UUID {
	h.t.Helper()
	var ids []uuid.UUID
	for i := 0; i < n; i++ {
		got, err := h.enq.Enqueue(h.ctx, uuid.New(), h.tmpl.ID, map[string]string{"build": "#" + uuid.NewString()[:4]}, "test")
		if err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

func (h *harness) waitLease() int {
	h.t.Helper()
	select {
	case n := <-h.leases:
		return n
	case <-h.ctx.Done():
		h.t.Fatal("timed out waiting for a lease")
		return 0
	}
}

func (h *harness) waitBuffered(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-h.buffered:
		case <-h.ctx.Done():
			h.t.Fatalf("timed out waiting for buffered result %d of %d", i+1, n)
		}
	}
}

func (h *harness) waitDeliveries(n int) {
	h.t.Helper()
	if err := h.handler.WaitForDeliveries(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

// tick advances the clock one tick: the store-sync flush has finished when it returns, and
// the fetch tick has been sent to the notifier.
func (h *harness) tick() {
	h.clk.Advance(tick).MustWait(h.ctx)
}

// deliverOneAndSync runs a Manager with testConfig, enqueues one message, waits for its
// delivery and buffered result, and ticks once so the result is written. It returns the
// message ID.
func (h *harness) deliverOneAndSync() uuid.UUID {
	h.t.Helper()
	h.run(h.manager(testConfig(), nil))
	id := h.enqueue(1)[0]
	h.waitDeliveries(1)
	h.waitBuffered(1)
	h.tick()
	return id
}

func (h *harness) status(id uuid.UUID) notifications.Message {
	h.t.Helper()
	m, err := h.store.Message(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) stop(m *notifications.Manager) {
	h.t.Helper()
	if err := m.Stop(h.ctx); err != nil {
		h.t.Fatalf("stop: %v", err)
	}
}

func TestNewManagerValidates(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	handlers := map[notifications.Method]notifications.Handler{"webhook": notificationstest.NewRecordingHandler(nil)}

	cfg := notifications.DefaultConfig()
	cfg.DispatchTimeout = cfg.LeasePeriod
	_, err := notifications.NewManager(store, handlers, cfg)
	if !errors.Is(err, notifications.ErrInvalidDispatchTimeout) || !errors.Is(err, notifications.ErrInvalidConfig) {
		t.Fatalf("DispatchTimeout == LeasePeriod: err %v, want ErrInvalidDispatchTimeout", err)
	}

	tests := []struct {
		name   string
		mutate func(*notifications.Config)
		want   string
	}{
		{"zero attempts", func(c *notifications.Config) { c.MaxSendAttempts = 0 }, "Config.MaxSendAttempts must be at least 1"},
		{"negative retry", func(c *notifications.Config) { c.RetryInterval = -time.Second }, "Config.RetryInterval must be positive"},
		{"max below retry", func(c *notifications.Config) { c.MaxRetryInterval = time.Second }, "Config.MaxRetryInterval (1s) must be at least Config.RetryInterval"},
		{"zero buffer", func(c *notifications.Config) { c.StoreSyncBufferSize = 0 }, "Config.StoreSyncBufferSize must be at least 1"},
		{"zero lease count", func(c *notifications.Config) { c.LeaseCount = 0 }, "Config.LeaseCount must be at least 1"},
		{"zero fetch", func(c *notifications.Config) { c.FetchInterval = 0 }, "Config.FetchInterval must be positive"},
		{"zero sync", func(c *notifications.Config) { c.StoreSyncInterval = 0 }, "Config.StoreSyncInterval must be positive"},
		{"jitter", func(c *notifications.Config) { c.RetryJitter = 1 }, "Config.RetryJitter must be at least 0 and less than 1"},
		{"retention", func(c *notifications.Config) { c.RetentionPeriod = -1 }, "Config.RetentionPeriod must be 0"},
		{"timeout over lease", func(c *notifications.Config) { c.DispatchTimeout = 3 * time.Minute }, "Config.DispatchTimeout (3m0s) must be less than Config.LeasePeriod (2m0s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := notifications.DefaultConfig()
			tc.mutate(&cfg)
			_, err := notifications.NewManager(store, handlers, cfg)
			if !errors.Is(err, notifications.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}

	if _, err := notifications.NewManager(nil, handlers, notifications.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("nil store: err %v", err)
	}
	if _, err := notifications.NewManager(store, nil, notifications.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "handlers") {
		t.Fatalf("no handlers: err %v", err)
	}
	if _, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{"x": nil}, notifications.DefaultConfig()); err == nil || !strings.Contains(err.Error(), `"x" is nil`) {
		t.Fatalf("nil handler: err %v", err)
	}
}

func TestStopBeforeRunTwiceAndRunAfterStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.enqueue(1)
	m := h.manager(testConfig(), nil)
	h.stop(m)
	h.stop(m)
	m.Run(h.ctx) // does nothing
	h.stop(m)
	if got := len(h.handler.Deliveries()); got != 0 {
		t.Fatalf("a stopped manager delivered %d messages", got)
	}
	select {
	case n := <-h.leases:
		t.Fatalf("a stopped manager leased (%d)", n)
	default:
	}

	// Running, then stopped twice; then Run again does nothing.
	m2 := h.manager(testConfig(), nil)
	h.run(m2)
	h.stop(m2)
	h.stop(m2)
	m2.Run(h.ctx)
	if s, f := m2.BufferedUpdatesCount(); s != 0 || f != 0 {
		t.Fatalf("buffered after stop: %d, %d", s, f)
	}
}

func TestBufferedResultsWrittenByStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.StoreSyncInterval = time.Minute
	m := h.manager(cfg, nil)
	h.run(m)
	ids := h.enqueue(5)
	h.waitDeliveries(5)
	h.waitBuffered(5)
	if s, f := m.BufferedUpdatesCount(); s != 5 || f != 0 {
		t.Fatalf("BufferedUpdatesCount = %d, %d; want 5, 0", s, f)
	}
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusLeased {
			t.Fatalf("before the sync interval message is %s, want leased", st)
		}
	}
	h.stop(m)
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("after Stop message is %s, want sent", st)
		}
	}
	if s, f := m.BufferedUpdatesCount(); s != 0 || f != 0 {
		t.Fatalf("BufferedUpdatesCount after Stop = %d, %d", s, f)
	}
}

// blockingStore blocks MarkSent until release is closed.
type blockingStore struct {
	notifications.Store
	entered chan int
	release chan struct{}
	leased  atomic.Int64
}

func (b *blockingStore) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	msgs, err := b.Store.LeaseMessages(ctx, p)
	b.leased.Add(int64(len(msgs)))
	return msgs, err
}

func (b *blockingStore) MarkSent(ctx context.Context, id uuid.UUID, rs []driver.SentResult) (int, error) {
	b.entered <- len(rs)
	<-b.release
	return b.Store.MarkSent(ctx, id, rs)
}

func TestBackpressure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.LeaseCount = 10
	cfg.StoreSyncBufferSize = 2
	store := &blockingStore{Store: h.store, entered: make(chan int, 100), release: make(chan struct{})}
	m := h.manager(cfg, store)
	ids := h.enqueue(30)
	h.run(m)

	// The flush of the first full buffer blocks in the store.
	if n := <-store.entered; n != 2 {
		t.Fatalf("first bulk update carried %d rows, want 2 (StoreSyncBufferSize)", n)
	}
	// 2 results in the blocked write + 2 in the full buffer + 10 deliveries blocked on
	// pushing their results: 14 deliveries, and every slot is held.
	h.waitDeliveries(14)
	for {
		<-h.waiting
		if s, _ := m.BufferedUpdatesCount(); s == 4 && store.leased.Load() == 14 {
			break
		}
	}
	if got := len(h.handler.Deliveries()); got != 14 {
		t.Fatalf("%d deliveries while the store is blocked, want 14", got)
	}
	if got := store.leased.Load(); got != 14 {
		t.Fatalf("%d messages leased while the store is blocked, want 14", got)
	}
	close(store.release)
	// Every remaining message flows once the store answers; full buffers flush without
	// waiting for the tick.
	h.waitDeliveries(30)
	h.stop(m)
	for _, id := range ids {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("message %s is %s, want sent", id, st)
		}
	}
	for len(store.entered) > 0 {
		if n := <-store.entered; n > 2 {
			t.Fatalf("a bulk update carried %d rows, over StoreSyncBufferSize", n)
		}
	}
}

func TestRetryableFailureExhaustsAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		return true, xerrors.New("receiver unavailable")
	}
	cfg := testConfig()
	m := h.manager(cfg, nil)
	h.run(m)
	id := h.enqueue(1)[0]
	for attempt := 1; attempt <= cfg.MaxSendAttempts; attempt++ {
		for h.waitLease() == 0 {
			h.tick()
		}
		h.waitDeliveries(attempt)
		h.waitBuffered(1)
		h.tick() // flush
		msg := h.status(id)
		want := notifications.StatusTemporaryFailure
		if attempt == cfg.MaxSendAttempts {
			want = notifications.StatusPermanentFailure
		}
		if msg.Status != want || !strings.Contains(msg.StatusReason, "receiver unavailable") {
			t.Fatalf("attempt %d: %s (%q), want %s", attempt, msg.Status, msg.StatusReason, want)
		}
		if want == notifications.StatusTemporaryFailure {
			// The retry is due RetryInterval after the flush, which ran on this tick or
			// on the one the delivery happened in (fetch and sync ticks coincide).
			latest := h.clk.Now().Add(cfg.RetryInterval)
			if at := msg.NextRetryAfter; at.After(latest) || at.Before(latest.Add(-tick)) {
				t.Fatalf("attempt %d: retry at %s, want within a tick before %s", attempt, at, latest)
			}
		}
	}
	// Long after: no further call.
	for i := 0; i < 10; i++ {
		h.tick()
		h.waitLease()
	}
	if n := h.handler.Count(id); n != cfg.MaxSendAttempts {
		t.Fatalf("handler called %d times, want exactly %d", n, cfg.MaxSendAttempts)
	}
	if got := testutil.ToFloat64(h.metrics.DispatchAttempts.WithLabelValues("webhook", h.tmpl.ID.String(), notifications.ResultTemporaryFailure)); got != 2 {
		t.Fatalf("temporary_failure metric %v, want 2", got)
	}
	if got := testutil.ToFloat64(h.metrics.DispatchAttempts.WithLabelValues("webhook", h.tmpl.ID.String(), notifications.ResultPermanentFailure)); got != 1 {
		t.Fatalf("permanent_failure metric %v, want 1", got)
	}
}

func TestNonRetryableFailureIsPermanentAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		return false, xerrors.New("550 mailbox unavailable")
	}
	id := h.deliverOneAndSync()
	if msg := h.status(id); msg.Status != notifications.StatusPermanentFailure || msg.StatusReason != "550 mailbox unavailable" || msg.AttemptCount != 1 {
		t.Fatalf("got %s %q after %d attempts", msg.Status, msg.StatusReason, msg.AttemptCount)
	}
}

func TestRetryAfterFromHandler(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		return true, notifications.RetryAfter(1500*time.Millisecond, xerrors.New("429 too many requests"))
	}
	id := h.deliverOneAndSync()
	msg := h.status(id)
	if want := h.clk.Now().Add(1500 * time.Millisecond); !msg.NextRetryAfter.Equal(want) {
		t.Fatalf("retry at %s, want %s (the handler's Retry-After)", msg.NextRetryAfter, want)
	}
}

func TestCrashedDeliveriesEndPermanent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	// The handler never answers until its context ends: each Manager "crashes" (its run
	// context is cancelled) with the delivery in flight, leaving the message leased.
	h.handler.Outcome = func(ctx context.Context, _ notificationstest.Delivery) (bool, error) {
		<-ctx.Done()
		return true, ctx.Err()
	}
	id := h.enqueue(1)[0]
	for attempt := 1; attempt <= cfg.MaxSendAttempts; attempt++ {
		m := h.manager(cfg, nil)
		ctx, crash := context.WithCancel(h.ctx)
		m.Run(ctx)
		if n := h.waitLease(); n != 1 {
			t.Fatalf("attempt %d: leased %d", attempt, n)
		}
		h.waitDeliveries(attempt)
		crash()
		if err := m.Stop(h.ctx); err != nil {
			t.Fatalf("stop after crash: %v", err)
		}
		if msg := h.status(id); msg.Status != notifications.StatusLeased || msg.AttemptCount != attempt {
			t.Fatalf("after crash %d: %s at attempt %d, want leased", attempt, msg.Status, msg.AttemptCount)
		}
		h.clk.Advance(cfg.LeasePeriod).MustWait(h.ctx)
	}
	m := h.manager(cfg, nil)
	h.run(m) // its first lease finds the exhausted message and fails it
	msg := h.status(id)
	if msg.Status != notifications.StatusPermanentFailure || !strings.Contains(msg.StatusReason, "attempts") {
		t.Fatalf("got %s %q, want permanent_failure after %d attempts", msg.Status, msg.StatusReason, cfg.MaxSendAttempts)
	}
	if n := h.handler.Count(id); n != cfg.MaxSendAttempts {
		t.Fatalf("handler called %d times, want %d", n, cfg.MaxSendAttempts)
	}
}

func TestEnqueueWakesIdleManager(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m := h.manager(testConfig(), nil)
	h.run(m) // idle: the first lease found nothing
	ids := h.enqueue(1)
	// No clock advance: the enqueue's wake-up alone leads to the delivery.
	h.waitDeliveries(1)
	d := h.handler.Deliveries()[0]
	if d.MsgID != ids[0] || !strings.HasPrefix(d.Title, "Build \\#") || !strings.Contains(d.Body, "Hi Ada, build **\\#") {
		t.Fatalf("delivery %+v", d)
	}
}

func TestSlowDeliveryDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	var slowID atomic.Value
	h.handler.Outcome = func(ctx context.Context, d notificationstest.Delivery) (bool, error) {
		if d.MsgID == slowID.Load() {
			<-release
		}
		return false, nil
	}
	cfg := testConfig()
	cfg.LeaseCount = 10
	m := h.manager(cfg, nil)
	slow := h.enqueue(1)[0]
	slowID.Store(slow)
	rest := h.enqueue(100)
	h.run(m)
	h.waitDeliveries(101) // no clock advance needed
	close(release)
	h.stop(m)
	for _, id := range append(rest, slow) {
		if st := h.status(id).Status; st != notifications.StatusSent {
			t.Fatalf("message %s is %s", id, st)
		}
	}
}

func TestMetricsMatchDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var n atomic.Int64
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		if n.Add(1)%4 == 0 {
			return false, xerrors.New("permanent")
		}
		return false, nil
	}
	m := h.manager(testConfig(), nil)
	ids := h.enqueue(40)
	h.run(m)
	h.waitDeliveries(40)
	h.stop(m)
	tid := h.tmpl.ID.String()
	sent := testutil.ToFloat64(h.metrics.DispatchAttempts.WithLabelValues("webhook", tid, notifications.ResultSent))
	perm := testutil.ToFloat64(h.metrics.DispatchAttempts.WithLabelValues("webhook", tid, notifications.ResultPermanentFailure))
	counts, _ := h.store.CountByStatus(h.ctx)
	if int(sent) != counts[notifications.StatusSent] || int(perm) != counts[notifications.StatusPermanentFailure] || sent != 30 || perm != 10 {
		t.Fatalf("metrics sent=%v perm=%v, store %v", sent, perm, counts)
	}
	if got := testutil.ToFloat64(h.metrics.SyncedUpdates); got != float64(len(ids)) {
		t.Fatalf("synced_updates_total %v, want %d", got, len(ids))
	}
	if got := testutil.ToFloat64(h.metrics.PendingUpdates); got != 0 {
		t.Fatalf("pending_updates %v after stop", got)
	}
	if got := testutil.CollectAndCount(h.metrics.QueuedSeconds); got != 1 {
		t.Fatalf("queued_seconds series %d", got)
	}
}

func TestDisabledAfterEnqueueIsInhibited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	user := uuid.New()
	ids, err := h.enq.Enqueue(h.ctx, user, h.tmpl.ID, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.SetPreference(h.ctx, user, notifications.Preference{TemplateID: h.tmpl.ID, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	m := h.manager(testConfig(), nil)
	h.run(m)
	h.waitBuffered(1)
	h.stop(m)
	if msg := h.status(ids[0]); msg.Status != notifications.StatusInhibited || msg.StatusReason != "disabled by user" {
		t.Fatalf("got %s %q", msg.Status, msg.StatusReason)
	}
	if len(h.handler.Deliveries()) != 0 {
		t.Fatal("an inhibited message was delivered")
	}
}

func TestPermanentErrorsBeforeDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bad := notifications.Template{ID: uuid.New(), Name: "bad field", TitleTemplate: "{{.Nope}}", EnabledByDefault: true}
	if err := h.store.UpsertTemplates(h.ctx, bad); err != nil {
		t.Fatal(err)
	}
	a, err := h.enq.Enqueue(h.ctx, uuid.New(), bad.ID, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	m := h.manager(testConfig(), nil)
	h.run(m)
	h.waitBuffered(1)
	h.stop(m)
	if msg := h.status(a[0]); msg.Status != notifications.StatusPermanentFailure || !strings.Contains(msg.StatusReason, "Nope") {
		t.Fatalf("unknown field: %s %q", msg.Status, msg.StatusReason)
	}
}

func TestHandlerPanicIsRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var once sync.Once
	h.handler.Outcome = func(context.Context, notificationstest.Delivery) (bool, error) {
		once.Do(func() { panic("nil map write") })
		return false, nil
	}
	m := h.manager(testConfig(), nil)
	ids := h.enqueue(2)
	h.run(m)
	h.waitBuffered(2)
	h.stop(m)
	sent, failed := 0, 0
	for _, id := range ids {
		msg := h.status(id)
		switch msg.Status {
		case notifications.StatusSent:
			sent++
		case notifications.StatusPermanentFailure:
			failed++
			if !strings.Contains(msg.StatusReason, "handler panicked: nil map write") {
				t.Fatalf("reason %q", msg.StatusReason)
			}
		}
	}
	if sent != 1 || failed != 1 {
		t.Fatalf("sent %d failed %d, want 1 and 1", sent, failed)
	}
}

func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	started := make(chan struct{})
	h.handler.Outcome = func(ctx context.Context, _ notificationstest.Delivery) (bool, error) {
		close(started)
		<-ctx.Done() // honours cancellation, but only that
		return true, ctx.Err()
	}
	m := h.manager(testConfig(), nil)
	id := h.enqueue(1)[0]
	h.run(m)
	<-started
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := m.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("stop with a done context: err %v, want context.Canceled", err)
	}
	if st := h.status(id).Status; st != notifications.StatusLeased {
		t.Fatalf("message %s after an aborted stop, want leased (redelivered after the lease)", st)
	}
}

// histogramCount is how many observations the queued_seconds histogram has for method.
func histogramCount(t *testing.T, m *notifications.Metrics, method string) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.QueuedSeconds.WithLabelValues(method).(prometheus.Histogram).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}
