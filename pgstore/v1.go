package pgstore

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/storecheck"
)

// This file implements the parts of notifications.Store that hosts call for their screens
// and tools: preferences per method, template listing and deletion, the inbox view and the
// operator actions.

// SetPreference implements notifications.Store.
func (s *Store) SetPreference(ctx context.Context, userID uuid.UUID, p notifications.Preference) error {
	if userID == uuid.Nil {
		return xerrors.Errorf("set preference: user ID must be set: %w", notifications.ErrInvalidMessage)
	}
	if err := refuseNUL("set preference", string(p.Method)); err != nil {
		return err
	}
	query, args := s.q.setPreference, []any{s.now(), userID, p.TemplateID, p.Disabled}
	if p.Method != "" {
		query, args = s.q.setMethodPreference, []any{s.now(), userID, p.TemplateID, string(p.Method), p.Disabled}
	}
	tag, err := s.db.Exec(ctx, query, args...)
	if err != nil {
		return xerrors.Errorf("set preference: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return xerrors.Errorf("set preference: template %s: %w", p.TemplateID, notifications.ErrNotFound)
	}
	return nil
}

// Preferences implements notifications.Store.
func (s *Store) Preferences(ctx context.Context, userID uuid.UUID) ([]notifications.Preference, error) {
	rows, err := s.db.Query(ctx, s.q.preferences, userID)
	if err != nil {
		return nil, xerrors.Errorf("preferences: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (notifications.Preference, error) {
		var p notifications.Preference
		var method string
		err := row.Scan(&p.TemplateID, &method, &p.Disabled)
		p.Method = notifications.Method(method)
		return p, err
	})
	if err != nil {
		return nil, xerrors.Errorf("preferences: %w", translate(err))
	}
	return out, nil
}

// Templates implements notifications.Store.
func (s *Store) Templates(ctx context.Context) ([]notifications.Template, error) {
	rows, err := s.db.Query(ctx, s.q.templates)
	if err != nil {
		return nil, xerrors.Errorf("list templates: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (notifications.Template, error) { return scanTemplate(row) })
	if err != nil {
		return nil, xerrors.Errorf("list templates: %w", translate(err))
	}
	return out, nil
}

// DeleteTemplate implements notifications.Store in one statement: it reads the
// template's messages through the (template_id, created_at, seq) index.
func (s *Store) DeleteTemplate(ctx context.Context, id uuid.UUID) error {
	var n int
	if err := s.db.QueryRow(ctx, s.q.deleteTemplate, s.now(), id).Scan(&n); err != nil {
		return xerrors.Errorf("delete template %s: %w", id, translate(err))
	}
	if n == 0 {
		return xerrors.Errorf("delete template %s: %w", id, notifications.ErrNotFound)
	}
	return nil
}

// Keyset cursors. A cursor is opaque to callers: base64url of "<kind>1:<created_at in Unix
// microseconds>:<seq>", naming the last row of the page; the next page starts strictly
// before it in (created_at, seq) order, so rows inserted meanwhile (later, with a higher
// seq) never shift later pages. A cursor that does not parse is ErrInvalidCursor, before
// any SQL runs.

type cursor struct {
	at  time.Time
	seq int64
}

func encodeCursor(kind string, c cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "1:" + strconv.FormatInt(c.at.UnixMicro(), 10) + ":" + strconv.FormatInt(c.seq, 10)))
}

// decodeCursor returns the cursor, or ok false for "" (the first page).
func decodeCursor(kind, s string) (c cursor, ok bool, err error) {
	if s == "" {
		return cursor{}, false, nil
	}
	bad := xerrors.Errorf("cursor %q: %w", s, notifications.ErrInvalidCursor)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false, bad
	}
	rest, found := strings.CutPrefix(string(raw), kind+"1:")
	at, seq, found2 := strings.Cut(rest, ":")
	if !found || !found2 {
		return cursor{}, false, bad
	}
	micros, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(seq, 10, 64)
	// PostgreSQL's timestamptz spans 4713 BC to 294276 AD; keep to years 1-9999.
	if err1 != nil || err2 != nil || n <= 0 || micros < -62135596800000000 || micros > 253402300799999999 {
		return cursor{}, false, bad
	}
	return cursor{at: time.UnixMicro(micros).UTC(), seq: n}, true, nil
}

