package notifications_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// TestRegistryIsTheOneSetOfHelpers: the registry a template is registered with is the one
// the enqueuer renders its actions with and the Manager renders its title with, and a
// template that calls a helper the registry lacks is refused at registration, not at
// every delivery.
func TestRegistryIsTheOneSetOfHelpers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := memstore.New(memstore.Config{})
	helpers := template.FuncMap{"app_name": func() string { return "Acme" }, "base_url": func() string { return "https://acme.example" }}
	registry := notifications.NewRegistry(helpers)
	helpers["app_name"] = func() string { return "changed after NewRegistry" } // the registry keeps its copy

	unknown := notifications.Template{ID: uuid.New(), Name: "unknown helper", TitleTemplate: "{{ company_name }}", EnabledByDefault: true}
	if err := registry.Register(ctx, store, unknown); !errors.Is(err, notifications.ErrInvalidTemplate) || !strings.Contains(err.Error(), "company_name") {
		t.Fatalf("register a template calling an unknown helper: %v; want ErrInvalidTemplate naming the function", err)
	}
	if _, err := store.Template(ctx, unknown.ID); !errors.Is(err, notifications.ErrNotFound) {
		t.Fatalf("the refused template was stored: %v", err)
	}

	tmpl := notifications.Template{ID: uuid.New(), Name: "welcome", TitleTemplate: "Welcome to {{ app_name }}", EnabledByDefault: true,
		Methods: []notifications.Method{notifications.MethodWebhook},
		Actions: []notifications.TemplateAction{{Label: "Open", URL: "{{ base_url }}/home"}}}
	if err := registry.Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{Registry: registry})
	if err != nil {
		t.Fatal(err)
	}
	user := notifications.Recipient{UserID: uuid.New()}
	if _, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: user.UserID, Recipient: &user}); err != nil {
		t.Fatal(err)
	}

	h := notificationstest.NewRecordingHandler(nil)
	cfg := notifications.DefaultConfig()
	cfg.Registry = registry
	mgr, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(ctx, 1); err != nil {
		t.Fatal(err)
	}
	got := h.Deliveries()
	if err := mgr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got[0].Title != "Welcome to Acme" {
		t.Fatalf("title %q; want the registry's app_name", got[0].Title)
	}
	if len(got[0].Payload.Actions) != 1 || got[0].Payload.Actions[0].URL != "https://acme.example/home" {
		t.Fatalf("actions %+v; want the registry's base_url", got[0].Payload.Actions)
	}
	title, _, err := registry.RenderTitleBody(tmpl, notifications.MessagePayload{})
	if err != nil || title != got[0].Title {
		t.Fatalf("preview %q, %v; want what was delivered, %q", title, err, got[0].Title)
	}
}

// TestSendTxNeedsATransactionalStore: SendTx on a store that cannot bind a transaction
// (memstore) stores nothing and says why.
func TestSendTxNeedsATransactionalStore(t *testing.T) {
	tmpl := notifications.Template{ID: uuid.New(), Name: "t", TitleTemplate: "x", EnabledByDefault: true}
	f := newSendFixture(t, []notifications.Method{notifications.MethodSMTP}, tmpl)
	_, err := f.enq.SendTx(f.ctx, "not a transaction", f.req(tmpl.ID, uuid.New()))
	if err == nil || !strings.Contains(err.Error(), "*memstore.Store") || !strings.Contains(err.Error(), "InTx") {
		t.Fatalf("SendTx on memstore: %v; want an error naming the store and the missing InTx", err)
	}
	if _, err := f.enq.SendAtomicTx(f.ctx, nil, f.req(tmpl.ID, uuid.New())); err == nil {
		t.Fatal("SendAtomicTx on memstore: no error")
	}
	if counts, _ := f.store.CountByStatus(f.ctx); len(counts) != 0 {
		t.Fatalf("stored %v", counts)
	}
}

// TestFakeEnqueuerSendVariants: the fake records what each Enqueuer method sends, the
// transaction of the Tx variants, and nothing of an atomic send that Refuse refuses.
func TestFakeEnqueuerSendVariants(t *testing.T) {
	ctx := context.Background()
	refused := uuid.New()
	f := &notificationstest.FakeEnqueuer{Refuse: func(r notifications.EnqueueRequest) error {
		if r.UserID == refused {
			return notifications.ErrCannotEnqueueDisabledNotification
		}
		return nil
	}}
	var enq notifications.Enqueuer = f
	tmpl, ok1, ok2 := uuid.New(), uuid.New(), uuid.New()
	tx := struct{ name string }{"tx"}
	if ids, err := enq.SendAtomicTx(ctx, tx, notifications.EnqueueRequest{TemplateID: tmpl, UserID: ok1, IdempotencyKey: "k1"}); err != nil || len(ids) != 1 {
		t.Fatalf("SendAtomicTx: %v, %v", ids, err)
	}
	if _, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: tmpl, UserID: ok2},
		notifications.EnqueueRequest{TemplateID: tmpl, UserID: refused}); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) ||
		!strings.Contains(err.Error(), "request 1") {
		t.Fatalf("SendAtomic with a refused request: %v; want the refusal naming request 1", err)
	}
	res, err := enq.SendTx(ctx, tx, notifications.EnqueueRequest{TemplateID: tmpl, UserID: ok2},
		notifications.EnqueueRequest{TemplateID: tmpl, UserID: refused})
	if err != nil || res[0].Err != nil || res[1].Err == nil {
		t.Fatalf("SendTx: %+v, %v; want the second refused", res, err)
	}
	sent := f.Sent()
	if len(sent) != 2 || sent[0].UserID != ok1 || sent[0].Tx != tx || sent[0].Request.IdempotencyKey != "k1" || sent[1].UserID != ok2 || sent[1].Tx != tx {
		t.Fatalf("recorded %+v; want ok1 and ok2, both in tx, and nothing of the refused atomic send", sent)
	}
}
