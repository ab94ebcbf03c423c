package notifications_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// BenchmarkDrainMemstore measures end-to-end dispatch on the embedded store: b.N messages
// enqueued up front, then a Manager with a handler that succeeds at once drains them; the
// time includes the final Stop, which writes every result.
func BenchmarkDrainMemstore(b *testing.B) {
	ctx := context.Background()
	store := memstore.New()
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench", TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "Body", EnabledByDefault: true}
	if err := notifications.RegisterTemplates(ctx, store, nil, tmpl); err != nil {
		b.Fatal(err)
	}
	cfg := BenchConfig()
	enq, err := notifications.NewStoreEnqueuer(cfg, store, notifications.EnqueuerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rcpt := &notifications.Recipient{Email: "u@example.com", Name: "U"}
	reqs := make([]notifications.EnqueueRequest, 0, 1000)
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: rcpt})
		if len(reqs) == cap(reqs) || i == b.N-1 {
			if _, err := enq.Send(ctx, reqs...); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	h := notificationstest.NewRecordingHandler(nil)
	m, err := notifications.NewManager(cfg, store, map[notifications.Method]notifications.Handler{cfg.Method: h})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	m.Run(ctx)
	if err := h.WaitForDeliveries(ctx, b.N); err != nil {
		b.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchConfig is the configuration the drain benchmarks use: more in flight and larger
// bulk writes than the defaults, which favour gentle load on a shared database.
func BenchConfig() notifications.Config {
	cfg := notifications.DefaultConfig()
	cfg.Method = notifications.MethodWebhook
	cfg.LeaseCount = 500
	cfg.StoreSyncBufferSize = 500
	cfg.StoreSyncInterval = 100 * time.Millisecond
	return cfg
}
