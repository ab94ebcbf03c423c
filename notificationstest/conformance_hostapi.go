package notificationstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
)

// The cases of RunStoreTests for the methods hosts call: preferences per method, template
// listing and deletion, the inbox view, message search, operator actions and the attempt
// history.

func (h *suite) setPref(user uuid.UUID, p notifications.Preference) {
	h.t.Helper()
	if err := h.store.SetPreference(h.ctx, user, p); err != nil {
		h.t.Fatalf("set preference %+v: %v", p, err)
	}
}

func (h *suite) enqueueMethod(tmpl, user uuid.UUID, method notifications.Method) error {
	h.t.Helper()
	msg := driver.NewMessage{ID: uuid.New(), TemplateID: tmpl, UserID: user, Method: string(method), Payload: []byte(`{}`), DedupeKey: uuid.NewString()}
	refused, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{msg}, false)
	if err != nil {
		h.t.Fatalf("enqueue: %v", err)
	}
	if refused != nil {
		return refused[0]
	}
	return nil
}

func (h *suite) attempts(id uuid.UUID) []notifications.Attempt {
	h.t.Helper()
	as, err := h.store.MessageAttempts(h.ctx, id)
	if err != nil {
		h.t.Fatalf("attempts of %s: %v", id, err)
	}
	return as
}

// testPreferencesPerMethod: a method's row overrides the all-methods row, at enqueue and
// at lease; Preferences returns the rows; a row is replaced, not added.
func testPreferencesPerMethod(t *testing.T, h *suite) {
	user, other := uuid.New(), uuid.New()
	h.setPref(user, notifications.Preference{TemplateID: h.tmpl.ID, Disabled: true})
	h.setPref(user, notifications.Preference{TemplateID: h.tmpl.ID, Method: notifications.MethodInbox, Disabled: false})
	if err := h.enqueueMethod(h.tmpl.ID, user, notifications.MethodWebhook); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("webhook with every method disabled: %v, want ErrCannotEnqueueDisabledNotification", err)
	}
	if err := h.enqueueMethod(h.tmpl.ID, user, notifications.MethodInbox); err != nil {
		t.Fatalf("inbox enabled by its own row: %v", err)
	}
	if err := h.enqueueMethod(h.tmpl.ID, other, notifications.MethodWebhook); err != nil {
		t.Fatalf("another user: %v", err)
	}
	prefs, err := h.store.Preferences(h.ctx, user)
	if err != nil || len(prefs) != 2 {
		t.Fatalf("preferences: %+v, %v; want the two rows", prefs, err)
	}
	// Replace the inbox row; the webhook message of the other user is inhibited at lease
	// once they disable the webhook only.
	h.setPref(user, notifications.Preference{TemplateID: h.tmpl.ID, Method: notifications.MethodInbox, Disabled: true})
	if prefs, _ := h.store.Preferences(h.ctx, user); len(prefs) != 2 || !slices.ContainsFunc(prefs, func(p notifications.Preference) bool {
		return p.Method == notifications.MethodInbox && p.Disabled
	}) {
		t.Fatalf("preferences after replacing a row: %+v", prefs)
	}
	h.setPref(other, notifications.Preference{TemplateID: h.tmpl.ID, Method: notifications.MethodWebhook, Disabled: true})
	h.setPref(other, notifications.Preference{TemplateID: h.tmpl.ID, Method: notifications.MethodInbox, Disabled: false})
	got := h.lease(uuid.New(), 10)
	if len(got) != 1 || !got[0].Disabled {
		t.Fatalf("lease after disabling the webhook: %+v, want the message with Disabled", got)
	}
	if err := h.store.SetPreference(h.ctx, user, notifications.Preference{TemplateID: uuid.New()}); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("preference for an unknown template: %v, want ErrNotFound", err)
	}
	if prefs, err := h.store.Preferences(h.ctx, uuid.New()); err != nil || len(prefs) != 0 {
		t.Fatalf("preferences of a user without any: %+v, %v", prefs, err)
	}
}

