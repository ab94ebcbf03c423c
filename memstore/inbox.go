package memstore

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/storecheck"
)

// Inbox items are kept per user in insertion order, so every inbox call reads only the
// user's own items.

// InsertInboxItem implements notifications.InboxStore.
func (s *Store) InsertInboxItem(ctx context.Context, item notifications.InboxItem) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, xerrors.Errorf("insert inbox item: %w", err)
	}
	if item.ID == uuid.Nil || item.UserID == uuid.Nil {
		return false, xerrors.Errorf("insert inbox item: ID and UserID must be set: %w", notifications.ErrInvalidMessage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inbox[item.ID]; ok {
		return false, nil
	}
	s.seq++
	item.Actions = slices.Clone(item.Actions)
	item.Targets = slices.Clone(item.Targets)
	item.CreatedAt = s.now()
	item.ReadAt = time.Time{}
	item.ArchivedAt = time.Time{}
	it := &inboxItem{InboxItem: item, seq: s.seq}
	s.inbox[item.ID] = it
	s.inboxOf[item.UserID] = append(s.inboxOf[item.UserID], it)
	return true, nil
}

func (it *inboxItem) copy() notifications.InboxItem {
	c := it.InboxItem
	c.Actions = slices.Clone(c.Actions)
	c.Targets = slices.Clone(c.Targets)
	return c
}

// InboxItems implements notifications.Store.
func (s *Store) InboxItems(ctx context.Context, userID uuid.UUID, q notifications.InboxQuery) (notifications.InboxPage, error) {
	if err := ctx.Err(); err != nil {
		return notifications.InboxPage{}, xerrors.Errorf("list inbox: %w", err)
	}
	before, err := decodeCursor("i", q.Cursor)
	if err != nil {
		return notifications.InboxPage{}, xerrors.Errorf("list inbox: %w", err)
	}
	limit := storecheck.PageLimit(q.Limit)
	s.mu.Lock()
	defer s.mu.Unlock()
	items := s.inboxOf[userID]
	end := sort.Search(len(items), func(i int) bool { return items[i].seq >= before })
	var page notifications.InboxPage
	var last int64
	for i := end - 1; i >= 0; i-- {
		it := items[i]
		if (q.UnreadOnly && !it.ReadAt.IsZero()) || q.Archived != !it.ArchivedAt.IsZero() ||
			(q.TemplateID != uuid.Nil && it.TemplateID != q.TemplateID) ||
			(q.Target != uuid.Nil && !slices.Contains(it.Targets, q.Target)) {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = encodeCursor("i", last)
			break
		}
		page.Items = append(page.Items, it.copy())
		last = it.seq
	}
	return page, nil
}

// UnreadInboxCount implements notifications.InboxStore.
func (s *Store) UnreadInboxCount(ctx context.Context, userID uuid.UUID) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("count unread inbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, it := range s.inboxOf[userID] {
		if it.ReadAt.IsZero() && it.ArchivedAt.IsZero() {
			n++
		}
	}
	return n, nil
}

// itemLocked returns the user's item, or ErrNotFound (also for another user's item).
func (s *Store) itemLocked(userID, itemID uuid.UUID) (*inboxItem, error) {
	it, ok := s.inbox[itemID]
	if !ok || it.UserID != userID {
		return nil, xerrors.Errorf("item %s of user %s: %w", itemID, userID, notifications.ErrNotFound)
	}
	return it, nil
}

func (s *Store) markReadLocked(it *inboxItem, now time.Time) bool {
	if !it.ReadAt.IsZero() {
		return false
	}
	it.ReadAt = now
	it.readElem = s.read.PushBack(it)
	return true
}

// MarkInboxRead implements notifications.InboxStore.
func (s *Store) MarkInboxRead(ctx context.Context, userID, itemID uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("mark inbox read: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.itemLocked(userID, itemID)
	if err != nil {
		return xerrors.Errorf("mark inbox read: %w", err)
	}
	s.markReadLocked(it, s.now())
	return nil
}

// MarkAllInboxRead implements notifications.Store.
func (s *Store) MarkAllInboxRead(ctx context.Context, userID uuid.UUID) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("mark all inbox read: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, it := range s.inboxOf[userID] {
		if s.markReadLocked(it, now) {
			n++
		}
	}
	return n, nil
}

// ArchiveInboxItem implements notifications.Store.
func (s *Store) ArchiveInboxItem(ctx context.Context, userID, itemID uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("archive inbox item: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.itemLocked(userID, itemID)
	if err != nil {
		return xerrors.Errorf("archive inbox item: %w", err)
	}
	if it.ArchivedAt.IsZero() {
		it.ArchivedAt = s.now()
	}
	return nil
}

// DeleteInboxItem implements notifications.Store.
func (s *Store) DeleteInboxItem(ctx context.Context, userID, itemID uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("delete inbox item: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.itemLocked(userID, itemID)
	if err != nil {
		return xerrors.Errorf("delete inbox item: %w", err)
	}
	s.deleteInboxLocked(it)
	return nil
}

// deleteInboxLocked removes an item from every structure that holds it.
func (s *Store) deleteInboxLocked(it *inboxItem) {
	delete(s.inbox, it.ID)
	if it.readElem != nil {
		s.read.Remove(it.readElem)
		it.readElem = nil
	}
	items := s.inboxOf[it.UserID]
	if i, ok := slices.BinarySearchFunc(items, it.seq, func(x *inboxItem, seq int64) int {
		return cmp.Compare(x.seq, seq)
	}); ok {
		items = slices.Delete(items, i, i+1)
	}
	if len(items) == 0 {
		delete(s.inboxOf, it.UserID)
	} else {
		s.inboxOf[it.UserID] = items
	}
}
