package notificationstest_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/notificationstest"
)

// RecordingHandler keeps every delivery in call order across its storage chunks.
func TestRecordingHandlerOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := notificationstest.NewRecordingHandler(nil)
	if got := h.Deliveries(); got != nil {
		t.Fatalf("Deliveries before any = %v, want nil", got)
	}
	ids := make([]uuid.UUID, 5000)
	for i := range ids {
		ids[i] = uuid.New()
		deliver, err := h.Dispatcher(notifications.MessagePayload{UserName: ids[i].String()}, "t", "b", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := deliver(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Dispatcher(notifications.MessagePayload{}, "", "", nil); err != nil {
		t.Fatal(err)
	}
	again, _ := h.Dispatcher(notifications.MessagePayload{}, "", "", nil)
	if _, err := again(ctx, ids[17]); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitForDeliveries(ctx, len(ids)+1); err != nil {
		t.Fatal(err)
	}
	got := h.Deliveries()
	if len(got) != len(ids)+1 {
		t.Fatalf("%d deliveries, want %d", len(got), len(ids)+1)
	}
	for i, id := range ids {
		if got[i].MsgID != id || got[i].Payload.UserName != id.String() {
			t.Fatalf("delivery %d is %s, want %s", i, got[i].MsgID, id)
		}
	}
	if got[len(ids)].MsgID != ids[17] || h.Count(ids[17]) != 2 || h.Count(ids[18]) != 1 || h.Count(uuid.New()) != 0 {
		t.Fatalf("counts: %d %d", h.Count(ids[17]), h.Count(ids[18]))
	}
}
