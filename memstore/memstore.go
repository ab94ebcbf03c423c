// Package memstore is an in-memory notifications.Store: the embedded default for demos,
// single-process use and fast tests. It implements the same semantics as pgstore (checked by
// the same conformance suite, notificationstest.RunStoreTests) but keeps nothing across
// restarts.
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
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/storecheck"
)

// Store is the in-memory store. Create it with New; it is safe for concurrent use.
type Store struct {
	clock quartz.Clock

	mu        sync.Mutex
	seq       int64
	msgs      map[uuid.UUID]*message
	queues    map[notifications.Method]*methodQueue // unfinished messages, for leasing
	finished  finishedList                          // finished messages in the order they finished (so by UpdatedAt)
	read      *list.List                            // read inbox items in the order they were read
	dedupe    map[string]uuid.UUID
	templates map[uuid.UUID]notifications.Template
	deleted   map[uuid.UUID]bool // soft-deleted templates
	prefs     map[uuid.UUID][]notifications.Preference
	paused    bool
	inbox     map[uuid.UUID]*inboxItem
	inboxOf   map[uuid.UUID][]*inboxItem // each user's items in insertion order
	subs      map[chan struct{}]struct{}
	index     messageIndex
	lastAt    time.Time // the newest CreatedAt: creation times never go backwards
}

type message struct {
	notifications.Message
	seq        int64
	dedupeKey  string
	elem       *list.Element // in its method's pending list while pending
	hidx       int           // index in its method's timed heap while leased or retrying, else -1
	eligibleAt time.Time     // the heap's key: lease expiry or retry time
	// finPrev and finNext link the message into finished while inFinished.
	finPrev, finNext *message
	inFinished       bool
	purged           bool
	// cancel, when set, is the reason a leased message is canceled when its result
	// arrives (CancelMessage, DeleteTemplate).
	cancel   string
	attempts []notifications.Attempt
	// firstAttempt backs attempts until a second attempt: most messages have one, and it
	// then costs no allocation of its own.
	firstAttempt [1]notifications.Attempt
}

type inboxItem struct {
	notifications.InboxItem
	seq      int64
	readElem *list.Element // in read while read
}

var _ notifications.Store = (*Store)(nil)

// Config configures New. The zero value is usable.
type Config struct {
	// Clock is the store's notion of now: enqueue and lease times, lease expiry, retry
	// times and the purge. Default (nil): the real clock. Tests give the Manager's mock.
	Clock quartz.Clock
}

// New returns an empty store.
func New(cfg Config) *Store {
	s := &Store{
		clock:     quartz.NewReal(),
		msgs:      make(map[uuid.UUID]*message),
		queues:    make(map[notifications.Method]*methodQueue),
		read:      list.New(),
		dedupe:    make(map[string]uuid.UUID),
		templates: make(map[uuid.UUID]notifications.Template),
		deleted:   make(map[uuid.UUID]bool),
		prefs:     make(map[uuid.UUID][]notifications.Preference),
		inbox:     make(map[uuid.UUID]*inboxItem),
		inboxOf:   make(map[uuid.UUID][]*inboxItem),
		index:     newMessageIndex(),
		subs:      make(map[chan struct{}]struct{}),
	}
	if cfg.Clock != nil {
		s.clock = cfg.Clock
	}
	return s
}

func (s *Store) now() time.Time { return s.clock.Now(nowTags...) }

// nowTags are the clock tags of now, allocated once.
var nowTags = []string{"memstore"}

