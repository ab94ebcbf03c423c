package signal_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/notifykit/notifications/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWaitSeesEveryChange(t *testing.T) {
	t.Parallel()
	var s signal.Signal
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			mu.Lock()
			n++
			mu.Unlock()
			s.Broadcast()
		})
	}
	err := s.Wait(context.Background(), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n == 100
	})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	var s signal.Signal
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
