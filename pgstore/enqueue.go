package pgstore

import (
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// EnqueueMessages implements notifications.EnqueueStore. The whole batch is tried in one
// statement first (the common case: nothing refused). When that refuses a batch of more
// than one message, each message is tried on its own under a savepoint, inside one
// transaction (or a savepoint of the host's, in a transaction), so every refusal is
// attributed to its message; atomic then rolls everything back, otherwise the accepted
// messages are committed. Once messages are stored it wakes the notifiers: outside a
// transaction, by a NOTIFY in the enqueue's own implicit transaction when the store is
// idle (see Config.WakeInterval), or else by Wake; inside one (InTx, WithTx), by a
// wake-up TxWakeDelay later, committed or not (the store cannot see the commit).
func (s *Store) EnqueueMessages(ctx context.Context, msgs []driver.NewMessage, atomic bool) ([]error, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	woke, err := s.enqueueBatch(ctx, s.db, msgs)
	if err == nil {
		if !woke {
			s.wakeAfterEnqueue()
		}
		return nil, nil
	}
	if !refusal(err) || ctx.Err() != nil {
		return nil, xerrors.Errorf("enqueue messages: %w", err)
	}
	if len(msgs) == 1 { // the batch's refusal is the message's
		if atomic {
			return []error{err}, xerrors.Errorf("enqueue messages: nothing stored: %w", err)
		}
		return []error{err}, nil
	}
	tx, err := s.beginHot(ctx, s.db)
	if err != nil {
		return nil, xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	refused := make([]error, len(msgs))
	var first error
	seenIDs := make(map[uuid.UUID]bool, len(msgs))
	for i, m := range msgs {
		if seenIDs[m.ID] {
			refused[i] = xerrors.Errorf("enqueue message %s: the ID appears twice in one call: %w", m.ID, notifications.ErrDuplicate)
		} else if refused[i], err = s.enqueueSavepoint(ctx, tx, m); err != nil {
			return nil, xerrors.Errorf("enqueue messages: %w", err)
		}
		seenIDs[m.ID] = true
		if refused[i] != nil && first == nil {
			first = refused[i]
		}
	}
	if first != nil && atomic {
		return refused, xerrors.Errorf("enqueue messages: nothing stored: %w", first)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	if stored := slices.ContainsFunc(refused, func(err error) bool { return err == nil }); stored {
		s.wakeAfterEnqueue()
	}
	if first == nil {
		return nil, nil // refused as a batch, then each accepted: a concurrent change
	}
	return refused, nil
}

// enqueueSavepoint stores m under a savepoint of tx: refused is why m was refused (the
// savepoint is rolled back), err a failure of the transaction itself.
func (s *Store) enqueueSavepoint(ctx context.Context, tx dbtx, m driver.NewMessage) (refused, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, translate(err)
	}
	if _, rerr := s.enqueueBatch(ctx, sp, []driver.NewMessage{m}); rerr != nil {
		if err := sp.Rollback(ctx); err != nil {
			return nil, translate(err)
		}
		if !refusal(rerr) {
			return nil, rerr
		}
		return rerr, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, translate(err)
	}
	return nil, nil
}

// refusal reports whether err refuses input rather than failing the call.
func refusal(err error) bool {
	return errors.Is(err, notifications.ErrDuplicate) || errors.Is(err, notifications.ErrNotFound) ||
		errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) || errors.Is(err, notifications.ErrInvalidMessage)
}
