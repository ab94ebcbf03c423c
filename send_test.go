package notifications_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

type sendFixture struct {
	ctx   context.Context
	store *memstore.Store
	enq   *notifications.StoreEnqueuer
}

func newSendFixture(t *testing.T, defaults []notifications.Method, templates ...notifications.Template) *sendFixture {
	t.Helper()
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	if err := notifications.NewRegistry(nil).Register(ctx, store, templates...); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{DefaultMethods: defaults,
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return &sendFixture{ctx: ctx, store: store, enq: enq}
}

func (f *sendFixture) req(tmpl uuid.UUID, user uuid.UUID) notifications.EnqueueRequest {
	return notifications.EnqueueRequest{TemplateID: tmpl, UserID: user, Recipient: &notifications.Recipient{Email: "u@example.com"}}
}

func (f *sendFixture) methods(t *testing.T, ids []uuid.UUID) []notifications.Method {
	t.Helper()
	var out []notifications.Method
	for _, id := range ids {
		m, err := f.store.Message(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Method)
	}
	return out
}

var emailAndInbox = []notifications.Method{notifications.MethodSMTP, notifications.MethodInbox}

// TestSendReportsEachRecipient: in a fan-out, a recipient who disabled the template or
// already got it is reported on its own request (index and user named) and the others are
// stored; a recipient who disabled one method gets the other.
func TestSendReportsEachRecipient(t *testing.T) {
	t.Parallel()
	tmpl := notifications.Template{ID: uuid.New(), Name: "mention", TitleTemplate: "x", EnabledByDefault: true}
	f := newSendFixture(t, emailAndInbox, tmpl)
	ok, noEmail, off, dup := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	_ = f.store.SetPreference(f.ctx, noEmail, notifications.Preference{TemplateID: tmpl.ID, Method: notifications.MethodSMTP, Disabled: true})
	_ = f.store.SetPreference(f.ctx, off, notifications.Preference{TemplateID: tmpl.ID, Disabled: true})
	if _, err := f.enq.Send(f.ctx, f.req(tmpl.ID, dup)); err != nil {
		t.Fatal(err)
	}
	unknown := f.req(uuid.New(), ok)
	res, err := f.enq.Send(f.ctx, f.req(tmpl.ID, ok), f.req(tmpl.ID, noEmail), f.req(tmpl.ID, off), f.req(tmpl.ID, dup), unknown)
	if err != nil || len(res) != 5 {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if res[0].Err != nil || !slices.Equal(f.methods(t, res[0].MessageIDs), emailAndInbox) {
		t.Fatalf("request 0: %+v, want email and inbox", res[0])
	}
	if res[1].Err != nil || !slices.Equal(f.methods(t, res[1].MessageIDs), []notifications.Method{notifications.MethodInbox}) {
		t.Fatalf("request 1 (email disabled): %+v, want the inbox only and no error", res[1])
	}
	for i, want := range map[int]error{2: notifications.ErrCannotEnqueueDisabledNotification, 3: notifications.ErrDuplicate, 4: notifications.ErrNotFound} {
		r := res[i]
		if len(r.MessageIDs) != 0 || !errors.Is(r.Err, want) {
			t.Errorf("request %d: %+v, want %v", i, r, want)
			continue
		}
		user := []uuid.UUID{2: off, 3: dup, 4: ok}[i]
		if prefix := "request " + string(rune('0'+i)) + " (user " + user.String() + "): "; !strings.HasPrefix(r.Err.Error(), prefix) {
			t.Errorf("request %d: error %q does not start with %q", i, r.Err, prefix)
		}
	}
	// SendAtomic refuses the batch for any refusal, a disabled method included.
	before, _ := f.store.CountByStatus(f.ctx)
	if _, err := f.enq.SendAtomic(f.ctx, f.req(tmpl.ID, uuid.New()), f.req(tmpl.ID, noEmail)); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) ||
		!strings.Contains(err.Error(), "request 1 (user "+noEmail.String()+")") {
		t.Fatalf("atomic with a disabled method: %v", err)
	}
	if after, _ := f.store.CountByStatus(f.ctx); after[notifications.StatusPending] != before[notifications.StatusPending] {
		t.Fatalf("a refused atomic send stored %d messages", after[notifications.StatusPending]-before[notifications.StatusPending])
	}
	ids, err := f.enq.SendAtomic(f.ctx, f.req(tmpl.ID, uuid.New()), f.req(tmpl.ID, uuid.New()))
	if err != nil || len(ids) != 4 {
		t.Fatalf("atomic send: %v, %v; want 4 messages", ids, err)
	}
	// Enqueue (the coder-compatible call) returns the request's own error.
	if _, err := f.enq.Enqueue(f.ctx, off, tmpl.ID, nil, "test"); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) ||
		!strings.HasPrefix(err.Error(), "enqueue for user "+off.String()+": ") {
		t.Fatalf("Enqueue for a user who disabled the template: %v", err)
	}
}

