package notifications_test

import (
	"testing"

	"github.com/notifykit/notifications/memstore"
	"github.com/notifykit/notifications/notificationstest"
)

// BenchmarkDrainMemstore: end-to-end dispatch on the embedded store (see
// notificationstest.BenchmarkDrain).
func BenchmarkDrainMemstore(b *testing.B) {
	notificationstest.BenchmarkDrain(b, memstore.New())
}
