package notifications_test

import (
	"testing"

	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/memstore"
)

// BenchmarkDrainMemstore: end-to-end dispatch on the embedded store (see
// benchkit.BenchmarkDrain).
func BenchmarkDrainMemstore(b *testing.B) {
	benchkit.BenchmarkDrain(b, memstore.New(memstore.Config{}))
}
