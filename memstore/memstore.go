// Package memstore is an in-memory notifications.Store: the embedded default for demos,
// single-process use and fast tests. It implements the same semantics as pgstore (checked by
// the same conformance suite) but keeps nothing across restarts.
package memstore

import (
	"cmp"
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/storecheck"
)

// Store is the in-memory store. Create it with New; it is safe for concurrent use.
type Store struct {
	clock quartz.Clock

	mu        sync.Mutex
	seq       int64
	msgs      map[uuid.UUID]*message
	queues    map[notifications.Method]*methodQueue // unfinished messages, for leasing
	finished  *list.List                            // finished messages in the order they finished (so by UpdatedAt)
	read      *list.List                            // read inbox items in the order they were read
	dedupe    map[string]uuid.UUID
	templates map[uuid.UUID]notifications.Template
	prefs     map[prefKey]bool
	paused    bool
	inbox     map[uuid.UUID]*inboxItem
	subs      map[chan struct{}]struct{}
}

type message struct {
	notifications.Message
	seq        int64
	dedupeKey  string
	elem       *list.Element // in its method's pending list while pending
	hidx       int           // index in its method's timed heap while leased or retrying, else -1
	eligibleAt time.Time     // the heap's key: lease expiry or retry time
}

type inboxItem struct {
	notifications.InboxItem
	seq int64
}

type prefKey struct{ user, template uuid.UUID }

var _ notifications.Store = (*Store)(nil)

// Option configures New.
type Option func(*Store)

// WithClock sets the clock. Default: the real clock.
func WithClock(c quartz.Clock) Option {
	return func(s *Store) { s.clock = c }
}

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		clock:     quartz.NewReal(),
		msgs:      make(map[uuid.UUID]*message),
		queues:    make(map[notifications.Method]*methodQueue),
		finished:  list.New(),
		read:      list.New(),
		dedupe:    make(map[string]uuid.UUID),
		templates: make(map[uuid.UUID]notifications.Template),
		prefs:     make(map[prefKey]bool),
		inbox:     make(map[uuid.UUID]*inboxItem),
		subs:      make(map[chan struct{}]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Store) now() time.Time { return s.clock.Now("memstore") }

// LeaseMessages implements notifications.NotifierStore.
func (s *Store) LeaseMessages(ctx context.Context, p notifications.LeaseParams) ([]notifications.LeasedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("lease messages: %w", err)
	}
	if p.Limit <= 0 || p.MaxAttempts <= 0 || p.LeasePeriod <= 0 || p.NotifierID == uuid.Nil {
		return nil, xerrors.Errorf("lease messages: Limit, MaxAttempts, LeasePeriod and NotifierID must be set (got %+v): %w", p, notifications.ErrInvalidMessage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil, nil
	}
	now := s.now()
	// Candidates: each method's pending head and earliest due timed messages; the oldest
	// of them are leased. The work is bounded by Limit per method, not by the backlog.
	var candidates []*message
	for _, method := range p.Methods {
		if q, ok := s.queues[method]; ok {
			candidates = append(candidates, q.dueLocked(now, p.Limit)...)
		}
	}
	slices.SortFunc(candidates, func(a, b *message) int { return cmp.Compare(a.seq, b.seq) })
	var out []notifications.LeasedMessage
	for _, msg := range candidates {
		if len(out) == p.Limit {
			break
		}
		if msg.AttemptCount >= p.MaxAttempts {
			s.finishLocked(msg, notifications.StatusPermanentFailure, now,
				fmt.Sprintf("gave up after %d attempts whose leases expired without a result (the delivering process probably stopped mid-delivery)", msg.AttemptCount))
			continue
		}
		s.dequeueLocked(msg)
		msg.Status = notifications.StatusLeased
		msg.LeasedBy = p.NotifierID
		msg.LeasedUntil = now.Add(p.LeasePeriod)
		msg.NextRetryAfter = time.Time{}
		msg.AttemptCount++
		msg.UpdatedAt = now
		s.scheduleLocked(msg, msg.LeasedUntil)
		t := s.templates[msg.TemplateID]
		out = append(out, notifications.LeasedMessage{
			ID:            msg.ID,
			Method:        msg.Method,
			TemplateID:    msg.TemplateID,
			TemplateName:  t.Name,
			TitleTemplate: t.TitleTemplate,
			BodyTemplate:  t.BodyTemplate,
			Payload:       msg.Payload,
			Disabled:      s.disabledLocked(msg.UserID, t),
			AttemptCount:  msg.AttemptCount,
			CreatedAt:     msg.CreatedAt,
			LeasedAt:      now,
		})
	}
	return out, nil
}

