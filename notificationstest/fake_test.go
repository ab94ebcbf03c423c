package notificationstest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/notificationstest"
)

// TestFakeEnqueuer: code written against notifications.Enqueuer can be tested with partial
// refusals.
func TestFakeEnqueuer(t *testing.T) {
	var enq notifications.Enqueuer = &notificationstest.FakeEnqueuer{}
	fake := enq.(*notificationstest.FakeEnqueuer)
	off := uuid.New()
	fake.Refuse = func(r notifications.EnqueueRequest) error {
		if r.UserID == off {
			return notifications.ErrCannotEnqueueDisabledNotification
		}
		return nil
	}
	ctx := context.Background()
	tmpl, on := uuid.New(), uuid.New()
	res, err := enq.Send(ctx, notifications.EnqueueRequest{TemplateID: tmpl, UserID: on}, notifications.EnqueueRequest{TemplateID: tmpl, UserID: off})
	if err != nil || len(res) != 2 || len(res[0].MessageIDs) != 1 || res[0].Err != nil ||
		!errors.Is(res[1].Err, notifications.ErrCannotEnqueueDisabledNotification) || len(res[1].MessageIDs) != 0 {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if _, err := enq.Enqueue(ctx, off, tmpl, nil, "test"); !errors.Is(err, notifications.ErrCannotEnqueueDisabledNotification) {
		t.Fatalf("enqueue for a refused user: %v", err)
	}
	if ids, err := enq.Enqueue(ctx, on, tmpl, map[string]string{"k": "v"}, "test"); err != nil || len(ids) != 1 {
		t.Fatalf("enqueue: %v, %v", ids, err)
	}
	sent := fake.Sent()
	if len(sent) != 2 || sent[0].UserID != on || sent[1].Labels["k"] != "v" {
		t.Fatalf("recorded: %+v", sent)
	}
	fake.Err = errors.New("down")
	if _, err := enq.Send(ctx, notifications.EnqueueRequest{UserID: on}); err == nil {
		t.Fatal("Err set: Send succeeded")
	}
}
