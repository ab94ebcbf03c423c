package notifications_test

import (
	"context"
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
	store := memstore.New()

	welcome := notifications.Template{
		ID:               uuid.MustParse("8f3c1c6e-6a55-4a63-9a0e-1b2c3d4e5f60"),
		Name:             "Welcome",
		TitleTemplate:    "Welcome to {{app_name}}, {{.UserName}}",
		BodyTemplate:     "Your workspace **{{.Labels.workspace}}** is ready.",
		EnabledByDefault: true,
	}
	helpers := template.FuncMap{"app_name": func() string { return "Acme" }}
	if err := notifications.RegisterTemplates(ctx, store, helpers, welcome); err != nil {
		panic(err)
	}

	cfg := notifications.DefaultConfig()
	cfg.Method = "print"
	h := printHandler{done: make(chan struct{})}
	mgr, err := notifications.NewManager(cfg, store, map[notifications.Method]notifications.Handler{"print": h},
		notifications.WithHelpers(helpers))
	if err != nil {
		panic(err)
	}
	mgr.Run(ctx)

	enq, err := notifications.NewStoreEnqueuer(cfg, store, notifications.EnqueuerOptions{
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