func (s *Store) disabledLocked(user uuid.UUID, t notifications.Template) bool {
	if disabled, ok := s.prefs[prefKey{user, t.ID}]; ok {
		return disabled
	}
	return !t.EnabledByDefault
}

// finishLocked moves msg to a terminal status.
func (s *Store) finishLocked(msg *message, status notifications.Status, now time.Time, reason string) {
	msg.Status = status
	msg.StatusReason = reason
	msg.UpdatedAt = now
	msg.LeasedBy = uuid.Nil
	msg.LeasedUntil = time.Time{}
	msg.NextRetryAfter = time.Time{}
	if status == notifications.StatusSent {
		msg.SentAt = now
	}
	s.dequeueLocked(msg)
	s.finished.PushBack(msg)
}

func (s *Store) fencedLocked(notifierID, id uuid.UUID, attempt int) (*message, bool) {
	msg, ok := s.msgs[id]
	if !ok || msg.Status != notifications.StatusLeased || msg.LeasedBy != notifierID || msg.AttemptCount != attempt {
		return nil, false
	}
	return msg, true
}

// MarkSent implements notifications.NotifierStore.
func (s *Store) MarkSent(ctx context.Context, notifierID uuid.UUID, results []notifications.SentResult) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("mark sent: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, r := range results {
		if msg, ok := s.fencedLocked(notifierID, r.ID, r.AttemptCount); ok {
			s.finishLocked(msg, notifications.StatusSent, now, "")
			n++
		}
	}
	return n, nil
}

// MarkFailed implements notifications.NotifierStore.
func (s *Store) MarkFailed(ctx context.Context, notifierID uuid.UUID, results []notifications.FailedResult) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("mark failed: %w", err)
	}
	for _, r := range results {
		switch r.Status {
		case notifications.StatusTemporaryFailure, notifications.StatusPermanentFailure, notifications.StatusInhibited:
		default:
			return 0, xerrors.Errorf("mark failed: message %s: status %q is not a failure status: %w", r.ID, r.Status, notifications.ErrInvalidMessage)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, r := range results {
		msg, ok := s.fencedLocked(notifierID, r.ID, r.AttemptCount)
		if !ok {
			continue
		}
		n++
		if r.Status != notifications.StatusTemporaryFailure {
			s.finishLocked(msg, r.Status, now, r.Reason)
			continue
		}
		s.dequeueLocked(msg)
		msg.Status = notifications.StatusTemporaryFailure
		msg.StatusReason = r.Reason
		msg.UpdatedAt = now
		msg.LeasedBy = uuid.Nil
		msg.LeasedUntil = time.Time{}
		msg.NextRetryAfter = now.Add(r.RetryDelay)
		s.scheduleLocked(msg, msg.NextRetryAfter)
	}
	return n, nil
}

// PurgeMessages implements notifications.NotifierStore. It takes the store's lock once per
// batch of at most BatchSize rows, and reads only the rows it deletes: finished messages
// and read inbox items are kept in the order they finished or were read.
func (s *Store) PurgeMessages(ctx context.Context, p notifications.PurgeParams) (int, error) {
	batch := p.BatchSize
	if batch <= 0 {
		batch = defaultPurgeBatch
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, xerrors.Errorf("purge messages: %w", err)
		}
		n, more := s.purgeBatch(p, batch)
		total += n
		if !more {
			return total, nil
		}
	}
}

// defaultPurgeBatch is the purge batch size when PurgeParams.BatchSize is 0.
const defaultPurgeBatch = 1000

// purgeBatch deletes at most batch rows and reports whether more may be due.
func (s *Store) purgeBatch(p notifications.PurgeParams, batch int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	cutoff := now.Add(-p.MessagesOlderThan)
	for e := s.finished.Front(); e != nil && n < batch; e = s.finished.Front() {
		msg := e.Value.(*message)
		if msg.UpdatedAt.After(cutoff) {
			break
		}
		s.finished.Remove(e)
		if s.msgs[msg.ID] != msg || !msg.Status.Terminal() {
			continue // stale entry
		}
		delete(s.msgs, msg.ID)
		if s.dedupe[msg.dedupeKey] == msg.ID {
			delete(s.dedupe, msg.dedupeKey)
		}
		n++
	}
	if p.ReadInboxOlderThan > 0 {
		cutoff := now.Add(-p.ReadInboxOlderThan)
		for e := s.read.Front(); e != nil && n < batch; e = s.read.Front() {
			it := e.Value.(*inboxItem)
			if it.ReadAt.After(cutoff) {
				break
			}
			s.read.Remove(e)
			delete(s.inbox, it.ID)
			n++
		}
	}
	return n, n == batch
}

