package pgstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/notificationstest"
)

// TestRollingDeploy: two Managers with different handler sets share one store, as during a
// deploy that adds the sms method: every sms message is delivered by the Manager that knows
// sms, once, and none fails; webhooks are delivered by either; a message of a method no
// running Manager handles stays pending.
func TestRollingDeploy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const sms, pager = notifications.Method("sms"), notifications.Method("pager")
	const each = 300
	var msgs []driver.NewMessage
	for i := 0; i < each; i++ {
		for _, method := range []notifications.Method{sms, notifications.MethodWebhook} {
			msgs = append(msgs, driver.NewMessage{ID: uuid.New(), TemplateID: f.tmpl.ID, UserID: uuid.New(), Method: string(method), Payload: []byte(`{}`)})
		}
	}
	orphan := driver.NewMessage{ID: uuid.New(), TemplateID: f.tmpl.ID, UserID: uuid.New(), Method: string(pager), Payload: []byte(`{}`)}
	if _, err := f.store.EnqueueMessages(f.ctx, append(msgs, orphan), true); err != nil {
		t.Fatal(err)
	}
	cfg := notifications.DefaultConfig()
	cfg.LeaseCount = 20
	cfg.FetchInterval = 50 * time.Millisecond
	cfg.StoreSyncInterval = 20 * time.Millisecond
	oldWebhook, newWebhook, newSMS := notificationstest.NewRecordingHandler(nil), notificationstest.NewRecordingHandler(nil), notificationstest.NewRecordingHandler(nil)
	watched := notificationstest.WatchStore(f.store)
	start := func(handlers map[notifications.Method]notifications.Handler) *notifications.Manager {
		m, err := notifications.NewManager(watched, handlers, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Run(f.ctx)
		return m
	}
	old := start(map[notifications.Method]notifications.Handler{notifications.MethodWebhook: oldWebhook})
	updated := start(map[notifications.Method]notifications.Handler{notifications.MethodWebhook: newWebhook, sms: newSMS})
	if err := watched.WaitForResults(f.ctx, 2*each); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*notifications.Manager{old, updated} {
		if err := m.Stop(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if counts, err := f.store.CountByStatus(f.ctx); err != nil || counts[notifications.StatusSent] != 2*each || counts[notifications.StatusPending] != 1 || len(counts) != 2 {
		t.Fatalf("statuses %v, %v: want %d sent, the orphan pending, nothing failed", counts, err, 2*each)
	}
	var smsIDs []uuid.UUID
	for _, m := range msgs {
		if m.Method == string(sms) {
			smsIDs = append(smsIDs, m.ID)
		}
	}
	requireEachOnce(t, newSMS.Deliveries(), smsIDs) // by the Manager that knows sms
	t.Logf("webhooks delivered by the old Manager: %d, by the new one: %d", len(oldWebhook.Deliveries()), len(newWebhook.Deliveries()))
	if got, err := f.store.Message(f.ctx, orphan.ID); err != nil || got.Status != notifications.StatusPending || got.AttemptCount != 0 {
		t.Fatalf("message of a method nobody handles: %+v, %v; want pending, never attempted", got, err)
	}
}
