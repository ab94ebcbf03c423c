package notifications_test

import (
	"context"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
)

// A custom Handler: this one prints; a real one would call an API. Returning
// retryable=true asks for a retry after Config.RetryInterval (or after the delay of an
// error made with notifications.RetryAfter).
type printHandler struct{ done chan struct{} }

func (h printHandler) Dispatcher(p notifications.MessagePayload, title, body string, _ template.FuncMap) (notifications.DeliveryFunc, error) {
	return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
		fmt.Printf("to %s: %s\n%s\n", p.UserEmail, title, body)
		close(h.done)
		return false, nil
	}, nil
}

// Wire a Manager and an Enqueuer on the in-memory store, register a template, enqueue a
// notification and stop gracefully once it is delivered.
func Example() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{})

	welcome := notifications.Template{
		ID:               uuid.MustParse("8f3c1c6e-6a55-4a63-9a0e-1b2c3d4e5f60"),
		Name:             "Welcome",
		TitleTemplate:    "Welcome to {{app_name}}, {{.UserName}}",
		BodyTemplate:     "Your workspace **{{.Labels.workspace}}** is ready.",
		EnabledByDefault: true,
	}
	// One registry of helpers for registration, enqueue and delivery.
	registry := notifications.NewRegistry(template.FuncMap{"app_name": func() string { return "Acme" }})
	if err := registry.Register(ctx, store, welcome); err != nil {
		panic(err)
	}

	cfg := notifications.DefaultConfig()
	cfg.Registry = registry
	h := printHandler{done: make(chan struct{})}
	mgr, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{"print": h}, cfg)
	if err != nil {
		panic(err)
	}
	mgr.Run(ctx)

	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		Registry:       registry,
		DefaultMethods: []notifications.Method{"print"}, // templates that list no Methods
		Lookup: func(_ context.Context, id uuid.UUID) (notifications.Recipient, error) {
			return notifications.Recipient{UserID: id, Email: "ada@example.com", Name: "Ada"}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	if _, err := enq.Enqueue(ctx, uuid.New(), welcome.ID, map[string]string{"workspace": "dev_1"}, "example"); err != nil {
		panic(err)
	}

	<-h.done
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := mgr.Stop(stopCtx); err != nil {
		panic(err)
	}
	counts, _ := store.CountByStatus(ctx)
	fmt.Println("sent:", counts[notifications.StatusSent])
	// Output:
	// to ada@example.com: Welcome to Acme, Ada
	// Your workspace **dev\_1** is ready.
	// sent: 1
}

// Fan out to every member of a team: each recipient's outcome is reported on its own, so
// one who turned the notification off (or already got it) does not stop the others. An
// idempotency key makes a retried request a duplicate instead of a second notification.
func ExampleStoreEnqueuer_Send() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	build := notifications.Template{
		ID: uuid.MustParse("5d1c0f3a-0000-4000-8000-000000000001"), Name: "Build failed",
		TitleTemplate: "Build {{.Labels.build}} failed", EnabledByDefault: true, // by the default methods
	}
	if err := notifications.NewRegistry(nil).Register(ctx, store, build); err != nil {
		panic(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		DefaultMethods: []notifications.Method{notifications.MethodSMTP, notifications.MethodInbox}, // email plus inbox
	})
	if err != nil {
		panic(err)
	}
	ada := notifications.Recipient{UserID: uuid.New(), Email: "ada@example.com", Name: "Ada"}
	grace := notifications.Recipient{UserID: uuid.New(), Email: "grace@example.com", Name: "Grace"}
	linus := notifications.Recipient{UserID: uuid.New(), Email: "linus@example.com", Name: "Linus"}
	// Grace keeps the inbox but stopped the email; Linus turned the template off.
	_ = store.SetPreference(ctx, grace.UserID, notifications.Preference{TemplateID: build.ID, Method: notifications.MethodSMTP, Disabled: true})
	_ = store.SetPreference(ctx, linus.UserID, notifications.Preference{TemplateID: build.ID, Disabled: true})
	req := func(r notifications.Recipient) notifications.EnqueueRequest {
		return notifications.EnqueueRequest{
			TemplateID: build.ID, UserID: r.UserID, Recipient: &r, Labels: map[string]string{"build": "42"},
			CreatedBy: "ci", IdempotencyKey: "build-42-failed:" + r.UserID.String(),
		}
	}
	results, err := enq.Send(ctx, req(ada), req(grace), req(linus))
	if err != nil {
		panic(err) // the call failed as a whole: nothing stored
	}
	for i, r := range results {
		fmt.Println(i, len(r.MessageIDs), "messages, disabled:", errors.Is(r.Err, notifications.ErrCannotEnqueueDisabledNotification))
	}
	results, _ = enq.Send(ctx, req(ada)) // the same request again, e.g. after a client retry
	fmt.Println("again:", errors.Is(results[0].Err, notifications.ErrDuplicate))
	// Output:
	// 0 2 messages, disabled: false
	// 1 1 messages, disabled: false
	// 2 0 messages, disabled: true
	// again: true
}

// A custom Handler for a chat API. Dispatcher runs once per message and may refuse
// (a permanent failure); the DeliveryFunc classifies failures as retryable or not, and can
// ask for a specific retry delay with RetryAfter.
func ExampleHandlerFunc() {
	chat := notifications.HandlerFunc(func(p notifications.MessagePayload, title, body string, _ template.FuncMap) (notifications.DeliveryFunc, error) {
		channel := p.Labels["channel"]
		if channel == "" {
			return nil, fmt.Errorf("chat: label channel is required: %w", notifications.ErrInvalidMessage)
		}
		return func(ctx context.Context, msgID uuid.UUID) (bool, error) {
			status := postToChat(ctx, channel, title, msgID) // your API call; msgID makes it idempotent
			switch {
			case status == 429:
				return true, notifications.RetryAfter(30*time.Second, errors.New("chat: rate limited"))
			case status >= 500:
				return true, fmt.Errorf("chat: server error %d", status)
			case status >= 400:
				return false, fmt.Errorf("chat: rejected with %d", status)
			}
			return false, nil
		}, nil
	})

	deliver, err := chat.Dispatcher(notifications.MessagePayload{Labels: map[string]string{"channel": "#ops"}}, "Deploy done", "", nil)
	if err != nil {
		panic(err)
	}
	retryable, err := deliver(context.Background(), uuid.New())
	fmt.Println(retryable, err)
	_, err = chat.Dispatcher(notifications.MessagePayload{}, "Deploy done", "", nil)
	fmt.Println(err)
	// Output:
	// true chat: rate limited (retry after 30s)
	// chat: label channel is required: invalid message
}

// postToChat stands in for an HTTP call; it answers 429 so the example shows a retry.
func postToChat(context.Context, string, string, uuid.UUID) int { return 429 }