// Listen implements notifications.NotifierStore: wake is called after every enqueue.
func (s *Store) Listen(ctx context.Context, wake func()) error {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	wake() // listening
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			wake()
		}
	}
}

// EnqueueMessages implements notifications.EnqueueStore.
func (s *Store) EnqueueMessages(ctx context.Context, msgs []notifications.NewMessage) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("enqueue messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	batchKeys := make(map[string]struct{}, len(msgs))
	batchIDs := make(map[uuid.UUID]struct{}, len(msgs))
	for _, m := range msgs {
		if _, dup := batchIDs[m.ID]; dup {
			return xerrors.Errorf("enqueue message %s: the ID appears twice in one call: %w", m.ID, notifications.ErrDuplicate)
		}
		batchIDs[m.ID] = struct{}{}
		if err := s.checkLocked(m, batchKeys); err != nil {
			return xerrors.Errorf("enqueue message %s: %w", m.ID, err)
		}
	}
	now := s.now()
	for _, m := range msgs {
		s.seq++
		msg := &message{
			Message: notifications.Message{
				ID: m.ID, TemplateID: m.TemplateID, UserID: m.UserID, Method: m.Method,
				Status: notifications.StatusPending, Payload: slices.Clone(m.Payload),
				Targets: slices.Clone(m.Targets), CreatedBy: m.CreatedBy, CreatedAt: now, UpdatedAt: now,
			},
			seq:       s.seq,
			dedupeKey: m.DedupeKey,
			hidx:      -1,
		}
		msg.elem = s.queueLocked(m.Method).pending.PushBack(msg)
		s.msgs[m.ID] = msg
		if m.DedupeKey != "" {
			s.dedupe[m.DedupeKey] = m.ID
		}
	}
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *Store) checkLocked(m notifications.NewMessage, batchKeys map[string]struct{}) error {
	if m.ID == uuid.Nil || m.UserID == uuid.Nil || m.TemplateID == uuid.Nil {
		return xerrors.Errorf("ID, UserID and TemplateID must be set: %w", notifications.ErrInvalidMessage)
	}
	if m.Method == "" {
		return xerrors.Errorf("Method must be set: %w", notifications.ErrInvalidMessage)
	}
	if !json.Valid(m.Payload) {
		return xerrors.Errorf("payload is not valid JSON: %w", notifications.ErrInvalidMessage)
	}
	if _, ok := s.msgs[m.ID]; ok {
		return xerrors.Errorf("message ID exists: %w", notifications.ErrDuplicate)
	}
	t, ok := s.templates[m.TemplateID]
	if !ok {
		return xerrors.Errorf("template %s: %w", m.TemplateID, notifications.ErrNotFound)
	}
	if s.disabledLocked(m.UserID, t) {
		return xerrors.Errorf("template %q for user %s: %w", t.Name, m.UserID, notifications.ErrCannotEnqueueDisabledNotification)
	}
	if m.DedupeKey != "" {
		_, inBatch := batchKeys[m.DedupeKey]
		if _, ok := s.dedupe[m.DedupeKey]; ok || inBatch {
			return xerrors.Errorf("template %q for user %s by %s: %w", t.Name, m.UserID, m.Method, notifications.ErrDuplicate)
		}
		batchKeys[m.DedupeKey] = struct{}{}
	}
	return nil
}