func testTemplatesListed(t *testing.T, h *suite) {
	b := notifications.Template{ID: uuid.New(), Name: "b " + uuid.NewString(), TitleTemplate: "x",
		Methods: []notifications.Method{notifications.MethodSMTP, notifications.MethodInbox}, EnabledByDefault: true}
	a := notifications.Template{ID: uuid.New(), Name: "a " + uuid.NewString(), TitleTemplate: "y",
		ExcludeMethods: []notifications.Method{notifications.MethodInbox}}
	if err := h.store.UpsertTemplates(h.ctx, b, a); err != nil {
		t.Fatal(err)
	}
	list, err := h.store.Templates(h.ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("templates: %d, %v; want 3", len(list), err)
	}
	if list[0].ID != a.ID || list[1].ID != b.ID || list[2].ID != h.tmpl.ID {
		t.Fatalf("templates not sorted by name: %s, %s, %s", list[0].Name, list[1].Name, list[2].Name)
	}
	if !slices.Equal(list[1].Methods, b.Methods) || !slices.Equal(list[0].ExcludeMethods, a.ExcludeMethods) || list[0].EnabledByDefault {
		t.Fatalf("methods not kept: %+v %+v", list[0], list[1])
	}
}

// testDeleteTemplate: deleting a template cancels its unfinished messages (a leased one
// when its result arrives, unless it succeeded), keeps the finished ones, hides the
// template from lists, lookups, enqueues and preferences, and registering it restores it.
func testDeleteTemplate(t *testing.T, h *suite) {
	keep := h.template(true)
	ids := h.enqueue(5) // 0 sent, 1 retrying, 2 leased then failing, 3 leased then sent, 4 pending
	kept := h.newMessage(keep.ID, uuid.New())
	a := uuid.New()
	leased := h.lease(a, 4)
	h.markSent(a, leased[0])
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Hour, leased[1])
	user := uuid.New()
	h.setPref(user, notifications.Preference{TemplateID: h.tmpl.ID, Disabled: true})

	if err := h.store.DeleteTemplate(h.ctx, h.tmpl.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	h.wantStatus(ids[0], notifications.StatusSent)
	for _, id := range []uuid.UUID{ids[1], ids[4]} {
		if m := h.wantStatus(id, notifications.StatusCanceled); m.StatusReason != "template deleted" {
			t.Fatalf("canceled with reason %q, want \"template deleted\"", m.StatusReason)
		}
	}
	h.wantStatus(ids[2], notifications.StatusLeased)
	h.wantStatus(ids[3], notifications.StatusLeased)
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Minute, leased[2])
	h.markSent(a, leased[3])
	h.wantStatus(ids[2], notifications.StatusCanceled)
	h.wantStatus(ids[3], notifications.StatusSent) // it was delivered: the history says so
	h.wantStatus(kept, notifications.StatusPending)

	if _, err := h.store.Template(h.ctx, h.tmpl.ID); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("deleted template: %v, want ErrNotFound", err)
	}
	if list, _ := h.store.Templates(h.ctx); len(list) != 1 || list[0].ID != keep.ID {
		t.Fatalf("templates after delete: %+v", list)
	}
	if err := h.enqueueMethod(h.tmpl.ID, uuid.New(), notifications.MethodWebhook); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("enqueue of a deleted template: %v, want ErrNotFound", err)
	}
	if prefs, _ := h.store.Preferences(h.ctx, user); len(prefs) != 0 {
		t.Fatalf("preferences of a deleted template listed: %+v", prefs)
	}
	if err := h.store.DeleteTemplate(h.ctx, h.tmpl.ID); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if err := h.store.DeleteTemplate(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("delete of an unknown template: %v, want ErrNotFound", err)
	}
	if got := h.lease(uuid.New(), 10); len(got) != 1 || got[0].ID != kept {
		t.Fatalf("lease after delete: %v, want only the other template's message", leasedIDs(got))
	}
	if err := h.store.UpsertTemplates(h.ctx, h.tmpl); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Template(h.ctx, h.tmpl.ID); err != nil {
		t.Fatalf("registered again: %v", err)
	}
}

func (h *suite) insertItem(user uuid.UUID, tmpl uuid.UUID, targets ...uuid.UUID) uuid.UUID {
	h.t.Helper()
	item := notifications.InboxItem{ID: uuid.New(), UserID: user, TemplateID: tmpl, Title: "T", Targets: targets}
	if _, err := h.store.InsertInboxItem(h.ctx, item); err != nil {
		h.t.Fatalf("insert inbox item: %v", err)
	}
	h.clk.Advance(time.Millisecond).MustWait(h.ctx)
	return item.ID
}