// LeaseMessages implements notifications.NotifierStore.
func (s *Store) LeaseMessages(ctx context.Context, p driver.LeaseParams) ([]driver.LeasedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("lease messages: %w", err)
	}
	if err := storecheck.LeaseParams(p); err != nil {
		return nil, xerrors.Errorf("lease messages: %w", err)
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
		if q, ok := s.queues[notifications.Method(method)]; ok {
			if due := q.dueLocked(now, p.Limit); candidates == nil {
				candidates = due // a fresh slice: no copy for the usual single method
			} else {
				candidates = append(candidates, due...)
			}
		}
	}
	slices.SortFunc(candidates, func(a, b *message) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]driver.LeasedMessage, 0, min(len(candidates), p.Limit))
	for _, msg := range candidates {
		if len(out) == p.Limit {
			break
		}
		if msg.Status == notifications.StatusLeased {
			// An expired lease: its attempt ended without a result.
			s.endAttemptLocked(msg, msg.LeasedUntil, notifications.StatusLeased, "lease expired without a result", 0)
		}
		if msg.cancel != "" {
			s.finishLocked(msg, notifications.StatusCanceled, now, msg.cancel)
			continue
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
		s.startAttemptLocked(msg, p.NotifierID, now)
		t := s.templates[msg.TemplateID]
		out = append(out, driver.LeasedMessage{
			ID:            msg.ID,
			Method:        string(msg.Method),
			TemplateID:    msg.TemplateID,
			TemplateName:  t.Name,
			TitleTemplate: t.TitleTemplate,
			BodyTemplate:  t.BodyTemplate,
			Payload:       msg.Payload,
			Disabled:      s.disabledLocked(msg.UserID, t, msg.Method),
			AttemptCount:  msg.AttemptCount,
			CreatedAt:     msg.CreatedAt,
			LeasedAt:      now,
		})
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (s *Store) disabledLocked(user uuid.UUID, t notifications.Template, method notifications.Method) bool {
	return !t.Enabled(s.prefs[user], method)
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
	msg.cancel = ""
	s.dequeueLocked(msg)
	s.finished.pushBack(msg)
}

func (s *Store) fencedLocked(notifierID, id uuid.UUID, attempt int) (*message, bool) {
	msg, ok := s.msgs[id]
	if !ok || msg.Status != notifications.StatusLeased || msg.LeasedBy != notifierID || msg.AttemptCount != attempt {
		return nil, false
	}
	return msg, true
}

// MarkSent implements notifications.NotifierStore.
func (s *Store) MarkSent(ctx context.Context, notifierID uuid.UUID, results []driver.SentResult) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("mark sent: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, r := range results {
		if msg, ok := s.fencedLocked(notifierID, r.ID, r.AttemptCount); ok {
			s.endAttemptLocked(msg, now, notifications.StatusSent, "", r.Duration)
			s.finishLocked(msg, notifications.StatusSent, now, "")
			n++
		}
	}
	return n, nil
}

// MarkFailed implements notifications.NotifierStore.
func (s *Store) MarkFailed(ctx context.Context, notifierID uuid.UUID, results []driver.FailedResult) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, xerrors.Errorf("mark failed: %w", err)
	}
	if err := storecheck.FailedResults(results); err != nil {
		return 0, xerrors.Errorf("mark failed: %w", err)
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
		s.endAttemptLocked(msg, now, notifications.Status(r.Status), r.Reason, r.Duration)
		if notifications.Status(r.Status) != notifications.StatusTemporaryFailure {
			s.finishLocked(msg, notifications.Status(r.Status), now, r.Reason)
			continue
		}
		if msg.cancel != "" {
			s.finishLocked(msg, notifications.StatusCanceled, now, msg.cancel+" (last attempt: "+r.Reason+")")
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
func (s *Store) PurgeMessages(ctx context.Context, p driver.PurgeParams) (int, error) {
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
func (s *Store) purgeBatch(p driver.PurgeParams, batch int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	cutoff := now.Add(-p.MessagesOlderThan)
	for msg := s.finished.head; msg != nil && n < batch; msg = s.finished.head {
		if msg.UpdatedAt.After(cutoff) {
			break
		}
		s.finished.remove(msg)
		delete(s.msgs, msg.ID)
		if s.dedupe[msg.dedupeKey] == msg.ID {
			delete(s.dedupe, msg.dedupeKey)
		}
		s.index.remove(msg)
		n++
	}
	if p.ReadInboxOlderThan > 0 {
		cutoff := now.Add(-p.ReadInboxOlderThan)
		for e := s.read.Front(); e != nil && n < batch; e = s.read.Front() {
			it := e.Value.(*inboxItem)
			if it.ReadAt.After(cutoff) {
				break
			}
			s.deleteInboxLocked(it)
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
func (s *Store) EnqueueMessages(ctx context.Context, msgs []driver.NewMessage, atomic bool) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, xerrors.Errorf("enqueue messages: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var refused []error
	var first error
	batchKeys := make(map[string]struct{}, len(msgs))
	batchIDs := make(map[uuid.UUID]struct{}, len(msgs))
	for i, m := range msgs {
		err := s.checkLocked(m, batchKeys, batchIDs)
		if err == nil {
			continue
		}
		if refused == nil {
			refused = make([]error, len(msgs))
		}
		refused[i] = xerrors.Errorf("enqueue message %s: %w", m.ID, err)
		if first == nil {
			first = refused[i]
		}
	}
	if first != nil && atomic {
		return refused, xerrors.Errorf("enqueue messages: nothing stored: %w", first)
	}
	now := s.now()
	stored := 0
	for i, m := range msgs {
		if refused != nil && refused[i] != nil {
			continue
		}
		s.insertLocked(m, now)
		stored++
	}
	if stored > 0 {
		s.wakeLocked()
	}
	return refused, nil
}

// insertLocked stores a checked message as pending.
func (s *Store) insertLocked(m driver.NewMessage, now time.Time) *message {
	if now.Before(s.lastAt) {
		now = s.lastAt // creation times never go backwards: the index relies on it
	}
	s.lastAt = now
	s.seq++
	msg := &message{
		Message: notifications.Message{
			ID: m.ID, TemplateID: m.TemplateID, UserID: m.UserID, Method: notifications.Method(m.Method),
			Status: notifications.StatusPending, Payload: slices.Clone(m.Payload),
			Targets: slices.Clone(m.Targets), CreatedBy: m.CreatedBy, CreatedAt: now, UpdatedAt: now,
		},
		seq:       s.seq,
		dedupeKey: m.DedupeKey,
		hidx:      -1,
	}
	msg.attempts = msg.firstAttempt[:0]
	msg.elem = s.queueLocked(notifications.Method(m.Method)).pending.PushBack(msg)
	s.msgs[m.ID] = msg
	if m.DedupeKey != "" {
		s.dedupe[m.DedupeKey] = m.ID
	}
	s.index.add(msg)
	return msg
}

func (s *Store) wakeLocked() {
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// checkLocked says why m cannot be stored, or records its ID and key in the batch's sets.
func (s *Store) checkLocked(m driver.NewMessage, batchKeys map[string]struct{}, batchIDs map[uuid.UUID]struct{}) error {
	if m.ID == uuid.Nil || m.UserID == uuid.Nil || m.TemplateID == uuid.Nil {
		return xerrors.Errorf("ID, UserID and TemplateID must be set: %w", notifications.ErrInvalidMessage)
	}
	if m.Method == "" {
		return xerrors.Errorf("Method must be set: %w", notifications.ErrInvalidMessage)
	}
	if !json.Valid(m.Payload) {
		return xerrors.Errorf("payload is not valid JSON: %w", notifications.ErrInvalidMessage)
	}
	if _, dup := batchIDs[m.ID]; dup {
		return xerrors.Errorf("the ID appears twice in one call: %w", notifications.ErrDuplicate)
	}
	if _, ok := s.msgs[m.ID]; ok {
		return xerrors.Errorf("message ID exists: %w", notifications.ErrDuplicate)
	}
	t, ok := s.templates[m.TemplateID]
	if !ok || s.deleted[m.TemplateID] {
		return xerrors.Errorf("template %s: %w", m.TemplateID, notifications.ErrNotFound)
	}
	if s.disabledLocked(m.UserID, t, notifications.Method(m.Method)) {
		return xerrors.Errorf("template %q by %s for user %s: %w", t.Name, m.Method, m.UserID, notifications.ErrCannotEnqueueDisabledNotification)
	}
	if m.DedupeKey != "" {
		_, inBatch := batchKeys[m.DedupeKey]
		if _, ok := s.dedupe[m.DedupeKey]; ok || inBatch {
			return xerrors.Errorf("template %q for user %s by %s: %w", t.Name, m.UserID, m.Method, notifications.ErrDuplicate)
		}
		batchKeys[m.DedupeKey] = struct{}{}
	}
	batchIDs[m.ID] = struct{}{}
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
	if !ok || s.deleted[id] {
		return notifications.Template{}, xerrors.Errorf("template %s: %w", id, notifications.ErrNotFound)
	}
	return cloneTemplate(t), nil
}

func cloneTemplate(t notifications.Template) notifications.Template {
	t.Actions = slices.Clone(t.Actions)
	t.Methods = slices.Clone(t.Methods)
	t.ExcludeMethods = slices.Clone(t.ExcludeMethods)
	return t
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
		s.templates[t.ID] = cloneTemplate(t)
		delete(s.deleted, t.ID) // registering a deleted template restores it
	}
	return nil
}

// Message implements notifications.Store.
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

// CountByStatus implements notifications.Store.
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

// SetPaused implements notifications.Store.
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	if err := ctx.Err(); err != nil {
		return xerrors.Errorf("set paused: %w", err)
	}
	s.mu.Lock()
	s.paused = paused
	s.mu.Unlock()
	return nil
}

// Paused implements notifications.Store.
func (s *Store) Paused(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, xerrors.Errorf("get paused: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused, nil
}

// PendingByMethod counts pending messages by method (notifications.Store).
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

// finishedList is the finished messages in the order they finished, linked through the
// messages themselves so that finishing one allocates nothing.
type finishedList struct {
	head, tail *message
}

// pushBack appends m (moving it to the end if it is in the list already).
func (l *finishedList) pushBack(m *message) {
	l.remove(m)
	m.finPrev, m.finNext = l.tail, nil
	if l.tail != nil {
		l.tail.finNext = m
	} else {
		l.head = m
	}
	l.tail = m
	m.inFinished = true
}

// remove takes m out of the list if it is in it.
func (l *finishedList) remove(m *message) {
	if !m.inFinished {
		return
	}
	if m.finPrev != nil {
		m.finPrev.finNext = m.finNext
	} else {
		l.head = m.finNext
	}
	if m.finNext != nil {
		m.finNext.finPrev = m.finPrev
	} else {
		l.tail = m.finPrev
	}
	m.finPrev, m.finNext, m.inFinished = nil, nil, false
}