// Template implements notifications.EnqueueStore.
func (s *Store) Template(ctx context.Context, id uuid.UUID) (notifications.Template, error) {
	if err := ctx.Err(); err != nil {
		return notifications.Template{}, xerrors.Errorf("get template: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[id]
	if !ok {
		return notifications.Template{}, xerrors.Errorf("template %s: %w", id, notifications.ErrNotFound)
	}
	t.Actions = slices.Clone(t.Actions)
	return t, nil
}

// UpsertTemplates implements notifications.TemplateStore.
func (s *Store) UpsertTemplates(ctx context.Context, templates ...notifications.Template) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("upsert templates: %w", err)
	}
	if err := storecheck.TemplateBatch(templates); err != nil {
		return xerrors.Errorf("upsert templates: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range templates {
		for id, other := range s.templates {
			if other.Name == t.Name && id != t.ID {
				return xerrors.Errorf("upsert templates: name %q is taken by template %s: %w", t.Name, id, notifications.ErrDuplicate)
			}
		}
	}
	for _, t := range templates {
		t.Actions = slices.Clone(t.Actions)
		s.templates[t.ID] = t
	}
	return nil
}

// Message implements notifications.AdminStore.
func (s *Store) Message(ctx context.Context, id uuid.UUID) (notifications.Message, error) {
	if err := ctx.Err(); err != nil {
		return notifications.Message{}, xerrors.Errorf("get message: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.msgs[id]
	if !ok {
		return notifications.Message{}, xerrors.Errorf("message %s: %w", id, notifications.ErrNotFound)
	}
	return msg.copy(), nil
}

func (m *message) copy() notifications.Message {
	c := m.Message
	c.Payload = slices.Clone(c.Payload)
	c.Targets = slices.Clone(c.Targets)
	return c
}

// Messages implements notifications.AdminStore.
func (s *Store) Messages(ctx context.Context, f notifications.MessageFilter) ([]notifications.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("list messages: %w", err)
	}
	s.mu.Lock()
	matched := make([]*message, 0)
	for _, msg := range s.msgs {
		if (f.Status == "" || msg.Status == f.Status) && (f.UserID == uuid.Nil || msg.UserID == f.UserID) &&
			(f.Method == "" || msg.Method == f.Method) {
			matched = append(matched, msg)
		}
	}
	slices.SortFunc(matched, func(a, b *message) int { return cmp.Compare(a.seq, b.seq) })
	if f.Limit > 0 && len(matched) > f.Limit {
		matched = matched[:f.Limit]
	}
	out := make([]notifications.Message, len(matched))
	for i, msg := range matched {
		out[i] = msg.copy()
	}
	s.mu.Unlock()
	return out, nil
}

// CountByStatus implements notifications.AdminStore.
func (s *Store) CountByStatus(ctx context.Context) (map[notifications.Status]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("count messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[notifications.Status]int)
	for _, msg := range s.msgs {
		out[msg.Status]++
	}
	return out, nil
}

// SetPreference implements notifications.AdminStore.
func (s *Store) SetPreference(ctx context.Context, userID, templateID uuid.UUID, disabled bool) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("set preference: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[templateID]; !ok {
		return xerrors.Errorf("set preference: template %s: %w", templateID, notifications.ErrNotFound)
	}
	s.prefs[prefKey{userID, templateID}] = disabled
	return nil
}

// SetPaused implements notifications.AdminStore.
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("set paused: %w", err)
	}
	s.mu.Lock()
	s.paused = paused
	s.mu.Unlock()
	return nil
}

// Paused implements notifications.AdminStore.
func (s *Store) Paused(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, xerrors.Errorf("get paused: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused, nil
}

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
	s.inbox[item.ID] = &inboxItem{InboxItem: item, seq: s.seq}
	return true, nil
}

// InboxItems implements notifications.InboxStore.
func (s *Store) InboxItems(ctx context.Context, userID uuid.UUID, f notifications.InboxFilter) ([]notifications.InboxItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("list inbox: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []*inboxItem
	for _, it := range s.inbox {
		if it.UserID == userID && (!f.UnreadOnly || it.ReadAt.IsZero()) {
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b *inboxItem) int { return cmp.Compare(b.seq, a.seq) })
	if len(items) > limit {
		items = items[:limit]
	}
	out := make([]notifications.InboxItem, len(items))
	for i, it := range items {
		out[i] = it.InboxItem
		out[i].Actions = slices.Clone(it.Actions)
		out[i].Targets = slices.Clone(it.Targets)
	}
	return out, nil
}

// UnreadInboxCount implements notifications.InboxStore.
func (s *Store) UnreadInboxCount(ctx context.Context, userID uuid.UUID) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("count unread inbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, it := range s.inbox {
		if it.UserID == userID && it.ReadAt.IsZero() {
			n++
		}
	}
	return n, nil
}

// MarkInboxRead implements notifications.InboxStore.
func (s *Store) MarkInboxRead(ctx context.Context, userID, itemID uuid.UUID) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("mark inbox read: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.inbox[itemID]
	if !ok || it.UserID != userID {
		return xerrors.Errorf("mark inbox read: item %s of user %s: %w", itemID, userID, notifications.ErrNotFound)
	}
	if it.ReadAt.IsZero() {
		it.ReadAt = s.now()
		s.read.PushBack(it)
	}
	return nil
}

// PendingByMethod counts pending messages by method (notifications.PendingCounter).
func (s *Store) PendingByMethod(ctx context.Context) (map[notifications.Method]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("count pending messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[notifications.Method]int)
	for method, q := range s.queues {
		if n := q.pending.Len(); n > 0 {
			out[method] = n
		}
	}
	return out, nil
}
