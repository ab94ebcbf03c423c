package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/memstore"
)

// TestLeaseIndependentOfBacklog: with 200,000 messages waiting for a retry (and 1,000 of
// another method pending), a lease must not walk them under the store's lock: it looks at
// what it takes and no more. The work is counted (messages looked at, Store.Visited), not
// timed: an empty lease looks at one message (the earliest retry, not yet due), and once
// every retry is due, a lease of 50 looks at those 50.
func TestLeaseIndependentOfBacklog(t *testing.T) {
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	ctx, clk, s := largeStore(t, tmpl)
	const backlog, batch = 200_000, 5_000
	webhook := []string{string(notifications.MethodWebhook)}
	notifier := uuid.New()
	for i := 0; i < backlog; i += batch {
		msgs := make([]driver.NewMessage, batch)
		for j := range msgs {
			msgs[j] = driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook), Payload: []byte(`{}`)}
		}
		if _, err := s.EnqueueMessages(ctx, msgs, true); err != nil {
			t.Fatal(err)
		}
		leased, err := s.LeaseMessages(ctx, driver.LeaseParams{NotifierID: notifier, Methods: webhook, Limit: batch, LeasePeriod: time.Hour, MaxAttempts: 5})
		if err != nil || len(leased) != batch {
			t.Fatalf("lease: %d, %v", len(leased), err)
		}
		failed := make([]driver.FailedResult, batch)
		for j, m := range leased {
			failed[j] = driver.FailedResult{ID: m.ID, AttemptCount: m.AttemptCount, Status: string(notifications.StatusTemporaryFailure), RetryDelay: time.Hour}
		}
		if n, err := s.MarkFailed(ctx, notifier, failed); err != nil || n != batch {
			t.Fatalf("mark failed: %d, %v", n, err)
		}
	}
	other := make([]driver.NewMessage, 1000)
	for j := range other {
		other[j] = driver.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "sms", Payload: []byte(`{}`)}
	}
	if _, err := s.EnqueueMessages(ctx, other, true); err != nil {
		t.Fatal(err)
	}

	const leases = 200
	before := s.Visited()
	for range leases {
		got, err := s.LeaseMessages(ctx, driver.LeaseParams{NotifierID: uuid.New(), Methods: webhook, Limit: 50, LeasePeriod: time.Minute, MaxAttempts: 5})
		if err != nil || len(got) != 0 {
			t.Fatalf("lease: %d, %v; want nothing due", len(got), err)
		}
	}
	if per := float64(s.Visited()-before) / leases; per != 1 {
		t.Fatalf("an empty lease looked at %.1f messages with %d in backoff; want 1 (the earliest retry)", per, backlog)
	}

	clk.Advance(time.Hour + time.Second).MustWait(ctx)
	before = s.Visited()
	got, err := s.LeaseMessages(ctx, driver.LeaseParams{NotifierID: uuid.New(), Methods: webhook, Limit: 50, LeasePeriod: time.Minute, MaxAttempts: 5})
	if err != nil || len(got) != 50 {
		t.Fatalf("lease with every retry due: %d, %v; want 50", len(got), err)
	}
	if n := s.Visited() - before; n != 50 {
		t.Fatalf("a lease of 50 looked at %d messages with %d due; want 50", n, backlog)
	}
}

// largeStore starts a long test (skipped with -short) on a store with a mock clock and the
// given templates.
func largeStore(t *testing.T, templates ...notifications.Template) (context.Context, *quartz.Mock, *memstore.Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("200,000 messages")
	}
	t.Parallel()
	ctx := context.Background()
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	s := memstore.New(memstore.Config{Clock: clk})
	if err := s.UpsertTemplates(ctx, templates...); err != nil {
		t.Fatal(err)
	}
	return ctx, clk, s
}
