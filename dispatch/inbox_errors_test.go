package dispatch_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/dispatch"
	"github.com/notifykit/notifications/memstore"
)

// refusingStore refuses every inbox item as a store refuses a value it can never hold (a
// NUL byte in a title), or fails as a store does when it is unavailable.
type refusingStore struct {
	notifications.InboxStore
	err error
}

func (s refusingStore) InsertInboxItem(context.Context, notifications.InboxItem) (bool, error) {
	return false, s.err
}

// TestInboxDataErrorsArePermanent: an item the store can never hold fails permanently at
// once instead of being retried MaxSendAttempts times; an unavailable store is retried.
func TestInboxDataErrorsArePermanent(t *testing.T) {
	payload := notifications.MessagePayload{UserID: uuid.NewString(), NotificationTemplateID: uuid.NewString()}
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
	}{
		{"invalid data", xerrors.Errorf("insert inbox item: %w", notifications.ErrInvalidMessage), false},
		{"store unavailable", errors.New("connection refused"), true},
	} {
		h, err := dispatch.NewInbox(refusingStore{InboxStore: memstore.New(memstore.Config{}), err: tc.err}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fn, err := h.Dispatcher(payload, "evil\x00user", "body", nil)
		if err != nil {
			t.Fatal(err)
		}
		retryable, err := fn(context.Background(), uuid.New())
		if err == nil || retryable != tc.retryable {
			t.Errorf("%s: retryable %v, err %v; want retryable %v", tc.name, retryable, err, tc.retryable)
		}
	}
}
