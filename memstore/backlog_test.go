package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
)

// TestLeaseIndependentOfBacklog: with 200,000 messages waiting for a retry (and 1,000 of
// another method pending), an empty lease must not walk them under the store's lock. The
// bound is wide (a walk costs milliseconds per lease, a heap peek microseconds), so the
// test holds on a loaded machine and under -race.
func TestLeaseIndependentOfBacklog(t *testing.T) {
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	ctx, _, s := largeStore(t, tmpl)
	const backlog, batch = 200_000, 5_000
	webhook := []notifications.Method{notifications.MethodWebhook}
	notifier := uuid.New()
	for i := 0; i < backlog; i += batch {
		msgs := make([]notifications.NewMessage, batch)
		for j := range msgs {
			msgs[j] = notifications.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: notifications.MethodWebhook, Payload: []byte(`{}`)}
		}
		if _, err := s.EnqueueMessages(ctx, msgs, true); err != nil {
			t.Fatal(err)
		}
		leased, err := s.LeaseMessages(ctx, notifications.LeaseParams{NotifierID: notifier, Methods: webhook, Limit: batch, LeasePeriod: time.Hour, MaxAttempts: 5})
		if err != nil || len(leased) != batch {
			t.Fatalf("lease: %d, %v", len(leased), err)
		}
		failed := make([]notifications.FailedResult, batch)
		for j, m := range leased {
			failed[j] = notifications.FailedResult{ID: m.ID, AttemptCount: m.AttemptCount, Status: notifications.StatusTemporaryFailure, RetryDelay: time.Hour}
		}
		if n, err := s.MarkFailed(ctx, notifier, failed); err != nil || n != batch {
			t.Fatalf("mark failed: %d, %v", n, err)
		}
	}
	other := make([]notifications.NewMessage, 1000)
	for j := range other {
		other[j] = notifications.NewMessage{ID: uuid.New(), TemplateID: tmpl.ID, UserID: uuid.New(), Method: "sms", Payload: []byte(`{}`)}
	}
	if _, err := s.EnqueueMessages(ctx, other, true); err != nil {
		t.Fatal(err)
	}

	const leases = 200
	start := time.Now()
	for range leases {
		got, err := s.LeaseMessages(ctx, notifications.LeaseParams{NotifierID: uuid.New(), Methods: webhook, Limit: 50, LeasePeriod: time.Minute, MaxAttempts: 5})
		if err != nil || len(got) != 0 {
			t.Fatalf("lease: %d, %v; want nothing due", len(got), err)
		}
	}
	per := time.Since(start) / leases
	t.Logf("empty lease with %d messages in backoff: %s", backlog, per)
	if per > 500*time.Microsecond {
		t.Fatalf("an empty lease took %s with %d messages in backoff; it must not depend on the backlog", per, backlog)
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
	s := memstore.New(memstore.WithClock(clk))
	if err := s.UpsertTemplates(ctx, templates...); err != nil {
		t.Fatal(err)
	}
	return ctx, clk, s
}
