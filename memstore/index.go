package memstore

import (
	"encoding/base64"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
)

// messageIndex keeps every message in creation order, overall, per user and per
// template, so that a newest-first page reads only what it returns (plus what its other
// filters skip), a user's page only that user's messages and a template's page only that
// template's. Purged messages are flagged and dropped in bulk once they are half of the
// index.
type messageIndex struct {
	all        []*message
	byUser     map[uuid.UUID][]*message
	byTemplate map[uuid.UUID][]*message
	gone       int
	examined   int64 // messages page has looked at, for the tests (export_test.go)
}

func newMessageIndex() messageIndex {
	return messageIndex{byUser: make(map[uuid.UUID][]*message), byTemplate: make(map[uuid.UUID][]*message)}
}

func (x *messageIndex) add(m *message) {
	x.all = append(x.all, m)
	x.byUser[m.UserID] = append(x.byUser[m.UserID], m)
	x.byTemplate[m.TemplateID] = append(x.byTemplate[m.TemplateID], m)
}

func (x *messageIndex) remove(m *message) {
	m.purged = true
	x.gone++
	if x.gone < 1024 || x.gone < len(x.all)/2 {
		return
	}
	keep := func(ms []*message) []*message {
		out := ms[:0]
		for _, m := range ms {
			if !m.purged {
				out = append(out, m)
			}
		}
		clear(ms[len(out):])
		return out
	}
	x.all = keep(x.all)
	for _, by := range []map[uuid.UUID][]*message{x.byUser, x.byTemplate} {
		for k, ms := range by {
			if ms = keep(ms); len(ms) == 0 {
				delete(by, k)
			} else {
				by[k] = ms
			}
		}
	}
	x.gone = 0
}

// page returns up to limit messages matching q, newest first, before the cursor, and
// whether more follow.
func (x *messageIndex) page(q notifications.MessageQuery, before int64, limit int) ([]*message, bool) {
	list := x.all
	switch {
	case q.UserID != uuid.Nil:
		list = x.byUser[q.UserID]
	case q.TemplateID != uuid.Nil:
		list = x.byTemplate[q.TemplateID]
	}
	// Creation times and seqs both ascend along the list.
	end := sort.Search(len(list), func(i int) bool { return list[i].seq >= before })
	if !q.CreatedBefore.IsZero() {
		end = min(end, sort.Search(len(list), func(i int) bool { return !list[i].CreatedAt.Before(q.CreatedBefore) }))
	}
	var out []*message
	for i := end - 1; i >= 0; i-- {
		m := list[i]
		x.examined++
		if !q.CreatedAfter.IsZero() && m.CreatedAt.Before(q.CreatedAfter) {
			break
		}
		if m.purged || !matches(m, q) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, m)
	}
	return out, false
}

func matches(m *message, q notifications.MessageQuery) bool {
	return (len(q.Statuses) == 0 || containsStatus(q.Statuses, m.Status)) &&
		(q.UserID == uuid.Nil || m.UserID == q.UserID) &&
		(q.TemplateID == uuid.Nil || m.TemplateID == q.TemplateID) &&
		(q.Method == "" || m.Method == q.Method)
}

func containsStatus(statuses []notifications.Status, s notifications.Status) bool {
	for _, x := range statuses {
		if x == s {
			return true
		}
	}
	return false
}

// Cursors are opaque to callers: a kind and the seq of the last row returned.

func encodeCursor(kind string, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(seq, 10)))
}

// decodeCursor returns the seq a page starts before; "" starts at the newest row.
func decodeCursor(kind, cursor string) (int64, error) {
	if cursor == "" {
		return 1<<63 - 1, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(raw), kind+":"); ok {
			if seq, err := strconv.ParseInt(rest, 10, 64); err == nil && seq > 0 {
				return seq, nil
			}
		}
	}
	return 0, xerrors.Errorf("cursor %q: %w", cursor, notifications.ErrInvalidCursor)
}
