package pgstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
)

// InsertInboxItem implements notifications.InboxStore; idempotent on item.ID.
func (s *Store) InsertInboxItem(ctx context.Context, item notifications.InboxItem) (bool, error) {
	if item.ID == uuid.Nil || item.UserID == uuid.Nil {
		return false, xerrors.Errorf("insert inbox item: ID and UserID must be set: %w", notifications.ErrInvalidMessage)
	}
	if err := refuseNUL("insert inbox item "+item.ID.String(), item.Title, item.TitleMarkdown, item.Content); err != nil {
		return false, err
	}
	actions := item.Actions
	if actions == nil {
		actions = []notifications.Action{}
	}
	b, err := json.Marshal(actions)
	if err != nil {
		return false, xerrors.Errorf("insert inbox item: encode actions: %w", err)
	}
	tag, err := s.db.Exec(ctx, s.q.inboxInsert, s.now(), item.ID, item.UserID, item.TemplateID, item.Title, item.Content,
		string(b), uuidArrayLiteral(item.Targets), item.TitleMarkdown)
	if err != nil {
		return false, xerrors.Errorf("insert inbox item: %w", translate(err))
	}
	return tag.RowsAffected() == 1, nil
}

// UnreadInboxCount implements notifications.InboxStore.
func (s *Store) UnreadInboxCount(ctx context.Context, userID uuid.UUID) (int, error) {
	var n int
	if err := s.db.QueryRow(ctx, s.q.inboxUnread, userID).Scan(&n); err != nil {
		return 0, xerrors.Errorf("count unread inbox: %w", translate(err))
	}
	return n, nil
}

// MarkInboxRead implements notifications.InboxStore.
func (s *Store) MarkInboxRead(ctx context.Context, userID, itemID uuid.UUID) error {
	tag, err := s.db.Exec(ctx, s.q.inboxMarkRead, s.now(), userID, itemID)
	if err != nil {
		return xerrors.Errorf("mark inbox read: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return xerrors.Errorf("mark inbox read: item %s of user %s: %w", itemID, userID, notifications.ErrNotFound)
	}
	return nil
}

func (s *Store) inboxItem(ctx context.Context, id uuid.UUID) (notifications.InboxItem, error) {
	it, err := scanInboxItem(s.db.QueryRow(ctx, s.q.inboxGet, id))
	if err != nil {
		return it, xerrors.Errorf("get inbox item %s: %w", id, translate(err))
	}
	return it, nil
}

// scanInboxItem reads one item's columns, then extra.
func scanInboxItem(row pgx.Row, extra ...any) (notifications.InboxItem, error) {
	var it notifications.InboxItem
	var actions string
	var readAt, archivedAt *time.Time
	if err := row.Scan(append([]any{&it.ID, &it.UserID, &it.TemplateID, &it.Title, &it.TitleMarkdown, &it.Content, &actions, &it.Targets, &it.CreatedAt, &readAt, &archivedAt}, extra...)...); err != nil {
		return it, xerrors.Errorf("scan: %w", err)
	}
	if err := json.Unmarshal([]byte(actions), &it.Actions); err != nil {
		return it, xerrors.Errorf("decode actions: %w", err)
	}
	it.ReadAt, it.ArchivedAt = deref(readAt), deref(archivedAt)
	return it, nil
}
