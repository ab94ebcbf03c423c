package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// BenchmarkDrainPostgres: b.N messages batch-enqueued, then one Manager on pgstore with a
// handler that succeeds at once runs until every message is sent in the database (Stop
// writes the last results).
func BenchmarkDrainPostgres(b *testing.B) {
	ctx := context.Background()
	pool, schema := pgtest.Schema(b)
	if err := pgstore.Migrate(ctx, pool, pgstore.WithSchema(schema)); err != nil {
		b.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.WithSchema(schema))
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench", TitleTemplate: "Hi {{.UserName}}", BodyTemplate: "Body", EnabledByDefault: true}
	if err := notifications.RegisterTemplates(ctx, store, nil, tmpl); err != nil {
		b.Fatal(err)
	}
	cfg := notifications.DefaultConfig()
	cfg.Method = notifications.MethodWebhook
	cfg.LeaseCount = 500
	cfg.StoreSyncBufferSize = 500
	cfg.StoreSyncInterval = 100 * time.Millisecond
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
	counts, _ := store.CountByStatus(ctx)
	if counts[notifications.StatusSent] != b.N {
		b.Fatalf("sent %d of %d", counts[notifications.StatusSent], b.N)
	}
}

// BenchmarkEnqueueBatchPostgres: b.N notifications enqueued in Sends of 1,000 requests
// (one statement each); ns/op is per notification.
func BenchmarkEnqueueBatchPostgres(b *testing.B) {
	ctx := context.Background()
	pool, schema := pgtest.Schema(b)
	if err := pgstore.Migrate(ctx, pool, pgstore.WithSchema(schema)); err != nil {
		b.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.WithSchema(schema))
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench", TitleTemplate: "Hi", EnabledByDefault: true}
	if err := notifications.RegisterTemplates(ctx, store, nil, tmpl); err != nil {
		b.Fatal(err)
	}
	cfg := notifications.DefaultConfig()
	enq, _ := notifications.NewStoreEnqueuer(cfg, store, notifications.EnqueuerOptions{})
	rcpt := &notifications.Recipient{Email: "u@example.com"}
	reqs := make([]notifications.EnqueueRequest, 0, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs = append(reqs, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: rcpt})
		if len(reqs) == cap(reqs) || i == b.N-1 {
			if _, err := enq.Send(ctx, reqs...); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEnqueueSinglePostgres: one notification per call, one statement per call.
func BenchmarkEnqueueSinglePostgres(b *testing.B) {
	ctx := context.Background()
	pool, schema := pgtest.Schema(b)
	if err := pgstore.Migrate(ctx, pool, pgstore.WithSchema(schema)); err != nil {
		b.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.WithSchema(schema))
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench", TitleTemplate: "Hi", EnabledByDefault: true}
	if err := notifications.RegisterTemplates(ctx, store, nil, tmpl); err != nil {
		b.Fatal(err)
	}
	enq, _ := notifications.NewStoreEnqueuer(notifications.DefaultConfig(), store, notifications.EnqueuerOptions{})
	rcpt := &notifications.Recipient{Email: "u@example.com"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := enq.Send(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: rcpt}); err != nil {
			b.Fatal(err)
		}
	}
}
