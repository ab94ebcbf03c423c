package pgstore_test

import (
	"context"
	"encoding/base64"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
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

// statementCounter counts the statements that write results.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestResultWritesStayBulk: MarkSent and MarkFailed of a batch, with its attempt history,
// are one statement each, whatever the batch size.
func TestResultWritesStayBulk(t *testing.T) {
	t.Parallel()
	_, schema := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
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
	const n = 40
	msgs := make([]notifications.NewMessage, n)
	for i := range msgs {
		msgs[i] = notifications.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "smtp", Payload: []byte(`{}`)}
	}
	if _, err := store.EnqueueMessages(ctx, msgs, true); err != nil {
		t.Fatal(err)
	}
	notifier := uuid.New()
	leased, err := store.LeaseMessages(ctx, notifications.LeaseParams{NotifierID: notifier, Methods: []notifications.Method{"smtp"}, Limit: n, LeasePeriod: time.Minute, MaxAttempts: 3})
	if err != nil || len(leased) != n {
		t.Fatalf("lease: %d, %v", len(leased), err)
	}
	var sent []notifications.SentResult
	var failed []notifications.FailedResult
	for i, m := range leased {
		if i%2 == 0 {
			sent = append(sent, notifications.SentResult{ID: m.ID, AttemptCount: m.AttemptCount, Duration: time.Duration(i) * time.Millisecond})
		} else {
			failed = append(failed, notifications.FailedResult{ID: m.ID, AttemptCount: m.AttemptCount, Status: notifications.StatusTemporaryFailure,
				Reason: "later", RetryDelay: time.Minute, Duration: time.Duration(i) * time.Millisecond})
		}
	}
	counter.n.Store(0)
	if got, err := store.MarkSent(ctx, notifier, sent); err != nil || got != len(sent) {
		t.Fatalf("mark sent: %d, %v", got, err)
	}
	if got := counter.n.Load(); got != 1 {
		t.Fatalf("MarkSent of %d results ran %d statements, want 1", len(sent), got)
	}
	counter.n.Store(0)
	if got, err := store.MarkFailed(ctx, notifier, failed); err != nil || got != len(failed) {
		t.Fatalf("mark failed: %d, %v", got, err)
	}
	if got := counter.n.Load(); got != 1 {
		t.Fatalf("MarkFailed of %d results ran %d statements, want 1", len(failed), got)
	}
	for i, m := range leased {
		as, err := store.MessageAttempts(ctx, m.ID)
		if err != nil || len(as) != 1 || as[0].FinishedAt.IsZero() || as[0].Duration != time.Duration(i)*time.Millisecond {
			t.Fatalf("attempts of message %d: %+v, %v", i, as, err)
		}
	}
}
