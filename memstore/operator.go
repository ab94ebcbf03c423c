package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/storecheck"
)

// Messages implements notifications.Store. A query by user (or else by template)
// reads only that user's (template's) messages; a time range is found by binary search.
func (s *Store) Messages(ctx context.Context, q notifications.MessageQuery) (notifications.MessagePage, error) {
	if err := ctx.Err(); err != nil {
		return notifications.MessagePage{}, xerrors.Errorf("list messages: %w", err)
	}
	before, err := decodeCursor("m", q.Cursor)
	if err != nil {
		return notifications.MessagePage{}, xerrors.Errorf("list messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs, more := s.index.page(q, before, storecheck.PageLimit(q.Limit))
	page := notifications.MessagePage{Messages: make([]notifications.Message, len(msgs))}
	for i, m := range msgs {
		page.Messages[i] = m.copy()
	}
	if more {
		page.NextCursor = encodeCursor("m", msgs[len(msgs)-1].seq)
	}
	return page, nil
}

// startAttemptLocked records a new attempt at lease time.
func (s *Store) startAttemptLocked(msg *message, notifier uuid.UUID, now time.Time) {
	msg.attempts = append(msg.attempts, notifications.Attempt{
		Number: msg.AttemptCount, NotifierID: notifier, LeasedAt: now, Outcome: notifications.StatusLeased,
	})
	if over := len(msg.attempts) - storecheck.MaxAttempts; over > 0 {
		msg.attempts = slices.Delete(msg.attempts, 0, over)
	}
}

// endAttemptLocked records how the current attempt ended.
func (s *Store) endAttemptLocked(msg *message, at time.Time, outcome notifications.Status, reason string, took time.Duration) {
	if len(msg.attempts) == 0 {
		return
	}
	a := &msg.attempts[len(msg.attempts)-1]
	if !a.FinishedAt.IsZero() {
		return
	}
	a.FinishedAt, a.Outcome, a.Reason, a.Duration = at, outcome, reason, took
}

// MessageAttempts implements notifications.Store.
func (s *Store) MessageAttempts(ctx context.Context, id uuid.UUID) ([]notifications.Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("message attempts: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.msgs[id]
	if !ok {
		return nil, xerrors.Errorf("message attempts: message %s: %w", id, notifications.ErrNotFound)
	}
	if len(msg.attempts) == 0 {
		return nil, nil // as before any lease: firstAttempt backs an empty, non-nil slice
	}
	return slices.Clone(msg.attempts), nil
}

// RetryMessage implements notifications.Store.
func (s *Store) RetryMessage(ctx context.Context, id uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("retry message: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.msgs[id]
	if !ok {
		return xerrors.Errorf("retry message %s: %w", id, notifications.ErrNotFound)
	}
	switch msg.Status {
	case notifications.StatusTemporaryFailure, notifications.StatusPermanentFailure, notifications.StatusCanceled:
	default:
		return xerrors.Errorf("retry message %s: it is %s: %w", id, msg.Status, notifications.ErrWrongStatus)
	}
	if s.deleted[msg.TemplateID] {
		return xerrors.Errorf("retry message %s: template %s: %w", id, msg.TemplateID, notifications.ErrNotFound)
	}
	s.dequeueLocked(msg)
	s.finished.remove(msg)
	msg.StatusReason = fmt.Sprintf("retried by an operator after %s: %s", msg.Status, msg.StatusReason)
	msg.Status = notifications.StatusPending
	msg.AttemptCount = 0
	msg.NextRetryAfter = time.Time{}
	msg.UpdatedAt = s.now()
	msg.cancel = ""
	msg.elem = s.queueLocked(msg.Method).pending.PushBack(msg)
	s.wakeLocked()
	return nil
}

// CancelMessage implements notifications.Store.
func (s *Store) CancelMessage(ctx context.Context, id uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("cancel message: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.msgs[id]
	if !ok {
		return xerrors.Errorf("cancel message %s: %w", id, notifications.ErrNotFound)
	}
	if msg.Status.Terminal() {
		return xerrors.Errorf("cancel message %s: it is %s: %w", id, msg.Status, notifications.ErrWrongStatus)
	}
	s.cancelLocked(msg, "canceled by an operator")
	return nil
}

// cancelLocked cancels an unfinished message now, or when its result arrives if leased.
func (s *Store) cancelLocked(msg *message, reason string) {
	if msg.Status == notifications.StatusLeased {
		msg.cancel = reason
		return
	}
	s.finishLocked(msg, notifications.StatusCanceled, s.now(), reason)
}

// ResendMessage implements notifications.Store.
func (s *Store) ResendMessage(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	if err := ctx.Err(); err != nil {
		return uuid.Nil, xerrors.Errorf("resend message: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.msgs[id]
	if !ok {
		return uuid.Nil, xerrors.Errorf("resend message %s: %w", id, notifications.ErrNotFound)
	}
	newID := driver.NewMessageID(s.now())
	m := driver.NewMessage{
		ID: newID, TemplateID: old.TemplateID, UserID: old.UserID, Method: string(old.Method),
		Payload: old.Payload, Targets: old.Targets, CreatedBy: old.CreatedBy,
		DedupeKey: "resend\x00" + newID.String(),
	}
	if err := s.checkLocked(m, map[string]struct{}{}, map[uuid.UUID]struct{}{}); err != nil {
		return uuid.Nil, xerrors.Errorf("resend message %s: %w", id, err)
	}
	s.insertLocked(m, s.now())
	s.wakeLocked()
	return newID, nil
}
