package notificationstest

import (
	"context"
	"sync"

	"github.com/google/uuid"
	"golang.org/x/xerrors"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/driver"
	"github.com/notifykit/notifications/internal/signal"
)

// WatchedStore wraps a Store and counts the delivery results the Manager writes to it, so
// a test can wait for "the Manager has recorded N results" without polling. Use it with a
// mock clock: deliver, wait for the result, advance the clock, wait again.
type WatchedStore struct {
	notifications.Store

	mu      sync.Mutex
	results int
	changed signal.Signal
}

// WatchStore returns s wrapped.
func WatchStore(s notifications.Store) *WatchedStore {
	return &WatchedStore{Store: s}
}

// MarkSent implements notifications.NotifierStore and counts the results it wrote.
func (w *WatchedStore) MarkSent(ctx context.Context, notifierID uuid.UUID, results []driver.SentResult) (int, error) {
	n, err := w.Store.MarkSent(ctx, notifierID, results)
	if err == nil {
		w.add(len(results))
	}
	return n, err
}

// MarkFailed implements notifications.NotifierStore and counts the results it wrote.
func (w *WatchedStore) MarkFailed(ctx context.Context, notifierID uuid.UUID, results []driver.FailedResult) (int, error) {
	n, err := w.Store.MarkFailed(ctx, notifierID, results)
	if err == nil {
		w.add(len(results))
	}
	return n, err
}

func (w *WatchedStore) add(n int) {
	w.mu.Lock()
	w.results += n
	w.mu.Unlock()
	w.changed.Broadcast()
}

// Results returns how many results (sent or failed) were written so far.
func (w *WatchedStore) Results() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results
}

// WaitForResults blocks until at least n results were written or ctx ends.
func (w *WatchedStore) WaitForResults(ctx context.Context, n int) error {
	if err := w.changed.Wait(ctx, func() bool { return w.Results() >= n }); err != nil {
		return xerrors.Errorf("wait for %d results (have %d): %w", n, w.Results(), err)
	}
	return nil
}
