package pgstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

func benchStore(b *testing.B) *pgstore.Store {
	b.Helper()
	pool, schema := pgtest.Schema(b)
	if err := pgstore.Migrate(context.Background(), pool, pgstore.Config{Schema: schema}); err != nil {
		b.Fatal(err)
	}
	return pgstore.New(pool, pgstore.Config{Schema: schema})
}

// BenchmarkDrainPostgres: b.N messages batch-enqueued, then one Manager on pgstore runs
// until every message is sent in the database.
func BenchmarkDrainPostgres(b *testing.B) {
	benchkit.BenchmarkDrain(b, benchStore(b))
}

// BenchmarkEnqueueBatchPostgres: b.N notifications enqueued in Sends of 1,000 requests
// (one statement each); ns/op is per notification.
func BenchmarkEnqueueBatchPostgres(b *testing.B) {
	store := benchStore(b)
	b.ResetTimer()
	benchkit.EnqueueN(b, store, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEnqueueSinglePostgres: one notification per call, one statement per call.
func BenchmarkEnqueueSinglePostgres(b *testing.B) {
	store := benchStore(b)
	tmpl := notifications.Template{ID: uuid.New(), Name: "bench", TitleTemplate: "Hi", EnabledByDefault: true}
	ctx := context.Background()
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		b.Fatal(err)
	}
	enq, _ := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{DefaultMethods: []notifications.Method{notifications.MethodWebhook}})
	rcpt := &notifications.Recipient{Email: "u@example.com"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: uuid.New(), Recipient: rcpt}); err != nil {
			b.Fatal(err)
		}
	}
}
