package pgstore_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// TestTamperedCursors: a cursor the store did not make is ErrInvalidCursor, found before
// any SQL runs (never a database error), for message search and the inbox alike.
func TestTamperedCursors(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t)
	ctx := context.Background()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []string{
		"x", "not base64!", enc("m1:"), enc("m1:1:"), enc("m1:abc:1"), enc("m1:1:0"), enc("m1:1:-5"),
		enc("m1:99999999999999999999:1"), enc("m1:253402300800000000:1"), enc("m1:1:1;DROP TABLE messages"),
		enc("i1:1:1"), enc("m2:1:1"), enc("m1:1:1:1"),
	} {
		_, err := store.Messages(ctx, notifications.MessageQuery{Cursor: c})
		var pgErr interface{ SQLState() string }
		if !errors.Is(err, notifications.ErrInvalidCursor) || errors.As(err, &pgErr) {
			t.Errorf("message cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
	page, err := store.Messages(ctx, notifications.MessageQuery{Cursor: enc("m1:1:1")})
	if err != nil || len(page.Messages) != 0 {
		t.Fatalf("a well-formed cursor: %+v, %v", page, err)
	}
	for _, c := range []string{enc("m1:1:1"), enc("i1:x:1"), "%%%"} {
		if _, err := store.InboxItems(ctx, uuid.New(), notifications.InboxQuery{Cursor: c}); !errors.Is(err, notifications.ErrInvalidCursor) {
			t.Errorf("inbox cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
}

// sqlTracer is called with the SQL of every statement a pool starts, alone or in a batch
// (the store sends its hot-path statements in batches, after their settings: see noJIT).
type sqlTracer func(sql string)

func (f sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	f(data.SQL)
	return ctx
}

func (sqlTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (sqlTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (f sqlTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	f(data.SQL)
}

func (sqlTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countStatements returns a tracer that counts the statements on messages or attempts in
// n (not the wake-ups an enqueue sends from another connection of the pool, whenever they
// go).
func countStatements(n *atomic.Int64) sqlTracer {
	return func(sql string) {
		if strings.Contains(sql, ".messages") || strings.Contains(sql, ".attempts") {
			n.Add(1)
		}
	}
}

// TestResultWritesStayBulk: MarkSent and MarkFailed of a batch, with its attempt history,
// are one statement each, whatever the batch size.
func TestResultWritesStayBulk(t *testing.T) {
	t.Parallel()
	var statements atomic.Int64
	ctx, store, tmpl := tracedStore(t, countStatements(&statements))
	notifier, leased := leaseNew(t, ctx, store, tmpl, 40)
	var sent []driver.SentResult
	var failed []driver.FailedResult
	for i, m := range leased {
		if i%2 == 0 {
			sent = append(sent, driver.SentResult{ID: m.ID, AttemptCount: m.AttemptCount, Duration: time.Duration(i) * time.Millisecond})
		} else {
			failed = append(failed, driver.FailedResult{ID: m.ID, AttemptCount: m.AttemptCount, Status: string(notifications.StatusTemporaryFailure),
				Reason: "later", RetryDelay: time.Minute, Duration: time.Duration(i) * time.Millisecond})
		}
	}
	statements.Store(0)
	if got, err := store.MarkSent(ctx, notifier, sent); err != nil || got != len(sent) {
		t.Fatalf("mark sent: %d, %v", got, err)
	}
	if got := statements.Load(); got != 1 {
		t.Fatalf("MarkSent of %d results ran %d statements, want 1", len(sent), got)
	}
	statements.Store(0)
	if got, err := store.MarkFailed(ctx, notifier, failed); err != nil || got != len(failed) {
		t.Fatalf("mark failed: %d, %v", got, err)
	}
	if got := statements.Load(); got != 1 {
		t.Fatalf("MarkFailed of %d results ran %d statements, want 1", len(failed), got)
	}
	for i, m := range leased {
		as, err := store.MessageAttempts(ctx, m.ID)
		if err != nil || len(as) != 1 || as[0].FinishedAt.IsZero() || as[0].Duration != time.Duration(i)*time.Millisecond {
			t.Fatalf("attempts of message %d: %+v, %v", i, as, err)
		}
	}
}

// TestTemplateMethodsRoundTrip: methods with characters that mean something in an array
// literal are stored and read back as they were.
func TestTemplateMethodsRoundTrip(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t)
	ctx := context.Background()
	tmpl := notifications.Template{ID: uuid.New(), Name: "odd methods", TitleTemplate: "x",
		Methods:        []notifications.Method{`a,b`, `q"x`, `back\slash`, `{}`, `NULL`, ` sp `},
		ExcludeMethods: []notifications.Method{`"`, `\`}}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	got, err := store.Template(ctx, tmpl.ID)
	if err != nil || !slices.Equal(got.Methods, tmpl.Methods) || !slices.Equal(got.ExcludeMethods, tmpl.ExcludeMethods) {
		t.Fatalf("template read back: %q %q, %v; want %q %q", got.Methods, got.ExcludeMethods, err, tmpl.Methods, tmpl.ExcludeMethods)
	}
}

// TestLeaseCancelsMessagesOfDeletedTemplate: a message stored for a template that is
// deleted meanwhile (an enqueue racing DeleteTemplate, or a replica of the previous version
// that does not know of deletion) is canceled by the lease that finds it, not delivered.
func TestLeaseCancelsMessagesOfDeletedTemplate(t *testing.T) {
	t.Parallel()
	store, pool, schema := newStore(t)
	ctx := context.Background()
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	if err := store.UpsertTemplates(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteTemplate(ctx, tmpl.ID); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema}.Sanitize()+`.messages
		(id, template_id, user_id, method, payload, created_at, updated_at) VALUES ($1, $2, $3, 'smtp', '{}', now(), now())`,
		id, tmpl.ID, uuid.New()); err != nil {
		t.Fatal(err)
	}
	leased, err := store.LeaseMessages(ctx, driver.LeaseParams{NotifierID: uuid.New(), Methods: []string{"smtp"},
		Limit: 10, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != 0 {
		t.Fatalf("lease: %d, %v; want none", len(leased), err)
	}
	m, err := store.Message(ctx, id)
	if err != nil || m.Status != notifications.StatusCanceled || m.StatusReason != "template deleted" {
		t.Fatalf("message: %+v, %v; want canceled, \"template deleted\"", m, err)
	}
}

// TestTemplateRowDeletedByHand: a template row deleted outside the library (the library
// only marks templates deleted) cancels its unfinished messages when a notifier would
// lease them, keeps its finished ones for the purge, and does not hold up the messages
// queued behind them; RetryMessage refuses its messages as those of a deleted template.
func TestTemplateRowDeletedByHand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := notifications.Template{ID: uuid.New(), Name: "other", TitleTemplate: "x", EnabledByDefault: true}
	if err := f.store.UpsertTemplates(f.ctx, other); err != nil {
		t.Fatal(err)
	}
	send := func(tmpl uuid.UUID) uuid.UUID {
		ids, err := f.enq.SendAtomic(f.ctx, notifications.EnqueueRequest{TemplateID: tmpl, UserID: uuid.New()})
		if err != nil {
			t.Fatal(err)
		}
		return ids[0]
	}
	notifier := uuid.New()
	lease := func(limit int) []driver.LeasedMessage {
		got, err := f.store.LeaseMessages(f.ctx, driver.LeaseParams{NotifierID: notifier, Methods: []string{string(notifications.MethodWebhook)},
			Limit: limit, LeasePeriod: time.Minute, MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	sent := send(f.tmpl.ID)
	if l := lease(1); len(l) != 1 {
		t.Fatalf("leased %d", len(l))
	} else if _, err := f.store.MarkSent(f.ctx, notifier, []driver.SentResult{{ID: sent, AttemptCount: 1}}); err != nil {
		t.Fatal(err)
	}
	orphans := []uuid.UUID{send(f.tmpl.ID), send(f.tmpl.ID), send(f.tmpl.ID)}
	behind := send(other.ID)
	if _, err := f.pool.Exec(f.ctx, "DELETE FROM "+pgx.Identifier{f.schema, "templates"}.Sanitize()+" WHERE id = $1", f.tmpl.ID); err != nil {
		t.Fatalf("delete the template row: %v", err)
	}
	got := lease(10)
	if len(got) != 1 || got[0].ID != behind {
		t.Fatalf("leased %+v; want only the other template's message, queued behind the three orphans", got)
	}
	for _, id := range orphans {
		m, err := f.store.Message(f.ctx, id)
		if err != nil || m.Status != notifications.StatusCanceled || m.StatusReason != "template deleted" {
			t.Fatalf("orphan %s: %+v, %v; want canceled, template deleted", id, m, err)
		}
		if err := f.store.RetryMessage(f.ctx, id); !errors.Is(err, notifications.ErrNotFound) {
			t.Fatalf("retry an orphan: %v; want ErrNotFound (its template is gone)", err)
		}
	}
	if m, err := f.store.Message(f.ctx, sent); err != nil || m.Status != notifications.StatusSent {
		t.Fatalf("the sent message: %+v, %v; want it kept for the purge", m, err)
	}
}