// TestTemplateMethods: a template's Methods replace the defaults; ExcludeMethods removes
// some; with no default methods a template that lists none is refused by name.
func TestTemplateMethods(t *testing.T) {
	t.Parallel()
	otp := notifications.Template{ID: uuid.New(), Name: "one-time code", TitleTemplate: "x", EnabledByDefault: true,
		ExcludeMethods: []notifications.Method{notifications.MethodInbox}}
	hook := notifications.Template{ID: uuid.New(), Name: "build", TitleTemplate: "x", EnabledByDefault: true,
		Methods: []notifications.Method{notifications.MethodWebhook, notifications.MethodInbox}}
	plain := notifications.Template{ID: uuid.New(), Name: "plain", TitleTemplate: "x", EnabledByDefault: true}
	f := newSendFixture(t, emailAndInbox, otp, hook, plain)
	for _, tc := range []struct {
		tmpl notifications.Template
		want []notifications.Method
	}{
		{otp, []notifications.Method{notifications.MethodSMTP}},
		{hook, hook.Methods},
		{plain, emailAndInbox},
	} {
		res, err := f.enq.Send(f.ctx, f.req(tc.tmpl.ID, uuid.New()))
		if err != nil || res[0].Err != nil {
			t.Fatalf("%s: %+v, %v", tc.tmpl.Name, res, err)
		}
		if got := f.methods(t, res[0].MessageIDs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: methods %v, want %v", tc.tmpl.Name, got, tc.want)
		}
	}

	none, err := notifications.NewStoreEnqueuer(f.store, notifications.EnqueuerConfig{}) // no default method
	if err != nil {
		t.Fatal(err)
	}
	res, err := none.Send(f.ctx, f.req(plain.ID, uuid.New()), f.req(hook.ID, uuid.New()))
	if err != nil || !errors.Is(res[0].Err, notifications.ErrInvalidTemplate) || !strings.Contains(res[0].Err.Error(), `template "plain" lists no Methods`) ||
		res[1].Err != nil || len(res[1].MessageIDs) != 2 {
		t.Fatalf("no default methods: %+v, %v", res, err)
	}
	if _, err := notifications.NewStoreEnqueuer(f.store, notifications.EnqueuerConfig{DefaultMethods: []notifications.Method{"smtp", "smtp"}}); !errors.Is(err, notifications.ErrInvalidConfig) {
		t.Fatalf("repeated default method: %v", err)
	}
	both := notifications.Template{ID: uuid.New(), Name: "both", TitleTemplate: "x", Methods: emailAndInbox, ExcludeMethods: emailAndInbox}
	if err := notifications.NewRegistry(nil).Register(f.ctx, f.store, both); !errors.Is(err, notifications.ErrInvalidTemplate) {
		t.Fatalf("Methods and ExcludeMethods together: %v", err)
	}
}

// TestPreferencesScreen: every template that is not deleted, with its effective state per
// method it is delivered by.
func TestPreferencesScreen(t *testing.T) {
	t.Parallel()
	a := notifications.Template{ID: uuid.New(), Name: "a mention", TitleTemplate: "x", EnabledByDefault: true}
	b := notifications.Template{ID: uuid.New(), Name: "b digest", TitleTemplate: "x", Methods: []notifications.Method{notifications.MethodInbox}}
	c := notifications.Template{ID: uuid.New(), Name: "c gone", TitleTemplate: "x", EnabledByDefault: true}
	f := newSendFixture(t, emailAndInbox, a, b, c)
	user := uuid.New()
	_ = f.store.SetPreference(f.ctx, user, notifications.Preference{TemplateID: a.ID, Disabled: true})
	_ = f.store.SetPreference(f.ctx, user, notifications.Preference{TemplateID: a.ID, Method: notifications.MethodInbox})
	_ = f.store.SetPreference(f.ctx, user, notifications.Preference{TemplateID: b.ID}) // opts in
	if err := f.store.DeleteTemplate(f.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, err := f.enq.EffectivePreferences(f.ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      uuid.UUID
		methods []notifications.MethodPreference
	}{
		{a.ID, []notifications.MethodPreference{{Method: notifications.MethodSMTP, Enabled: false}, {Method: notifications.MethodInbox, Enabled: true}}},
		{b.ID, []notifications.MethodPreference{{Method: notifications.MethodInbox, Enabled: true}}},
	}
	if len(got) != len(want) {
		t.Fatalf("screen: %+v", got)
	}
	for i, w := range want {
		if got[i].Template.ID != w.id || !slices.Equal(got[i].Methods, w.methods) {
			t.Errorf("row %d: %s %+v, want %+v", i, got[i].Template.Name, got[i].Methods, w.methods)
		}
	}
	other, _ := f.enq.EffectivePreferences(f.ctx, uuid.New())
	if len(other) != 2 || other[1].Methods[0].Enabled {
		t.Fatalf("a user without preferences: %+v, want the opt-in template disabled", other)
	}
}

// TestManagerRecordsAttempts: the Manager's results carry the delivery's duration into the
// attempt history.
func TestManagerRecordsAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.handler = notificationstest.NewRecordingHandler(func(context.Context, notificationstest.Delivery) (bool, error) {
		h.clk.Advance(250 * time.Millisecond) // the delivery takes 250ms on the Manager's clock
		return false, nil
	})
	ids := h.enqueue(1)
	m := h.manager(testConfig(), nil)
	h.run(m)
	h.waitBuffered(1)
	h.stop(m)
	as, err := h.store.MessageAttempts(h.ctx, ids[0])
	if err != nil || len(as) != 1 || as[0].Outcome != notifications.StatusSent || as[0].Duration != 250*time.Millisecond || as[0].Number != 1 {
		t.Fatalf("attempts: %+v, %v; want one sent attempt of 250ms", as, err)
	}
}

