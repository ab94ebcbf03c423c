package memstore_test

import (
	"testing"

	"github.com/coder/quartz"
	"go.uber.org/goleak"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	notificationstest.RunStoreTests(t, func(t *testing.T, clk quartz.Clock) notifications.Store {
		return memstore.New(memstore.Config{Clock: clk})
	})
}
