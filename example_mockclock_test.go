package notifications_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// Test code that sends notifications with a mock clock: time moves only when the test says
// so, and every wait is on an event, never a sleep. In a real test, pass your *testing.T
// to quartz.NewMock; this runnable example has none, so exampleTB stands in for it.
func Example_testingWithMockClock() {
	var t testing.TB = exampleTB{}
	ctx := context.Background()
	clk := quartz.NewMock(t)
	store := notificationstest.WatchStore(memstore.New(memstore.Config{Clock: clk}))

	tmpl := notifications.Template{ID: uuid.New(), Name: "Deploy finished", TitleTemplate: "Deployed {{.Labels.version}}", EnabledByDefault: true}
	if err := notifications.NewRegistry(nil).Register(ctx, store, tmpl); err != nil {
		t.Fatal(err)
	}
	// The first attempt fails with a retryable error; the second succeeds.
	calls := 0
	h := notificationstest.NewRecordingHandler(func(context.Context, notificationstest.Delivery) (bool, error) {
		calls++
		if calls == 1 {
			return true, errors.New("451 try again later")
		}
		return false, nil
	})

	cfg := notifications.DefaultConfig()
	cfg.StoreSyncBufferSize = 1 // write each result at once, so the test can wait for it
	cfg.RetryJitter = 0
	cfg.RetryInterval = cfg.FetchInterval // the retry is due when the notifier next looks
	cfg.StoreSyncInterval = cfg.FetchInterval
	cfg.Clock = clk
	mgr, err := notifications.NewManager(store, map[notifications.Method]notifications.Handler{"chat": h}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mgr.Run(ctx)
	enq, err := notifications.NewStoreEnqueuer(store, notifications.EnqueuerConfig{Clock: clk, DefaultMethods: []notifications.Method{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	user := notifications.Recipient{UserID: uuid.New(), Name: "Ada"}
	ids, err := enq.SendAtomic(ctx, notifications.EnqueueRequest{TemplateID: tmpl.ID, UserID: user.UserID, Recipient: &user,
		Labels: map[string]string{"version": "v1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}

	// The enqueue wakes the Manager: the first attempt needs no clock movement.
	_ = h.WaitForDeliveries(ctx, 1)
	_ = store.WaitForResults(ctx, 1)
	msg, _ := store.Message(ctx, ids[0])
	fmt.Println("after attempt 1:", msg.Status)

	// Move time to the retry; the Manager leases and delivers again.
	clk.Advance(cfg.FetchInterval).MustWait(ctx)
	_ = h.WaitForDeliveries(ctx, 2)
	_ = store.WaitForResults(ctx, 2)
	msg, _ = store.Message(ctx, ids[0])
	fmt.Println("after attempt 2:", msg.Status, "in", msg.AttemptCount, "attempts")

	if err := mgr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Output:
	// after attempt 1: temporary_failure
	// after attempt 2: sent in 2 attempts
}

// exampleTB lets the example run outside a test. It is not needed in your tests.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                        {}
func (exampleTB) Cleanup(func())                 {}
func (exampleTB) Log(...any)                     {}
func (exampleTB) Logf(string, ...any)            {}
func (exampleTB) Error(args ...any)              { panic(fmt.Sprint(args...)) }
func (exampleTB) Errorf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (exampleTB) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (exampleTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