// TestDeleteTemplateDuringDelivery: a template deleted while its message is being
// delivered: the delivery's retryable failure ends the message canceled instead of
// scheduling a retry, and nothing is delivered again.
func TestDeleteTemplateDuringDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	inHandler, release := make(chan struct{}), make(chan struct{})
	h.handler = notificationstest.NewRecordingHandler(func(context.Context, notificationstest.Delivery) (bool, error) {
		close(inHandler)
		<-release
		return true, errors.New("503 try later")
	})
	ids := h.enqueue(1)
	m := h.manager(testConfig(), nil)
	h.run(m)
	<-inHandler
	if err := h.store.DeleteTemplate(h.ctx, h.tmpl.ID); err != nil {
		t.Fatal(err)
	}
	if st := h.status(ids[0]).Status; st != notifications.StatusLeased {
		t.Fatalf("in flight after delete: %s, want leased until the result arrives", st)
	}
	close(release)
	h.waitBuffered(1)
	h.stop(m)
	msg := h.status(ids[0])
	if msg.Status != notifications.StatusCanceled || !strings.Contains(msg.StatusReason, "template deleted") || !strings.Contains(msg.StatusReason, "503 try later") {
		t.Fatalf("after the result: %s %q, want canceled saying why and what the attempt said", msg.Status, msg.StatusReason)
	}
	as, err := h.store.MessageAttempts(h.ctx, ids[0])
	if err != nil || len(as) != 1 || as[0].Outcome != notifications.StatusTemporaryFailure || as[0].Reason != "503 try later" {
		t.Fatalf("attempts: %+v, %v", as, err)
	}
}

// TestMessageIDsFollowTheClock: the enqueuer's message IDs are UUIDv7 stamped with its
// clock's millisecond, so IDs from a later millisecond sort after earlier ones (the
// primary key grows at its right edge) while each ID stays unique.
func TestMessageIDsFollowTheClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := quartz.NewMock(t)
	clock.Set(time.Date(2026, 11, 28, 9, 30, 0, 123_000_000, time.UTC))
	store := memstore.New(memstore.Config{Clock: clock})
	tmpl := notifications.Template{ID: uuid.New(), Name: "ids", TitleTemplate: "x", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{Clock: clock, DefaultMethods: emailAndInbox})
	if err != nil {
		t.Fatal(err)
	}
	send := func() []uuid.UUID {
		var ids []uuid.UUID
		for range 3 {
			id := uuid.New()
			res, err := enq.Send(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: id, Recipient: &notifications.Recipient{Email: "u@example.com"}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("send: %v, %+v", err, res)
			}
			ids = append(ids, res[0].MessageIDs...)
		}
		return ids
	}
	firstAt := clock.Now()
	first := send()
	clock.Advance(1500 * time.Millisecond).MustWait(ctx)
	secondAt := clock.Now()
	second := send()
	if len(first) != 6 || len(second) != 6 {
		t.Fatalf("got %d and %d message IDs; want 6 each (3 sends × email and inbox)", len(first), len(second))
	}
	seen := map[uuid.UUID]bool{}
	for _, batch := range []struct {
		ids []uuid.UUID
		at  time.Time
	}{{first, firstAt}, {second, secondAt}} {
		wantMs := batch.at.UnixMilli()
		for _, id := range batch.ids {
			if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
				t.Fatalf("message ID %s is version %d, variant %v; want version 7 (RFC 9562)", id, id.Version(), id.Variant())
			}
			sec, nsec := id.Time().UnixTime()
			if got := time.Unix(sec, nsec).UnixMilli(); got != wantMs {
				t.Fatalf("message ID %s carries %d ms; want the clock's %d", id, got, wantMs)
			}
			if seen[id] {
				t.Fatalf("message ID %s given twice", id)
			}
			seen[id] = true
		}
	}
	for _, a := range first {
		for _, b := range second {
			if bytes.Compare(a[:], b[:]) >= 0 {
				t.Fatalf("ID %s of the later enqueue does not sort after %s", b, a)
			}
		}
	}
}
