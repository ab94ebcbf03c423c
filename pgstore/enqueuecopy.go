package pgstore

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications/driver"
)

// copyEnqueueMin is the smallest batch that enqueueBatch copies into the table (COPY)
// instead of inserting it with the one-statement enqueue: from there, the three more
// round trips (a transaction or savepoint, the check, the commit) cost less than the
// executor's work per row that COPY saves.
const copyEnqueueMin = 64

// copyColumns are the messages columns enqueueCopy writes, in copyRows' order.
var copyColumns = []string{"id", "template_id", "user_id", "method", "payload", "targets", "created_by", "dedupe_key", "created_at", "updated_at"}

// enqueueCopy is enqueueBatch for a large batch, already validated: in a transaction of
// its own (a savepoint of db's, when db is one), one query checks the batch's distinct
// (template, user, method) triples as the enqueue statement does and returns the time to
// store, then COPY writes every row, and a second COPY their dedupe keys (see
// keysWritten). A refusal (a missing or disabled template, a duplicate, data PostgreSQL
// refuses) rolls it all back, as the statement would.
func (s *Store) enqueueCopy(ctx context.Context, db dbtx, msgs []driver.NewMessage) error {
	type triple struct {
		template, user uuid.UUID
		method         string
	}
	seen := make(map[triple]struct{}, len(msgs))
	var tmpls, users, methods []string
	for _, m := range msgs {
		k := triple{m.TemplateID, m.UserID, m.Method}
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		tmpls, users, methods = append(tmpls, m.TemplateID.String()), append(users, m.UserID.String()), append(methods, m.Method)
	}
	tx, err := s.beginHot(ctx, db)
	if err != nil {
		return xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var (
		now                  time.Time
		badTemplate, badUser *uuid.UUID
		missing              *bool
	)
	if err := tx.QueryRow(ctx, s.q.enqueueCheck, s.now(), tmpls, users, methods).Scan(&now, &badTemplate, &badUser, &missing); err != nil {
		return xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	if badTemplate != nil {
		return enqueueRefusal(badTemplate, badUser, missing)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{s.o.schema, "messages"}, copyColumns, &copyRows{msgs: msgs, now: now, i: -1})
	if err != nil {
		return xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	if n != int64(len(msgs)) {
		return xerrors.Errorf("enqueue messages: copied %d of %d rows", n, len(msgs))
	}
	// A row (key, message_id) per message that has a key.
	next := 0
	keys := pgx.CopyFromFunc(func() ([]any, error) {
		for next < len(msgs) {
			m := &msgs[next]
			next++
			if m.DedupeKey != "" {
				return []any{m.DedupeKey, [16]byte(m.ID)}, nil
			}
		}
		return nil, nil // the end
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.o.schema, "dedupe_keys"}, []string{"key", "message_id"}, keys); err != nil {
		return xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return xerrors.Errorf("enqueue messages: %w", translate(err))
	}
	return nil
}

// copyRows is the pgx.CopyFromSource of enqueueCopy: one row of copyColumns per message,
// in a buffer reused from row to row (pgx encodes each row before asking for the next).
type copyRows struct {
	msgs []driver.NewMessage
	now  time.Time
	i    int
	row  [10]any
}

func (r *copyRows) Next() bool {
	r.i++
	return r.i < len(r.msgs)
}

func (r *copyRows) Values() ([]any, error) {
	m := &r.msgs[r.i]
	targets := make([][16]byte, len(m.Targets))
	for i, t := range m.Targets {
		targets[i] = t
	}
	r.row = [10]any{[16]byte(m.ID), [16]byte(m.TemplateID), [16]byte(m.UserID), m.Method, m.Payload, targets, m.CreatedBy, dedupeKeyArg(&m.DedupeKey), r.now, r.now}
	return r.row[:], nil
}

func (r *copyRows) Err() error { return nil }