// args collects the positional arguments of a query built per call.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// InboxItems implements notifications.Store: newest first in insertion order
// (seq), from the (user_id, seq) index; filters skip rows of that walk.
func (s *Store) InboxItems(ctx context.Context, userID uuid.UUID, q notifications.InboxQuery) (notifications.InboxPage, error) {
	after, paged, err := decodeCursor("i", q.Cursor)
	if err != nil {
		return notifications.InboxPage{}, xerrors.Errorf("list inbox: %w", err)
	}
	limit := storecheck.PageLimit(q.Limit)
	var a args
	where := []string{"user_id = " + a.add(userID) + "::uuid"}
	if q.Archived {
		where = append(where, "archived_at IS NOT NULL")
	} else {
		where = append(where, "archived_at IS NULL")
	}
	if q.UnreadOnly {
		where = append(where, "read_at IS NULL")
	}
	if q.TemplateID != uuid.Nil {
		where = append(where, "template_id = "+a.add(q.TemplateID)+"::uuid")
	}
	if q.Target != uuid.Nil {
		where = append(where, "targets @> ARRAY["+a.add(q.Target.String())+"::uuid]")
	}
	if paged {
		// Items are numbered in insertion order: seq alone is the key.
		where = append(where, "seq < "+a.add(after.seq)+"::bigint")
	}
	sql := `SELECT id, user_id, template_id, title, title_markdown, content, actions::text, targets, created_at, read_at, archived_at, seq
FROM ` + s.q.schema + `.inbox WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq DESC LIMIT ` + a.add(limit+1)
	items, next, err := queryPage(ctx, s.db, "i", limit, sql, a, func(rows pgx.Rows) (notifications.InboxItem, cursor, error) {
		var seq int64
		it, err := scanInboxItem(rows, &seq)
		return it, cursor{at: it.CreatedAt, seq: seq}, err
	})
	if err != nil {
		return notifications.InboxPage{}, xerrors.Errorf("list inbox: %w", err)
	}
	return notifications.InboxPage{Items: items, NextCursor: next}, nil
}

// MarkAllInboxRead implements notifications.Store.
func (s *Store) MarkAllInboxRead(ctx context.Context, userID uuid.UUID) (int, error) {
	tag, err := s.db.Exec(ctx, s.q.inboxMarkAllRead, s.now(), userID)
	if err != nil {
		return 0, xerrors.Errorf("mark all inbox read: %w", translate(err))
	}
	return int(tag.RowsAffected()), nil
}

