package pgstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// Result writes carry each message's attempt, status, reason and retry delay keyed by ID:
// one batch mixing statuses, reasons with quotes, backslashes, markup, non-ASCII and a
// NUL, and sub-second delays lands on the right rows; a result with a wrong attempt in
// the same batch changes nothing.
func TestResultBatchesRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for range 5 {
		if _, err := f.enq.Enqueue(f.ctx, uuid.New(), f.tmpl.ID, nil, "test"); err != nil {
			t.Fatal(err)
		}
	}
	notifier := uuid.New()
	leased, err := f.store.LeaseMessages(f.ctx, driver.LeaseParams{
		NotifierID: notifier, Limit: 10, MaxAttempts: 5, LeasePeriod: time.Minute,
		Methods: []string{string(notifications.MethodWebhook)},
	})
	if err != nil || len(leased) != 5 {
		t.Fatalf("lease: %d messages, %v", len(leased), err)
	}
	reason := `he said "no" \ <b>&</b> ünïcode ✓` + "\x00 tail"
	failed := []driver.FailedResult{
		{ID: leased[0].ID, AttemptCount: 1, Status: string(notifications.StatusTemporaryFailure), Reason: reason, RetryDelay: 1500 * time.Millisecond},
		{ID: leased[1].ID, AttemptCount: 1, Status: string(notifications.StatusPermanentFailure), Reason: "gone"},
		{ID: leased[2].ID, AttemptCount: 2, Status: string(notifications.StatusPermanentFailure), Reason: "wrong attempt"},
	}
	n, err := f.store.MarkFailed(f.ctx, notifier, failed)
	if err != nil || n != 2 {
		t.Fatalf("MarkFailed: %d rows, %v; want 2", n, err)
	}
	n, err = f.store.MarkSent(f.ctx, notifier, []driver.SentResult{
		{ID: leased[3].ID, AttemptCount: 1}, {ID: leased[4].ID, AttemptCount: 7}, {ID: uuid.New(), AttemptCount: 1},
	})
	if err != nil || n != 1 {
		t.Fatalf("MarkSent: %d rows, %v; want 1", n, err)
	}
	get := func(id uuid.UUID) notifications.Message {
		m, err := f.store.Message(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := get(leased[0].ID)
	if m.Status != notifications.StatusTemporaryFailure || m.StatusReason != `he said "no" \ <b>&</b> ünïcode ✓ tail` {
		t.Fatalf("temporary failure stored as %s %q", m.Status, m.StatusReason)
	}
	if d := m.NextRetryAfter.Sub(m.UpdatedAt); d != 1500*time.Millisecond {
		t.Fatalf("retry delay stored as %s, want 1.5s", d)
	}
	if m.LeasedBy != uuid.Nil || !m.LeasedUntil.IsZero() {
		t.Fatalf("failed message still carries its lease: %+v", m)
	}
	if m := get(leased[1].ID); m.Status != notifications.StatusPermanentFailure || m.StatusReason != "gone" || !m.NextRetryAfter.IsZero() {
		t.Fatalf("permanent failure stored as %s %q retry %v", m.Status, m.StatusReason, m.NextRetryAfter)
	}
	if m := get(leased[2].ID); m.Status != notifications.StatusLeased {
		t.Fatalf("a result with the wrong attempt changed the message to %s", m.Status)
	}
	if m := get(leased[3].ID); m.Status != notifications.StatusSent || m.SentAt.IsZero() {
		t.Fatalf("sent message stored as %s", m.Status)
	}
	if m := get(leased[4].ID); m.Status != notifications.StatusLeased {
		t.Fatalf("MarkSent with the wrong attempt changed the message to %s", m.Status)
	}
}
