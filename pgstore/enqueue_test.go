package pgstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifykit/notifications"
)

// TestSendInHostTransaction: a fan-out inside the host's transaction stores the
// acceptable requests and reports the refused ones; the refusals are rolled back to
// savepoints, so the host's transaction stays usable and commits what was stored.
func TestSendInHostTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	off, dup, ok := uuid.New(), uuid.New(), uuid.New()
	if err := f.store.SetPreference(f.ctx, off, notifications.Preference{TemplateID: f.tmpl.ID, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.enq.Enqueue(f.ctx, dup, f.tmpl.ID, nil, "test"); err != nil {
		t.Fatal(err)
	}
	req := func(user uuid.UUID) notifications.EnqueueRequest {
		return notifications.EnqueueRequest{TemplateID: f.tmpl.ID, UserID: user, CreatedBy: "test"}
	}
	var res []notifications.SendResult
	err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		var err error
		res, err = f.enq.SendTx(f.ctx, tx, req(off), req(dup), req(ok))
		if err != nil {
			return err
		}
		_, err = tx.Exec(f.ctx, "SELECT 1") // the transaction is not aborted
		return err
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if len(res) != 3 || !errors.Is(res[0].Err, notifications.ErrCannotEnqueueDisabledNotification) ||
		!errors.Is(res[1].Err, notifications.ErrDuplicate) || res[2].Err != nil || len(res[2].MessageIDs) != 1 {
		t.Fatalf("results: %+v", res)
	}
	if m, err := f.store.Message(f.ctx, res[2].MessageIDs[0]); err != nil || m.Status != notifications.StatusPending {
		t.Fatalf("committed message: %+v, %v", m, err)
	}
	counts, err := f.store.CountByStatus(f.ctx)
	if err != nil || counts[notifications.StatusPending] != 2 {
		t.Fatalf("pending: %v, %v; want the earlier one and the new one", counts, err)
	}

	// SendAtomic in the same situation stores nothing and names the first refusal.
	_, err = f.enq.SendAtomic(f.ctx, req(uuid.New()), req(off))
	if !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("atomic: %v", err)
	}
	if counts, _ := f.store.CountByStatus(f.ctx); counts[notifications.StatusPending] != 2 {
		t.Fatalf("a refused atomic send stored messages: %v", counts)
	}
}

// TestDuplicateRefusalIsReadable: a duplicate in a fan-out reads as a duplicate, without
// the driver's text, and still carries the driver's error for errors.As.
func TestDuplicateRefusalIsReadable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	req := notifications.EnqueueRequest{TemplateID: f.tmpl.ID, UserID: uuid.New(), IdempotencyKey: "order-1"}
	if _, err := f.enq.SendAtomic(f.ctx, req); err != nil {
		t.Fatal(err)
	}
	res, err := f.enq.Send(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := res[0].Err
	var pgErr *pgconn.PgError
	if !errors.Is(got, notifications.ErrDuplicate) || !errors.As(got, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("duplicate: %v; want ErrDuplicate wrapping the driver's unique violation", got)
	}
	if msg := got.Error(); strings.Contains(msg, "SQLSTATE") || strings.Contains(msg, "ERROR:") || !strings.Contains(msg, "idempotency key") {
		t.Fatalf("duplicate reads %q; want a sentence about the duplicate, without the driver's text", msg)
	}
}
