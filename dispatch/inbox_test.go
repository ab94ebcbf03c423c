package dispatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/memstore"
)

func TestInboxIdempotentAndPublishesOncePerItem(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := memstore.New(memstore.Config{})
	broker := dispatch.NewMemoryBroker()
	h, err := dispatch.NewInbox(store, broker)
	if err != nil {
		t.Fatal(err)
	}
	p := samplePayload()
	user := uuid.MustParse(p.UserID)
	p.Actions = []notifications.Action{{Label: "Open", URL: "https://ci.example.com/42"}}
	subCtx, unsubscribe := context.WithCancel(ctx)
	events := broker.Subscribe(subCtx, user)

	fn, err := h.Dispatcher(p, "Build **42** failed", "See the *logs*.", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	for i := 0; i < 3; i++ { // the first delivery and two redeliveries
		if retryable, err := fn(ctx, id); err != nil {
			t.Fatalf("delivery %d: %v (retryable %v)", i, err, retryable)
		}
	}
	page, err := store.InboxItems(ctx, user, notifications.InboxQuery{})
	items := page.Items
	if err != nil || len(items) != 1 {
		t.Fatalf("items %+v, %v; want exactly one", items, err)
	}
	if it := items[0]; it.ID != id || it.Title != "Build 42 failed" || it.Content != "See the *logs*." || len(it.Actions) != 1 {
		t.Fatalf("item %+v", it)
	}
	unsubscribe()
	var got []notifications.InboxEvent
	for ev := range events { // closed after unsubscribe
		got = append(got, ev)
	}
	if len(got) != 1 || got[0].Kind != notifications.InboxEventCreated || got[0].ItemID != id || got[0].Item.ID != id || got[0].UserID != user {
		t.Fatalf("subscriber received %+v, want exactly one created event", got)
	}
}

func TestInboxRefusesBadPayload(t *testing.T) {
	t.Parallel()
	h, err := dispatch.NewInbox(memstore.New(memstore.Config{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := samplePayload()
	p.UserID = "not-a-uuid"
	if _, err := h.Dispatcher(p, "t", "b", nil); err == nil {
		t.Fatal("a payload without a valid user_id was accepted")
	}
	if _, err := dispatch.NewInbox(nil, nil); err == nil {
		t.Fatal("nil store accepted")
	}
}

func TestDefaultHandlers(t *testing.T) {
	t.Parallel()
	store := memstore.New(memstore.Config{})
	hs, err := dispatch.DefaultHandlers(dispatch.HandlersConfig{
		SMTP:    &dispatch.SMTPConfig{Smarthost: "localhost:25", From: "a@example.com"},
		Webhook: &dispatch.WebhookConfig{URL: "https://hooks.example.com/n"},
		Inbox:   store,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []notifications.Method{notifications.MethodSMTP, notifications.MethodWebhook, notifications.MethodInbox} {
		if hs[m] == nil {
			t.Errorf("no handler for %s", m)
		}
	}
	_, err = dispatch.DefaultHandlers(dispatch.HandlersConfig{
		SMTP:    &dispatch.SMTPConfig{From: "a@example.com"},
		Webhook: &dispatch.WebhookConfig{URL: "ftp://x"},
	})
	if err == nil || !strings.Contains(err.Error(), "SMTPConfig.Smarthost") || !strings.Contains(err.Error(), "WebhookConfig.URL") {
		t.Fatalf("err = %v, want both problems named", err)
	}
	if _, err := dispatch.DefaultHandlers(dispatch.HandlersConfig{}); err == nil {
		t.Fatal("an empty config was accepted")
	}
}

// recordingInboxStore keeps the items the handler asks it to insert.
type recordingInboxStore struct {
	notifications.InboxStore
	inserted chan notifications.InboxItem
}

func (s *recordingInboxStore) InsertInboxItem(ctx context.Context, item notifications.InboxItem) (bool, error) {
	s.inserted <- item
	return s.InboxStore.InsertInboxItem(ctx, item)
}

// TestInboxKeepsBothTitleForms: the item carries the title as plain text (Title) and as
// the rendered Markdown (TitleMarkdown), in the store and to live subscribers.
func TestInboxKeepsBothTitleForms(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := &recordingInboxStore{InboxStore: memstore.New(memstore.Config{}), inserted: make(chan notifications.InboxItem, 1)}
	broker := dispatch.NewMemoryBroker()
	h, err := dispatch.NewInbox(store, broker)
	if err != nil {
		t.Fatal(err)
	}
	p := samplePayload()
	events := broker.Subscribe(ctx, uuid.MustParse(p.UserID))
	fn, err := h.Dispatcher(p, `Build **42** of \[api\] failed`, "body", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn(ctx, uuid.New()); err != nil {
		t.Fatal(err)
	}
	for name, it := range map[string]notifications.InboxItem{"stored": <-store.inserted, "published": (<-events).Item} {
		if it.Title != "Build 42 of [api] failed" || it.TitleMarkdown != `Build **42** of \[api\] failed` {
			t.Errorf("%s item: Title %q TitleMarkdown %q", name, it.Title, it.TitleMarkdown)
		}
	}
}