func (h *suite) page(user uuid.UUID, q notifications.InboxQuery) notifications.InboxPage {
	h.t.Helper()
	p, err := h.store.InboxItems(h.ctx, user, q)
	if err != nil {
		h.t.Fatalf("inbox items %+v: %v", q, err)
	}
	return p
}

func itemIDs(items []notifications.InboxItem) []uuid.UUID {
	return idsOf(items, func(it notifications.InboxItem) uuid.UUID { return it.ID })
}

// testInboxPaging: newest first, pages joined give every item once, items inserted while
// paging do not shift later pages, the last page has no cursor, and a cursor the store did
// not make is refused.
func testInboxPaging(t *testing.T, h *suite) {
	user := uuid.New()
	var want []uuid.UUID
	for range 5 {
		want = append([]uuid.UUID{h.insertItem(user, h.tmpl.ID)}, want...)
	}
	h.insertItem(uuid.New(), h.tmpl.ID) // another user's
	p1 := h.page(user, notifications.InboxQuery{Limit: 2})
	if !slices.Equal(itemIDs(p1.Items), want[:2]) || p1.NextCursor == "" {
		t.Fatalf("page 1: %v (cursor %q), want %v", itemIDs(p1.Items), p1.NextCursor, want[:2])
	}
	newer := h.insertItem(user, h.tmpl.ID) // arrives while the user pages
	p2 := h.page(user, notifications.InboxQuery{Limit: 2, Cursor: p1.NextCursor})
	if !slices.Equal(itemIDs(p2.Items), want[2:4]) || p2.NextCursor == "" {
		t.Fatalf("page 2: %v, want %v", itemIDs(p2.Items), want[2:4])
	}
	p3 := h.page(user, notifications.InboxQuery{Limit: 2, Cursor: p2.NextCursor})
	if !slices.Equal(itemIDs(p3.Items), want[4:]) || p3.NextCursor != "" {
		t.Fatalf("page 3: %v (cursor %q), want %v and no cursor", itemIDs(p3.Items), p3.NextCursor, want[4:])
	}
	if first := h.page(user, notifications.InboxQuery{}); len(first.Items) != 6 || first.Items[0].ID != newer || first.NextCursor != "" {
		t.Fatalf("a fresh first page: %v", itemIDs(first.Items))
	}
	if _, err := h.store.InboxItems(h.ctx, user, notifications.InboxQuery{Cursor: "not-a-cursor"}); !errors.Is(err, notifications.ErrInvalidCursor) {
		t.Fatalf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

func testInboxFilters(t *testing.T, h *suite) {
	user, target := uuid.New(), uuid.New()
	other := h.template(true)
	a := h.insertItem(user, h.tmpl.ID, target)
	b := h.insertItem(user, other.ID)
	c := h.insertItem(user, h.tmpl.ID)
	if err := h.store.MarkInboxRead(h.ctx, user, c); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		q    notifications.InboxQuery
		want []uuid.UUID
	}{
		"template":               {notifications.InboxQuery{TemplateID: h.tmpl.ID}, []uuid.UUID{c, a}},
		"target":                 {notifications.InboxQuery{Target: target}, []uuid.UUID{a}},
		"unread":                 {notifications.InboxQuery{UnreadOnly: true}, []uuid.UUID{b, a}},
		"unread of the template": {notifications.InboxQuery{UnreadOnly: true, TemplateID: h.tmpl.ID}, []uuid.UUID{a}},
	} {
		if got := itemIDs(h.page(user, tc.q).Items); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	// A filtered page continues where it stopped.
	p := h.page(user, notifications.InboxQuery{TemplateID: h.tmpl.ID, Limit: 1})
	p = h.page(user, notifications.InboxQuery{TemplateID: h.tmpl.ID, Limit: 1, Cursor: p.NextCursor})
	if !slices.Equal(itemIDs(p.Items), []uuid.UUID{a}) || p.NextCursor != "" {
		t.Fatalf("second filtered page: %v (cursor %q), want [%s]", itemIDs(p.Items), p.NextCursor, a)
	}
}

// testInboxStates: mark all read, archive and delete; another user's item is ErrNotFound.
func testInboxStates(t *testing.T, h *suite) {
	user, other := uuid.New(), uuid.New()
	a, b, c := h.insertItem(user, h.tmpl.ID), h.insertItem(user, h.tmpl.ID), h.insertItem(user, h.tmpl.ID)
	theirs := h.insertItem(other, h.tmpl.ID)
	if err := h.store.ArchiveInboxItem(h.ctx, user, a); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if got := itemIDs(h.page(user, notifications.InboxQuery{}).Items); !slices.Equal(got, []uuid.UUID{c, b}) {
		t.Fatalf("listing after archive: %v", got)
	}
	archived := h.page(user, notifications.InboxQuery{Archived: true}).Items
	if len(archived) != 1 || archived[0].ID != a || archived[0].ArchivedAt.IsZero() {
		t.Fatalf("archived listing: %+v", archived)
	}
	if n, _ := h.store.UnreadInboxCount(h.ctx, user); n != 2 {
		t.Fatalf("unread after archiving one of three: %d, want 2", n)
	}
	n, err := h.store.MarkAllInboxRead(h.ctx, user)
	if err != nil || n != 3 {
		t.Fatalf("mark all read: %d, %v; want 3", n, err)
	}
	if n, _ := h.store.MarkAllInboxRead(h.ctx, user); n != 0 {
		t.Fatalf("mark all read again: %d, want 0", n)
	}
	if n, _ := h.store.UnreadInboxCount(h.ctx, other); n != 1 {
		t.Fatalf("the other user's unread: %d, want 1", n)
	}
	if err := h.store.DeleteInboxItem(h.ctx, user, b); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got := itemIDs(h.page(user, notifications.InboxQuery{}).Items); !slices.Equal(got, []uuid.UUID{c}) {
		t.Fatalf("listing after delete: %v", got)
	}
	for name, err := range map[string]error{
		"mark read":   h.store.MarkInboxRead(h.ctx, user, theirs),
		"archive":     h.store.ArchiveInboxItem(h.ctx, user, theirs),
		"delete":      h.store.DeleteInboxItem(h.ctx, user, theirs),
		"deleted":     h.store.MarkInboxRead(h.ctx, user, b),
		"delete gone": h.store.DeleteInboxItem(h.ctx, user, b),
	} {
		if !errors.Is(err, notifications.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if got := itemIDs(h.page(other, notifications.InboxQuery{}).Items); !slices.Equal(got, []uuid.UUID{theirs}) {
		t.Fatalf("the other user's item was touched: %v", got)
	}
}

func msgIDs(ms []notifications.Message) []uuid.UUID {
	return idsOf(ms, func(m notifications.Message) uuid.UUID { return m.ID })
}

func (h *suite) query(q notifications.MessageQuery) notifications.MessagePage {
	h.t.Helper()
	p, err := h.store.Messages(h.ctx, q)
	if err != nil {
		h.t.Fatalf("messages %+v: %v", q, err)
	}
	return p
}

func testMessageQuery(t *testing.T, h *suite) {
	other := h.template(true)
	user := uuid.New()
	start := h.clk.Now()
	m0 := h.newMessage(h.tmpl.ID, user)
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	m1 := h.newMessageFor(other.ID, user, notifications.MethodSMTP)
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	m2 := h.newMessage(h.tmpl.ID, uuid.New())
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	a := uuid.New()
	h.markFailed(a, notifications.StatusPermanentFailure, 0, h.lease(a, 1)...) // m0
	for name, tc := range map[string]struct {
		q    notifications.MessageQuery
		want []uuid.UUID
	}{
		"all, newest first": {notifications.MessageQuery{}, []uuid.UUID{m2, m1, m0}},
		"user":              {notifications.MessageQuery{UserID: user}, []uuid.UUID{m1, m0}},
		"template":          {notifications.MessageQuery{TemplateID: h.tmpl.ID}, []uuid.UUID{m2, m0}},
		"method":            {notifications.MessageQuery{Method: notifications.MethodSMTP}, []uuid.UUID{m1}},
		"statuses": {notifications.MessageQuery{Statuses: []notifications.Status{notifications.StatusPermanentFailure, notifications.StatusSent}},
			[]uuid.UUID{m0}},
		"pending of the user": {notifications.MessageQuery{UserID: user, Statuses: []notifications.Status{notifications.StatusPending}}, []uuid.UUID{m1}},
		"created after":       {notifications.MessageQuery{CreatedAfter: start.Add(time.Minute)}, []uuid.UUID{m2, m1}},
		"created before":      {notifications.MessageQuery{CreatedBefore: start.Add(time.Minute)}, []uuid.UUID{m0}},
		"window": {notifications.MessageQuery{CreatedAfter: start.Add(30 * time.Second), CreatedBefore: start.Add(90 * time.Second)},
			[]uuid.UUID{m1}},
	} {
		if got := msgIDs(h.query(tc.q).Messages); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	if _, err := h.store.Messages(h.ctx, notifications.MessageQuery{Cursor: "x"}); !errors.Is(err, notifications.ErrInvalidCursor) {
		t.Fatalf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

// testMessageQueryByStatus: a search by status reports each message by the status the API
// gives it (a pending message or a retry being delivered is leased, and neither pending
// nor temporary_failure), ignores repeated and unknown statuses, and pages across
// statuses without gaps or repeats.
func testMessageQueryByStatus(t *testing.T, h *suite) {
	ids := h.enqueue(5)
	a := uuid.New()
	first := h.lease(a, 4)
	h.markSent(a, first[0])
	h.markFailed(a, notifications.StatusPermanentFailure, 0, first[1])
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Minute, first[2])
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Hour, first[3])
	h.clk.Advance(time.Minute).MustWait(h.ctx)
	if again := h.lease(uuid.New(), 10); len(again) != 2 { // the due retry ids[2] and the pending ids[4]
		t.Fatalf("leased %d messages, want 2", len(again))
	}
	pending := h.enqueue(1)[0]
	sent, failed, leasedRetry, retrying, leased := ids[0], ids[1], ids[2], ids[3], ids[4]
	search := func(statuses ...notifications.Status) []uuid.UUID {
		return msgIDs(h.query(notifications.MessageQuery{Statuses: statuses}).Messages)
	}
	for name, tc := range map[string]struct {
		statuses []notifications.Status
		want     []uuid.UUID
	}{
		"sent":      {[]notifications.Status{notifications.StatusSent}, []uuid.UUID{sent}},
		"pending":   {[]notifications.Status{notifications.StatusPending}, []uuid.UUID{pending}},
		"leased":    {[]notifications.Status{notifications.StatusLeased}, []uuid.UUID{leased, leasedRetry}},
		"retrying":  {[]notifications.Status{notifications.StatusTemporaryFailure}, []uuid.UUID{retrying}},
		"failed":    {[]notifications.Status{notifications.StatusPermanentFailure}, []uuid.UUID{failed}},
		"repeated":  {[]notifications.Status{notifications.StatusLeased, notifications.StatusPending, notifications.StatusLeased}, []uuid.UUID{pending, leased, leasedRetry}},
		"unknown":   {[]notifications.Status{"bogus"}, nil},
		"and known": {[]notifications.Status{"bogus", notifications.StatusSent}, []uuid.UUID{sent}},
	} {
		if got := search(tc.statuses...); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	// One message a page, across the walks of three statuses (leased reads three stored
	// ones).
	q := notifications.MessageQuery{Statuses: []notifications.Status{notifications.StatusPermanentFailure, notifications.StatusLeased,
		notifications.StatusTemporaryFailure}, Limit: 1}
	var got []uuid.UUID
	for range 10 {
		p := h.query(q)
		got = append(got, msgIDs(p.Messages)...)
		if q.Cursor = p.NextCursor; q.Cursor == "" {
			break
		}
	}
	if want := []uuid.UUID{leased, retrying, leasedRetry, failed}; !slices.Equal(got, want) {
		t.Fatalf("pages of one: %v, want %v", got, want)
	}
}

// testMessageQueryPages: pages join up without gaps or repeats, new messages do not shift
// them; Limit 0 is 50 and a Limit over 1,000 is 1,000.
func testMessageQueryPages(t *testing.T, h *suite) {
	const total = 1010
	batch := make([]driver.NewMessage, total)
	for i := range batch {
		batch[i] = driver.NewMessage{ID: uuid.New(), TemplateID: h.tmpl.ID, UserID: uuid.New(), Method: string(notifications.MethodWebhook),
			Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)), DedupeKey: uuid.NewString()}
	}
	if _, err := h.store.EnqueueMessages(h.ctx, batch, true); err != nil {
		t.Fatal(err)
	}
	if p := h.query(notifications.MessageQuery{}); len(p.Messages) != 50 || p.NextCursor == "" {
		t.Fatalf("default page: %d messages, cursor %q; want 50 and a cursor", len(p.Messages), p.NextCursor)
	}
	big := h.query(notifications.MessageQuery{Limit: 5000})
	if len(big.Messages) != 1000 || big.NextCursor == "" {
		t.Fatalf("Limit 5000: %d messages, want 1000", len(big.Messages))
	}
	seen := map[uuid.UUID]bool{}
	q := notifications.MessageQuery{Limit: 300}
	for pages := 0; ; pages++ {
		p := h.query(q)
		for _, m := range p.Messages {
			if seen[m.ID] {
				t.Fatalf("message %s on two pages", m.ID)
			}
			seen[m.ID] = true
		}
		if pages == 0 {
			h.newMessage(h.tmpl.ID, uuid.New()) // newer than every page: never in a later one
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if len(seen) != total {
		t.Fatalf("pages held %d messages, want %d", len(seen), total)
	}
}

func testRetryMessage(t *testing.T, h *suite) {
	ids := h.enqueue(4)
	a := uuid.New()
	leased := h.lease(a, 3)
	h.markFailed(a, notifications.StatusPermanentFailure, 0, leased[0])
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Hour, leased[1])
	h.markSent(a, leased[2])
	for _, id := range ids[:2] {
		if err := h.store.RetryMessage(h.ctx, id); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if m := h.wantStatus(id, notifications.StatusPending); m.AttemptCount != 0 || !m.NextRetryAfter.IsZero() || !strings.Contains(m.StatusReason, "boom") {
			t.Fatalf("retried message: %+v, want attempts reset and the earlier reason kept", m)
		}
	}
	if as := h.attempts(ids[0]); len(as) != 1 || as[0].Reason != "boom permanent_failure" {
		t.Fatalf("history after retry: %+v, want the failed attempt kept", as)
	}
	got := h.lease(uuid.New(), 10) // due now, not in an hour
	if len(got) != 3 || got[0].AttemptCount != 1 {
		t.Fatalf("lease after retry: %v, want both retried and the pending one", leasedIDs(got))
	}
	for name, id := range map[string]uuid.UUID{"sent": ids[2], "leased": ids[3]} {
		if err := h.store.RetryMessage(h.ctx, id); !errors.Is(err, notifications.ErrWrongStatus) {
			t.Errorf("retry of a %s message: %v, want ErrWrongStatus", name, err)
		}
	}
	if err := h.store.RetryMessage(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("retry of an unknown message: %v, want ErrNotFound", err)
	}
	canceled := h.enqueue(1)[0]
	if err := h.store.CancelMessage(h.ctx, canceled); err != nil {
		t.Fatal(err)
	}
	if err := h.store.RetryMessage(h.ctx, canceled); err != nil {
		t.Fatalf("retry of a canceled message: %v", err)
	}
	h.wantStatus(canceled, notifications.StatusPending)
}

func testCancelMessage(t *testing.T, h *suite) {
	ids := h.enqueue(4) // 0 retrying, 1 leased then failing, 2 leased then expiring, 3 pending
	a := uuid.New()
	leased := h.lease(a, 3)
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Hour, leased[0])
	for _, id := range ids {
		if err := h.store.CancelMessage(h.ctx, id); err != nil {
			t.Fatalf("cancel %s: %v", id, err)
		}
	}
	h.wantStatus(ids[0], notifications.StatusCanceled)
	h.wantStatus(ids[3], notifications.StatusCanceled)
	h.wantStatus(ids[1], notifications.StatusLeased) // canceled when its result arrives
	h.wantStatus(ids[2], notifications.StatusLeased)
	if err := h.store.CancelMessage(h.ctx, ids[1]); err != nil {
		t.Fatalf("cancel of a leased message again: %v", err)
	}
	h.markFailed(a, notifications.StatusTemporaryFailure, time.Minute, leased[1])
	if m := h.wantStatus(ids[1], notifications.StatusCanceled); m.StatusReason == "" {
		t.Fatal("canceled without a reason")
	}
	h.clk.Advance(suiteLease).MustWait(h.ctx) // ids[2]'s lease expires
	if got := h.lease(uuid.New(), 10); len(got) != 0 {
		t.Fatalf("a canceled message was leased again: %v", leasedIDs(got))
	}
	h.wantStatus(ids[2], notifications.StatusCanceled)

	sent := h.enqueue(1)[0]
	h.markSent(a, h.lease(a, 1)...)
	for _, id := range []uuid.UUID{sent, ids[0]} {
		if err := h.store.CancelMessage(h.ctx, id); !errors.Is(err, notifications.ErrWrongStatus) {
			t.Errorf("cancel of a finished message: %v, want ErrWrongStatus", err)
		}
	}
	if err := h.store.CancelMessage(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("cancel of an unknown message: %v, want ErrNotFound", err)
	}
	h.clk.Advance(2 * time.Hour).MustWait(h.ctx)
	if got := h.lease(uuid.New(), 10); len(got) != 0 {
		t.Fatalf("canceled messages leased: %v", leasedIDs(got))
	}
}

func testResendMessage(t *testing.T, h *suite) {
	user := uuid.New()
	target := uuid.New()
	orig := driver.NewMessage{ID: uuid.New(), TemplateID: h.tmpl.ID, UserID: user, Method: string(notifications.MethodWebhook),
		Payload: []byte(`{"labels":{"k":"v"}}`), Targets: []uuid.UUID{target}, CreatedBy: "ci", DedupeKey: "once"}
	if _, err := h.store.EnqueueMessages(h.ctx, []driver.NewMessage{orig}, true); err != nil {
		t.Fatal(err)
	}
	a := uuid.New()
	h.markSent(a, h.lease(a, 1)...)
	id, err := h.store.ResendMessage(h.ctx, orig.ID)
	if err != nil || id == uuid.Nil || id == orig.ID {
		t.Fatalf("resend: %s, %v", id, err)
	}
	if id.Version() != 7 {
		t.Fatalf("resent message ID %s is version %d; want 7 (driver.NewMessageID)", id, id.Version())
	}
	m := h.wantStatus(id, notifications.StatusPending)
	if m.TemplateID != orig.TemplateID || m.UserID != user || string(m.Method) != orig.Method || m.CreatedBy != "ci" ||
		len(m.Targets) != 1 || m.Targets[0] != target || m.AttemptCount != 0 {
		t.Fatalf("resent message: %+v", m)
	}
	var got, want map[string]any
	_ = json.Unmarshal(m.Payload, &got)
	_ = json.Unmarshal(orig.Payload, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("payload %s, want %s", m.Payload, orig.Payload)
	}
	if _, err := h.store.ResendMessage(h.ctx, orig.ID); err != nil {
		t.Fatalf("a second resend (fresh dedupe key): %v", err)
	}
	h.wantStatus(orig.ID, notifications.StatusSent)
	h.setPref(user, notifications.Preference{TemplateID: h.tmpl.ID, Disabled: true})
	if _, err := h.store.ResendMessage(h.ctx, orig.ID); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("resend to a user who disabled the template: %v", err)
	}
	if _, err := h.store.ResendMessage(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("resend of an unknown message: %v, want ErrNotFound", err)
	}
}

// testAttemptHistory: each lease is an attempt with its notifier, times, outcome, reason
// and duration; an expired lease is recorded when the message is leased again.
func testAttemptHistory(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	n1, n2, n3 := uuid.New(), uuid.New(), uuid.New()
	t1 := h.clk.Now()
	l := h.lease(n1, 1)
	h.clk.Advance(time.Second).MustWait(h.ctx)
	if _, err := h.store.MarkFailed(h.ctx, n1, []driver.FailedResult{{ID: id, AttemptCount: l[0].AttemptCount,
		Status: string(notifications.StatusTemporaryFailure), Reason: "451 later", RetryDelay: time.Second, Duration: 800 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Second).MustWait(h.ctx)
	t2 := h.clk.Now()
	h.lease(n2, 1)
	if as := h.attempts(id); len(as) != 2 || as[1].Outcome != notifications.StatusLeased || !as[1].FinishedAt.IsZero() {
		t.Fatalf("attempt in flight: %+v", as)
	}
	h.clk.Advance(suiteLease).MustWait(h.ctx) // n2 "crashes"
	t3 := h.clk.Now()
	l = h.lease(n3, 1)
	h.clk.Advance(time.Second).MustWait(h.ctx)
	// A cancellation asked for during the delivery changes neither the attempt's lease
	// time nor, since the delivery succeeds, its outcome.
	if err := h.store.CancelMessage(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if as := h.attempts(id); len(as) != 3 || !as[2].LeasedAt.Equal(t3) || as[2].Outcome != notifications.StatusLeased {
		t.Fatalf("attempt in flight after a cancellation: %+v", as)
	}
	if _, err := h.store.MarkSent(h.ctx, n3, []driver.SentResult{{ID: id, AttemptCount: l[0].AttemptCount, Duration: 300 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	as := h.attempts(id)
	want := []notifications.Attempt{
		{Number: 1, NotifierID: n1, LeasedAt: t1, FinishedAt: t1.Add(time.Second), Outcome: notifications.StatusTemporaryFailure, Reason: "451 later", Duration: 800 * time.Millisecond},
		{Number: 2, NotifierID: n2, LeasedAt: t2, FinishedAt: t2.Add(suiteLease), Outcome: notifications.StatusLeased},
		{Number: 3, NotifierID: n3, LeasedAt: t3, FinishedAt: t3.Add(time.Second), Outcome: notifications.StatusSent, Duration: 300 * time.Millisecond},
	}
	if len(as) != len(want) {
		t.Fatalf("attempts: %+v, want %d", as, len(want))
	}
	for i, w := range want {
		g := as[i]
		if g.Number != w.Number || g.NotifierID != w.NotifierID || !g.LeasedAt.Equal(w.LeasedAt) || !g.FinishedAt.Equal(w.FinishedAt) ||
			g.Outcome != w.Outcome || g.Duration != w.Duration || (w.Reason != "" && g.Reason != w.Reason) || (w.Outcome == notifications.StatusLeased && g.Reason == "") {
			t.Errorf("attempt %d: %+v, want %+v", i, g, w)
		}
	}
	if _, err := h.store.MessageAttempts(h.ctx, uuid.New()); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("attempts of an unknown message: %v, want ErrNotFound", err)
	}
	// Purged with the message.
	h.clk.Advance(time.Hour).MustWait(h.ctx)
	if _, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.MessageAttempts(h.ctx, id); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("attempts of a purged message: %v, want ErrNotFound", err)
	}
}

// testAttemptHistoryIsBounded: only the newest 50 attempts are kept.
func testAttemptHistoryBounded(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	a := uuid.New()
	const n = 55
	for i := 1; i <= n; i++ {
		l, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: a, Methods: leaseMethods, Limit: 1, LeasePeriod: suiteLease, MaxAttempts: 100})
		if err != nil || len(l) != 1 {
			t.Fatalf("lease %d: %v, %v", i, l, err)
		}
		if _, err := h.store.MarkFailed(h.ctx, a, []driver.FailedResult{{ID: id, AttemptCount: l[0].AttemptCount,
			Status: string(notifications.StatusTemporaryFailure), Reason: fmt.Sprint("attempt ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	as := h.attempts(id)
	if len(as) != 50 || as[0].Number != n-49 || as[49].Number != n || as[49].Reason != fmt.Sprint("attempt ", n) {
		t.Fatalf("history of %d attempts: %d kept, first %d, last %d", n, len(as), as[0].Number, as[len(as)-1].Number)
	}
	// Leases that expire count too, and the attempt in flight is the newest.
	for range 2 {
		if l, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: a, Methods: leaseMethods, Limit: 1, LeasePeriod: suiteLease, MaxAttempts: 100}); err != nil || len(l) != 1 {
			t.Fatalf("lease: %v, %v", l, err)
		}
		h.clk.Advance(suiteLease).MustWait(h.ctx)
	}
	if l, err := h.store.LeaseMessages(h.ctx, driver.LeaseParams{NotifierID: a, Methods: leaseMethods, Limit: 1, LeasePeriod: suiteLease, MaxAttempts: 100}); err != nil || len(l) != 1 {
		t.Fatalf("lease: %v, %v", l, err)
	}
	as = h.attempts(id)
	if len(as) != 50 || as[0].Number != n-46 || as[48].Number != n+2 || as[48].Outcome != notifications.StatusLeased || as[48].FinishedAt.IsZero() ||
		as[49].Number != n+3 || !as[49].FinishedAt.IsZero() {
		t.Fatalf("history of %d attempts, two of them expired, one in flight: %d kept, first %+v, last %+v", n+3, len(as), as[0], as[len(as)-1])
	}
}

func testCanceledPurged(t *testing.T, h *suite) {
	id := h.enqueue(1)[0]
	if err := h.store.CancelMessage(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Hour).MustWait(h.ctx)
	n, err := h.store.PurgeMessages(h.ctx, driver.PurgeParams{MessagesOlderThan: time.Minute})
	if err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want the canceled message", n, err)
	}
}

func leasedIDs(msgs []driver.LeasedMessage) []uuid.UUID { return ids(msgs) }