// ArchiveInboxItem implements notifications.Store.
func (s *Store) ArchiveInboxItem(ctx context.Context, userID, itemID uuid.UUID) error {
	tag, err := s.db.Exec(ctx, s.q.inboxArchive, s.now(), userID, itemID)
	if err != nil {
		return xerrors.Errorf("archive inbox item: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return xerrors.Errorf("archive inbox item: item %s of user %s: %w", itemID, userID, notifications.ErrNotFound)
	}
	return nil
}

// DeleteInboxItem implements notifications.Store.
func (s *Store) DeleteInboxItem(ctx context.Context, userID, itemID uuid.UUID) error {
	tag, err := s.db.Exec(ctx, s.q.inboxDelete, userID, itemID)
	if err != nil {
		return xerrors.Errorf("delete inbox item: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return xerrors.Errorf("delete inbox item: item %s of user %s: %w", itemID, userID, notifications.ErrNotFound)
	}
	return nil
}

// Messages implements notifications.Store: newest first by (created_at, seq). The
// query is built for the filters given, so each shape has its own plan: by user, else by
// template, from their (…, created_at, seq) index; by statuses alone, one ordered walk
// per stored status, merged: of the (status, created_at, seq) index of unsent messages,
// or, for sent ones (most rows, left out of that index), of the (created_at, seq) index
// (leased messages are read from the pending and retrying ones too, as a lease in place
// keeps their stored status, so a search for them reads past the messages waiting
// there); otherwise (a time window, a method, nothing) from the (created_at, seq) index.
// The cost of a page is its size plus the rows the filters skip in that index.
func (s *Store) Messages(ctx context.Context, q notifications.MessageQuery) (notifications.MessagePage, error) {
	after, paged, err := decodeCursor("m", q.Cursor)
	if err != nil {
		return notifications.MessagePage{}, xerrors.Errorf("list messages: %w", err)
	}
	limit := storecheck.PageLimit(q.Limit)
	statuses := make([]string, len(q.Statuses))
	for i, st := range q.Statuses {
		statuses[i] = string(st)
	}
	var a args
	var where []string
	if q.UserID != uuid.Nil {
		where = append(where, "m.user_id = "+a.add(q.UserID)+"::uuid")
	}
	if q.TemplateID != uuid.Nil {
		where = append(where, "m.template_id = "+a.add(q.TemplateID)+"::uuid")
	}
	if q.Method != "" {
		where = append(where, "m.method = "+a.add(string(q.Method)))
	}
	if !q.CreatedAfter.IsZero() {
		where = append(where, "m.created_at >= "+a.add(q.CreatedAfter)+"::timestamptz")
	}
	if !q.CreatedBefore.IsZero() {
		where = append(where, "m.created_at < "+a.add(q.CreatedBefore)+"::timestamptz")
	}
	if paged {
		where = append(where, "(m.created_at, m.seq) < ("+a.add(after.at)+"::timestamptz, "+a.add(after.seq)+"::bigint)")
	}
	perStatus := len(statuses) > 0 && q.UserID == uuid.Nil && q.TemplateID == uuid.Nil
	if len(statuses) > 0 && !perStatus {
		where = append(where, statusExpr+" = ANY("+a.add(statuses)+"::text[])")
	}
	lim := a.add(limit + 1)
	cond := "true"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	var sql string
	if perStatus {
		// A walk per stored status, each named by a literal (every one a Status
		// constant), so that the planner can prove a partial index's predicate.
		var walks []string
		for _, st := range slices.Compact(slices.Sorted(slices.Values(q.Statuses))) {
			if !st.Valid() {
				continue // matches no message
			}
			for _, stored := range storedStatuses(st) {
				walks = append(walks, `(SELECT m.* FROM `+s.q.schema+`.messages m WHERE m.status = '`+string(stored)+`' AND `+
					statusExpr+` = '`+string(st)+`' AND `+cond+`
	ORDER BY m.created_at DESC, m.seq DESC LIMIT `+lim+`)`)
			}
		}
		if len(walks) == 0 {
			return notifications.MessagePage{}, nil
		}
		sql = `SELECT ` + messageColumns + `, m.seq FROM (` + strings.Join(walks, "\nUNION ALL\n") + `) m
ORDER BY created_at DESC, seq DESC LIMIT ` + lim
	} else {
		sql = `SELECT ` + messageColumns + `, m.seq FROM ` + s.q.schema + `.messages m WHERE ` + cond + `
ORDER BY m.created_at DESC, m.seq DESC LIMIT ` + lim
	}
	msgs, next, err := queryPage(ctx, s.db, "m", limit, sql, a, func(rows pgx.Rows) (notifications.Message, cursor, error) {
		var seq int64
		m, err := scanMessage(rows, &seq)
		return m, cursor{at: m.CreatedAt, seq: seq}, err
	})
	if err != nil {
		return notifications.MessagePage{}, xerrors.Errorf("list messages: %w", err)
	}
	return notifications.MessagePage{Messages: msgs, NextCursor: next}, nil
}

// storedStatuses returns the statuses stored for messages of status st: a message leased
// in place keeps its stored status (pending or temporary_failure), and replicas of the
// previous version store leased.
func storedStatuses(st notifications.Status) []notifications.Status {
	if st == notifications.StatusLeased {
		return []notifications.Status{notifications.StatusLeased, notifications.StatusPending, notifications.StatusTemporaryFailure}
	}
	return []notifications.Status{st}
}

// queryPage runs a page query that asks for limit+1 rows: it returns the first limit, and
// a cursor naming the last of them when there was one more.
func queryPage[T any](ctx context.Context, db dbtx, kind string, limit int, sql string, a args,
	scan func(pgx.Rows) (T, cursor, error)) ([]T, string, error) {
	rows, err := db.Query(ctx, sql, a...)
	if err != nil {
		return nil, "", translate(err)
	}
	defer rows.Close()
	var out []T
	var last cursor
	for rows.Next() {
		if len(out) == limit {
			return out, encodeCursor(kind, last), nil
		}
		var v T
		if v, last, err = scan(rows); err != nil {
			return nil, "", xerrors.Errorf("scan: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", translate(err)
	}
	return out, "", nil
}

// MessageAttempts implements notifications.Store.
func (s *Store) MessageAttempts(ctx context.Context, id uuid.UUID) ([]notifications.Attempt, error) {
	rows, err := s.db.Query(ctx, s.q.attempts, id)
	if err != nil {
		return nil, xerrors.Errorf("message attempts %s: %w", id, translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (notifications.Attempt, error) {
		var at notifications.Attempt
		var finished *time.Time
		var outcome string
		var took int64
		err := row.Scan(&at.Number, &at.NotifierID, &at.LeasedAt, &finished, &outcome, &at.Reason, &took)
		at.FinishedAt, at.Outcome, at.Duration = deref(finished), notifications.Status(outcome), time.Duration(took)
		return at, err
	})
	if err != nil {
		return nil, xerrors.Errorf("message attempts %s: %w", id, translate(err))
	}
	if len(out) == 0 {
		var exists bool
		if err := s.db.QueryRow(ctx, s.q.messageExists, id).Scan(&exists); err != nil {
			return nil, xerrors.Errorf("message attempts %s: %w", id, translate(err))
		}
		if !exists {
			return nil, xerrors.Errorf("message attempts %s: %w", id, notifications.ErrNotFound)
		}
	}
	return out, nil
}

// RetryMessage implements notifications.Store; it wakes the notifiers like an
// enqueue.
func (s *Store) RetryMessage(ctx context.Context, id uuid.UUID) error {
	var status *string
	var deleted bool
	var n int
	if err := s.db.QueryRow(ctx, s.q.retry, s.now(), id).Scan(&status, &deleted, &n); err != nil {
		return xerrors.Errorf("retry message %s: %w", id, translate(err))
	}
	switch {
	case n == 1:
		s.wakeAfterEnqueue()
		return nil
	case status == nil:
		return xerrors.Errorf("retry message %s: %w", id, notifications.ErrNotFound)
	case deleted:
		return xerrors.Errorf("retry message %s: its template is deleted: %w", id, notifications.ErrNotFound)
	}
	return xerrors.Errorf("retry message %s: it is %s: %w", id, *status, notifications.ErrWrongStatus)
}

// CancelMessage implements notifications.Store.
func (s *Store) CancelMessage(ctx context.Context, id uuid.UUID) error {
	var status *string
	var n int
	if err := s.db.QueryRow(ctx, s.q.cancel, s.now(), id).Scan(&status, &n); err != nil {
		return xerrors.Errorf("cancel message %s: %w", id, translate(err))
	}
	switch {
	case n == 1:
		return nil
	case status == nil:
		return xerrors.Errorf("cancel message %s: %w", id, notifications.ErrNotFound)
	}
	return xerrors.Errorf("cancel message %s: it is %s: %w", id, *status, notifications.ErrWrongStatus)
}

// ResendMessage implements notifications.Store: the new message is enqueued like
// any other (template and preference checks, wake-up), with the dedupe key
// "resend:<new ID>".
func (s *Store) ResendMessage(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	old, err := s.Message(ctx, id)
	if err != nil {
		return uuid.Nil, xerrors.Errorf("resend message: %w", err)
	}
	newID := driver.NewMessageID(s.o.clock.Now("pgstore"))
	m := driver.NewMessage{
		ID: newID, TemplateID: old.TemplateID, UserID: old.UserID, Method: string(old.Method),
		Payload: old.Payload, Targets: old.Targets, CreatedBy: old.CreatedBy,
		DedupeKey: "resend:" + newID.String(),
	}
	woke, err := s.enqueueBatch(ctx, s.db, []driver.NewMessage{m})
	if err != nil {
		if errors.Is(err, notifications.ErrNotFound) {
			return uuid.Nil, xerrors.Errorf("resend message %s: template %s: %w", id, old.TemplateID, err)
		}
		return uuid.Nil, xerrors.Errorf("resend message %s: %w", id, err)
	}
	if !woke {
		s.wakeAfterEnqueue()
	}
	return newID, nil
}
