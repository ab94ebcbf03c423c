// Package benchkit is the shared plumbing of the project's own benchmarks and long
// reliability tests: a configuration that favours throughput, a bulk enqueue, and the
// drain benchmark every Store runs.
package benchkit

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/notificationstest"
)

// BenchConfig is the configuration BenchmarkDrain uses: more in flight and larger bulk
// writes than the defaults, which favour gentle load on a shared database.
func BenchConfig() notifications.Config {
	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 1000
	cfg.StoreSyncBufferSize = 1000
	cfg.StoreSyncInterval = 50 * time.Millisecond
	return cfg
}

// EnqueueN registers a trivial template in store and enqueues n notifications for it in
// batches of 1,000, one recipient each. It returns the template.
func EnqueueN(tb testing.TB, store notifications.Store, n int) notifications.Template {
	tb.Helper()
	ctx := context.Background()
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench " + uuid.NewString(), TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "Body",
		Methods: []notifications.Method{notifications.MethodWebhook}, EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		tb.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	rcpt := &notifications.Recipient{Email: "u@example.com", Name: "U"}
	reqs := make([]notifications.EnqueueRequest, 0, 1000)
	for i := 0; i < n; i++ {
		reqs = append(reqs, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: rcpt})
		if len(reqs) == cap(reqs) || i == n-1 {
			if _, err := enq.SendAtomic(ctx, reqs...); err != nil {
				tb.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	return tmpl
}

// BenchmarkDrain measures end-to-end dispatch on store: b.N messages enqueued up front
// (not timed), then one Manager with BenchConfig and a handler that succeeds at once runs
// until every message is delivered and Stop has written every result. It reports msgs/s
// and fails if any message is not sent.
func BenchmarkDrain(b *testing.B, store notifications.Store) {
	ctx := context.Background()
	EnqueueN(b, store, b.N)
	cfg := BenchConfig()
	h := notificationstest.NewRecordingHandler(nil)
	m, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := m.Run(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.WaitForDeliveries(ctx, b.N); err != nil {
		b.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	counts, err := store.CountByStatus(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if counts[notifications.StatusSent] != b.N {
		b.Fatalf("sent %d of %d", counts[notifications.StatusSent], b.N)
	}
}
