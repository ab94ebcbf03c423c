package notifications_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

type captureSink struct {
	mu      sync.Mutex
	entries []slog.SinkEntry
}

func (c *captureSink) LogEntry(_ context.Context, e slog.SinkEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, e)
}

func (c *captureSink) Sync() {}

func (c *captureSink) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.entries {
		if strings.Contains(e.Message, substr) {
			n++
		}
	}
	return n
}

// TestPendingByMethodGaugeAndLog: messages of a method the Manager has no handler for stay
// pending, show in the pending_messages gauge, and are logged once per minute, not once per
// message or per lease.
func TestPendingByMethodGaugeAndLog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	store := memstore.New(memstore.Config{Clock: clk})
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	var msgs []driver.NewMessage
	for _, method := range []notifications.Method{"sms", "sms", notifications.MethodWebhook} {
		msgs = append(msgs, driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: string(method), Payload: []byte(`{}`)})
	}
	if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
		t.Fatal(err)
	}
	sink := &captureSink{}
	metrics := notifications.NewMetrics(prometheus.NewRegistry(), notifications.MetricsConfig{})
	h := notificationstest.NewRecordingHandler(nil)
	cfg := testConfig()
	cfg.Clock, cfg.Metrics, cfg.Logger = clk, metrics, slog.Make(sink)
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(ctx)
	defer func() {
		if err := m.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	if err := h.WaitForDeliveries(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const logged = "no handler for"
	for minute := 1; minute <= 2; minute++ {
		target := clk.Now().Add(time.Minute)
		for clk.Now().Before(target) {
			_, w := clk.AdvanceNext()
			w.MustWait(ctx)
		}
		if got := testutil.ToFloat64(metrics.PendingMessages.WithLabelValues("sms")); got != 2 {
			t.Fatalf("minute %d: pending_messages{method=sms} = %v, want 2", minute, got)
		}
		if n := sink.count(logged); n != minute {
			t.Fatalf("after %d minutes: %d warnings about methods without a handler, want one per minute", minute, n)
		}
	}
	if got := testutil.ToFloat64(metrics.PendingMessages.WithLabelValues(string(notifications.MethodWebhook))); got != 0 {
		t.Fatalf("pending_messages{method=webhook} = %v after its delivery, want 0", got)
	}
}
