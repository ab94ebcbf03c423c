package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/pgstore"
)

// TestAttemptHistoryFromVersion6: attempt rows written by version 6 (a row per lease,
// finished by the result) read the same after the upgrade to the version that writes rows
// only for attempts that did not succeed: a sent message keeps its finished rows, sent
// included, without a second sent attempt; a message leased under version 6 is listed
// once (its unfinished row is not), and its result, written by this version, is listed
// once with the lease time and notifier of that lease.
func TestAttemptHistoryFromVersion6(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	ctx := context.Background()
	if err := pgstore.MigrateTo(ctx, pool, 6, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	tmpl := uuid.New()
	n1, n2 := uuid.New(), uuid.New()
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	sent, leasedOK, leasedFail := uuid.New(), uuid.New(), uuid.New()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO ` + s + `.templates (id, name, title_template, body_template) VALUES ($1, 't', 'x', '')`, []any{tmpl}},
		// Sent under version 6 after a temporary failure: two finished rows.
		{`INSERT INTO ` + s + `.messages (id, template_id, user_id, method, payload, status, attempt_count, created_at, updated_at, sent_at)
			VALUES ($1, $2, $3, 'smtp', '{}', 'sent', 2, $4, $4::timestamptz + interval '2 minutes', $4::timestamptz + interval '2 minutes')`,
			[]any{sent, tmpl, uuid.New(), t0}},
		{`INSERT INTO ` + s + `.attempts (message_id, number, notifier_id, leased_at, finished_at, outcome, reason, duration_ns) VALUES
			($1, 1, $2, $3, $3::timestamptz + interval '1 second', 'temporary_failure', '451 later', 5),
			($1, 2, $2, $3::timestamptz + interval '1 minute', $3::timestamptz + interval '2 minutes', 'sent', '', 7)`,
			[]any{sent, n1, t0}},
		// Leased under version 6 by n2: an unfinished row each.
		{`INSERT INTO ` + s + `.messages (id, template_id, user_id, method, payload, status, attempt_count, created_at, updated_at, leased_by, leased_until)
			VALUES ($1, $3, $4, 'smtp', '{}', 'leased', 1, $5, $5, $6, $5::timestamptz + interval '1 hour'),
			       ($2, $3, $4, 'smtp', '{}', 'leased', 1, $5, $5, $6, $5::timestamptz + interval '1 hour')`,
			[]any{leasedOK, leasedFail, tmpl, uuid.New(), t0, n2}},
		{`INSERT INTO ` + s + `.attempts (message_id, number, notifier_id, leased_at, outcome) VALUES ($1, 1, $3, $4, 'leased'), ($2, 1, $3, $4, 'leased')`,
			[]any{leasedOK, leasedFail, n2, t0}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.Config{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.Config{Schema: schema})
	history := func(id uuid.UUID) []notifications.Attempt {
		t.Helper()
		as, err := store.MessageAttempts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	check := func(what string, got []notifications.Attempt, want ...notifications.Attempt) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %+v, want %+v", what, got, want)
		}
		for i, w := range want {
			g := got[i]
			if g.Number != w.Number || g.NotifierID != w.NotifierID || !g.LeasedAt.Equal(w.LeasedAt) || !g.FinishedAt.Equal(w.FinishedAt) ||
				g.Outcome != w.Outcome || g.Reason != w.Reason || g.Duration != w.Duration {
				t.Errorf("%s: attempt %d: %+v, want %+v", what, i, g, w)
			}
		}
	}
	check("sent under version 6", history(sent),
		notifications.Attempt{Number: 1, NotifierID: n1, LeasedAt: t0, FinishedAt: t0.Add(time.Second), Outcome: notifications.StatusTemporaryFailure, Reason: "451 later", Duration: 5},
		notifications.Attempt{Number: 2, NotifierID: n1, LeasedAt: t0.Add(time.Minute), FinishedAt: t0.Add(2 * time.Minute), Outcome: notifications.StatusSent, Duration: 7})
	inFlight := notifications.Attempt{Number: 1, NotifierID: n2, LeasedAt: t0, Outcome: notifications.StatusLeased}
	check("leased under version 6", history(leasedOK), inFlight)

	if n, err := store.MarkSent(ctx, n2, []driver.SentResult{{ID: leasedOK, AttemptCount: 1, Duration: 3 * time.Second}}); err != nil || n != 1 {
		t.Fatalf("mark sent: %d, %v", n, err)
	}
	if n, err := store.MarkFailed(ctx, n2, []driver.FailedResult{{ID: leasedFail, AttemptCount: 1, Status: string(notifications.StatusPermanentFailure),
		Reason: "550 no such user", Duration: 4 * time.Second}}); err != nil || n != 1 {
		t.Fatalf("mark failed: %d, %v", n, err)
	}
	for id, want := range map[uuid.UUID]notifications.Attempt{
		leasedOK:   {Number: 1, NotifierID: n2, LeasedAt: t0, Outcome: notifications.StatusSent, Duration: 3 * time.Second},
		leasedFail: {Number: 1, NotifierID: n2, LeasedAt: t0, Outcome: notifications.StatusPermanentFailure, Reason: "550 no such user", Duration: 4 * time.Second},
	} {
		m, err := store.Message(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want.FinishedAt = m.UpdatedAt
		check("result after the upgrade of "+string(want.Outcome), history(id), want)
	}
}
