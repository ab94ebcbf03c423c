package pgstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// deleteTracer counts the purge statements.
type deleteTracer struct {
	mu      sync.Mutex
	batches int
}

type traceKey struct{}

func (d *deleteTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, strings.Contains(data.SQL, "pg_try_advisory_xact_lock"))
}

func (d *deleteTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if purge, _ := ctx.Value(traceKey{}).(bool); purge && data.Err == nil {
		d.mu.Lock()
		d.batches++
		d.mu.Unlock()
	}
}

// TestPurgeStatementsAreBounded: a purge of 7 finished messages with BatchSize 3 runs three
// statements (3, 3 and 1 rows: a statement deleting fewer than BatchSize ends the purge, so
// three statements for seven rows means none deleted more than three), each its own short
// transaction.
func TestPurgeStatementsAreBounded(t *testing.T) {
	t.Parallel()
	_, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tracer := &deleteTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, pgstore.WithSchema(schema)); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.WithSchema(schema))
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	var msgs []notifications.NewMessage
	for range 7 {
		msgs = append(msgs, notifications.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)})
	}
	if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
		t.Fatal(err)
	}
	notifier := uuid.New()
	leased, err := store.LeaseMessages(ctx, notifications.LeaseParams{NotifierID: notifier, Methods: []notifications.Method{"smtp"}, Limit: 7, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != 7 {
		t.Fatalf("lease: %d, %v", len(leased), err)
	}
	sent := make([]notifications.SentResult, len(leased))
	for i, m := range leased {
		sent[i] = notifications.SentResult{ID: m.ID, AttemptCount: m.AttemptCount}
	}
	if _, err := store.MarkSent(ctx, notifier, sent); err != nil {
		t.Fatal(err)
	}
	tracer.mu.Lock()
	tracer.batches = 0
	tracer.mu.Unlock()
	n, err := store.PurgeMessages(ctx, notifications.PurgeParams{MessagesOlderThan: 0, BatchSize: 3})
	if err != nil || n != 7 {
		t.Fatalf("purge: %d, %v; want 7", n, err)
	}
	tracer.mu.Lock()
	defer tracer.mu.Unlock()
	if tracer.batches != 3 {
		t.Fatalf("%d purge statements, want three (3, 3 and 1 rows)", tracer.batches)
	}
}
