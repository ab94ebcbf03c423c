package pgstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
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

// The store sends its purge statements in a batch, after their settings (see noJIT).
func (d *deleteTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (d *deleteTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if strings.Contains(data.SQL, "pg_try_advisory_xact_lock") && data.Err == nil {
		d.mu.Lock()
		d.batches++
		d.mu.Unlock()
	}
}

func (d *deleteTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestPurgeStatementsAreBounded: a purge of 7 finished messages with BatchSize 3 runs three
// statements (3, 3 and 1 rows: a statement deleting fewer than BatchSize ends the purge, so
// three statements for seven rows means none deleted more than three), each its own short
// transaction.
func TestPurgeStatementsAreBounded(t *testing.T) {
	t.Parallel()
	tracer := &deleteTracer{}
	ctx, store, tmpl := tracedStore(t, tracer)
	notifier, leased := leaseNew(t, ctx, store, tmpl, 7)
	markAllSent(t, ctx, store, notifier, leased)
	tracer.mu.Lock()
	tracer.batches = 0
	tracer.mu.Unlock()
	n, err := store.PurgeMessages(ctx, driver.PurgeParams{MessagesOlderThan: 0, BatchSize: 3})
	if err != nil || n != 7 {
		t.Fatalf("purge: %d, %v; want 7", n, err)
	}
	tracer.mu.Lock()
	defer tracer.mu.Unlock()
	if tracer.batches != 3 {
		t.Fatalf("%d purge statements, want three (3, 3 and 1 rows)", tracer.batches)
	}
}

// tracedStore is a migrated store in a schema of its own, on a pool whose connections
// report to tracer, with one template; its context ends with the test (a minute at most).
func tracedStore(t *testing.T, tracer pgx.QueryTracer) (context.Context, *pgstore.Store, notifications.Template) {
	t.Helper()
	ctx, cfg := poolConfig(t)
	cfg.ConnConfig.Tracer = tracer
	_, store, tmpl := storeOnPool(t, ctx, cfg)
	return ctx, store, tmpl
}

// leaseNew enqueues n smtp messages of tmpl and leases them all for a new notifier.
func leaseNew(t *testing.T, ctx context.Context, store *pgstore.Store, tmpl notifications.Template, n int) (uuid.UUID, []driver.LeasedMessage) {
	t.Helper()
	msgs := make([]driver.NewMessage, n)
	for i := range msgs {
		msgs[i] = driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
	}
	if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
		t.Fatal(err)
	}
	notifier := uuid.New()
	leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{"smtp"}, Limit: n, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != n {
		t.Fatalf("lease: %d, %v", len(leased), err)
	}
	return notifier, leased
}

// markAllSent writes the success of each of leased, leased by notifier, and fails the
// test unless every one is written.
func markAllSent(t *testing.T, ctx context.Context, store *pgstore.Store, notifier uuid.UUID, leased []driver.LeasedMessage) {
	t.Helper()
	results := make([]driver.SentResult, len(leased))
	for i, m := range leased {
		results[i] = driver.SentResult{ID: m.ID, AttemptCount: m.AttemptCount}
	}
	if got, err := store.MarkSent(ctx, notifier, results); err != nil || got != len(leased) {
		t.Fatalf("marked %d of %d sent: %v", got, len(leased), err)
	}
}
