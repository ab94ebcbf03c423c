package notifications_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// A user's notification settings screen: every template with its state per method it is
// delivered by. Turning one method off keeps the others.
func ExampleStoreEnqueuer_EffectivePreferences() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{}) // any notifications.Store
	mention := notifications.Template{ID: uuid.New(), Name: "Mention", TitleTemplate: "{{.Labels.author}} mentioned you", EnabledByDefault: true}
	otp := notifications.Template{ID: uuid.New(), Name: "Sign-in code", TitleTemplate: "Your code", EnabledByDefault: true,
		ExcludeMethods: []notifications.Method{notifications.MethodInbox}} // never in the inbox
	digest := notifications.Template{ID: uuid.New(), Name: "Weekly digest", TitleTemplate: "Your week",
		Methods: []notifications.Method{notifications.MethodSMTP}} // opt-in
	if err := notifications.NewRegistry(nil).Register(ctx, store, mention, otp, digest); err != nil {
		panic(err)
	}
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{
		DefaultMethods: []notifications.Method{notifications.MethodSMTP, notifications.MethodInbox},
	})
	if err != nil {
		panic(err)
	}
	user := uuid.New()
	// The user keeps mentions in the inbox but not by email, and opts in to the digest.
	_ = store.SetPreference(ctx, user, notifications.Preference{TemplateID: mention.ID, Method: notifications.MethodSMTP, Disabled: true})
	_ = store.SetPreference(ctx, user, notifications.Preference{TemplateID: digest.ID})

	screen, err := enq.EffectivePreferences(ctx, user)
	if err != nil {
		panic(err)
	}
	for _, row := range screen {
		fmt.Print(row.Template.Name, ":")
		for _, m := range row.Methods {
			fmt.Print(" ", m.Method, "=", m.Enabled)
		}
		fmt.Println()
	}
	// Output:
	// Mention: smtp=false inbox=true
	// Sign-in code: smtp=true
	// Weekly digest: smtp=true
}

// Support tooling: "why didn't this user get the email?" Find the user's failed messages
// page by page, read each attempt, and retry one now.
func ExampleStore_operators() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{}) // any notifications.Store
	receipt := notifications.Template{ID: uuid.New(), Name: "Receipt", TitleTemplate: "Your receipt", EnabledByDefault: true,
		Methods: []notifications.Method{notifications.MethodSMTP}}
	if err := notifications.NewRegistry(nil).Register(ctx, store, receipt); err != nil {
		panic(err)
	}
	// A mail server that bounces, so the message fails for good.
	watched := notificationstest.WatchStore(store)
	smtp := notificationstest.NewRecordingHandler(func(context.Context, notificationstest.Delivery) (bool, error) {
		return false, errors.New("550 5.1.1 mailbox does not exist")
	})
	mgr, err := notifications.NewManager(watched, map[notifications.Method]notifications.Handler{notifications.MethodSMTP: smtp}, notifications.DefaultConfig())
	if err != nil {
		panic(err)
	}
	if err := mgr.Run(context.WithoutCancel(ctx)); err != nil {
		panic(err)
	}
	enq, _ := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{})
	user := notifications.Recipient{UserID: uuid.New(), Email: "old@example.com"}
	if _, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: receipt.ID, UserID: user.UserID, Recipient: &user}); err != nil {
		panic(err)
	}
	_ = watched.WaitForResults(ctx, 1)
	_ = mgr.Stop(ctx)

	var ops notifications.Store = store
	query := notifications.MessageQuery{UserID: user.UserID, Statuses: []notifications.Status{notifications.StatusPermanentFailure}}
	for {
		page, err := ops.Messages(ctx, query)
		if err != nil {
			panic(err)
		}
		for _, m := range page.Messages {
			attempts, _ := ops.MessageAttempts(ctx, m.ID)
			for _, a := range attempts {
				fmt.Printf("%s attempt %d: %s: %s\n", m.Method, a.Number, a.Outcome, a.Reason)
			}
			_ = ops.RetryMessage(ctx, m.ID) // after the user fixed their address: pending now
			m, _ = store.Message(ctx, m.ID)
			fmt.Println("after retry:", m.Status, m.AttemptCount, "attempts")
		}
		if page.NextCursor == "" {
			break
		}
		query.Cursor = page.NextCursor
	}
	// Output:
	// smtp attempt 1: permanent_failure: 550 5.1.1 mailbox does not exist
	// after retry: pending 0 attempts
}
