package notifications

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cdr.dev/slog"
	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/notifykit/notifications/driver"
	"golang.org/x/xerrors"
)

// Manager runs one notifier: it leases messages from a NotifierStore, delivers them through
// the Handler registered for each message's method, and writes the results back to the
// store in bulk. See the package documentation for the lifecycle and the delivery
// guarantees.
type Manager struct {
	cfg      Config
	store    NotifierStore
	handlers map[Method]Handler
	// methodNames are the keys of handlers, sorted, as the store names them: what the
	// notifier leases.
	methodNames []string
	clock       quartz.Clock
	log         slog.Logger
	metrics     *Metrics
	registry    *Registry
	id          uuid.UUID

	// sent and failed buffer results until the store-sync loop writes them.
	sent   *resultBuffer[driver.SentResult]
	failed *resultBuffer[driver.FailedResult]
	// flushNow asks the store-sync loop to flush before its next tick (a buffer filled).
	flushNow chan struct{}
	// wake asks the notifier to lease now (new work).
	wake chan struct{}
	// notifier is the lease loop and its deliveries.
	notifier *notifier

	// seriesCache caches series; seriesMu serialises its writers.
	seriesCache atomic.Pointer[map[seriesKey]*deliverySeries]
	seriesMu    sync.Mutex

	// syncMu serialises flushes (and so guards each buffer's pending batch).
	syncMu sync.Mutex

	mu          sync.Mutex
	state       managerState
	runCancel   context.CancelFunc // cancels deliveries, sync, listen: the hard stop
	leaseCancel context.CancelFunc // stops leasing: the start of a graceful stop
	leaseDone   <-chan struct{}    // closed by leaseCancel (tests observe the stop)
	// deliveriesDone is closed when the notifier stopped leasing and every delivery it
	// started has returned (or the run context ended).
	deliveriesDone chan struct{}
	// done is closed when every goroutine the Manager started has returned.
	done chan struct{}

	testHooks testHooks
}

type managerState int

const (
	stateIdle managerState = iota
	stateRunning
	stateStopped
)

// testHooks lets tests in this package observe states that no clock controls.
type testHooks struct {
	// waitingForSlot is called when the notifier has no free delivery slot and waits.
	waitingForSlot func()
	// leased is called after every lease attempt with the number of messages leased.
	leased func(n int)
	// buffered is called after a result is buffered.
	buffered func()
	// drained is called when a flush has taken a batch from a buffer (under the flush
	// lock, before the batch is counted as pending).
	drained func()
	// stopFlushing is called when Stop starts writing what is buffered.
	stopFlushing func()
}

// NewManager validates cfg and returns a Manager that delivers messages from store with
// handlers. It starts nothing; call Run.
func NewManager(store NotifierStore, handlers map[Method]Handler, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, xerrors.Errorf("new manager: %w", err)
	}
	if store == nil {
		return nil, xerrors.New("new manager: store must not be nil")
	}
	if len(handlers) == 0 {
		return nil, xerrors.New("new manager: handlers must register at least one Handler")
	}
	hs := make(map[Method]Handler, len(handlers))
	for method, h := range handlers {
		if method == "" {
			return nil, xerrors.New("new manager: handlers has a Handler for the empty method")
		}
		if h == nil {
			return nil, xerrors.Errorf("new manager: the Handler for method %q is nil", method)
		}
		hs[method] = h
	}
	clock, metrics, id := cfg.Clock, cfg.Metrics, cfg.NotifierID
	if clock == nil {
		clock = quartz.NewReal()
	}
	if metrics == nil {
		metrics = NewMetrics(nil, MetricsConfig{})
	}
	if id == uuid.Nil {
		id = uuid.New()
	}
	registry := cfg.Registry.orDefault()
	m := &Manager{
		cfg:            cfg,
		store:          store,
		handlers:       hs,
		clock:          clock,
		log:            cfg.Logger.Named("notifications").With(slog.F("notifier_id", id)),
		metrics:        metrics,
		registry:       registry,
		id:             id,
		sent:           newResultBuffer("sent", cfg.StoreSyncBufferSize, store.MarkSent),
		failed:         newResultBuffer("failed", cfg.StoreSyncBufferSize, store.MarkFailed),
		flushNow:       make(chan struct{}, 1),
		wake:           make(chan struct{}, 1),
		deliveriesDone: make(chan struct{}),
		done:           make(chan struct{}),
	}
	for _, method := range slices.Sorted(maps.Keys(hs)) {
		m.methodNames = append(m.methodNames, string(method))
	}
	m.seriesCache.Store(&map[seriesKey]*deliverySeries{})
	m.notifier = &notifier{m: m}
	return m, nil
}

// ID is the notifier ID this Manager leases under.
func (m *Manager) ID() uuid.UUID { return m.id }

// Run starts the Manager's goroutines and returns at once. The first lease happens as
// soon as the store's listener is ready — at once for memstore and a reachable pgstore —
// so that no enqueue made after Run can miss its wake-up; if the listener cannot start, at
// the first FetchInterval tick. Only the first call starts anything: a
// second call returns ErrManagerAlreadyRunning, and a call after Stop returns
// ErrManagerAlreadyClosed.
//
// ctx bounds the Manager's whole life, so pass a context that lives as long as the
// Manager should (not a request's, and not one that shutdown cancels before Stop).
// Cancelling it is a hard stop: deliveries are cancelled and their messages stay leased
// until the lease expires (at-least-once); results already buffered are kept, and a later
// Stop writes them. Use Stop for a graceful stop.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateRunning:
		return xerrors.Errorf("run manager: %w", ErrManagerAlreadyRunning)
	case stateStopped:
		return xerrors.Errorf("run manager: %w", ErrManagerAlreadyClosed)
	}
	m.state = stateRunning
	runCtx, runCancel := context.WithCancel(ctx)
	leaseCtx, leaseCancel := context.WithCancel(runCtx)
	m.runCancel, m.leaseCancel = runCancel, leaseCancel
	m.leaseDone = leaseCtx.Done()
	go m.run(runCtx, leaseCtx)
	return nil
}

func (m *Manager) run(runCtx, leaseCtx context.Context) {
	defer close(m.done)
	var wg sync.WaitGroup
	// listening is closed when the store's listener is ready (its first wake call) or has
	// returned: the notifier's first lease waits for it, so that no enqueue made after Run
	// can miss its wake-up.
	listening := make(chan struct{})
	var listenOnce sync.Once
	ready := func() { listenOnce.Do(func() { close(listening) }) }
	wg.Go(func() {
		var started atomic.Bool
		err := m.store.Listen(leaseCtx, func() {
			if started.CompareAndSwap(false, true) {
				ready()
				return
			}
			m.Wake()
		})
		ready()
		if err != nil && leaseCtx.Err() == nil {
			m.log.Warn(runCtx, "store listener stopped; relying on polling", slog.Error(err))
		}
	})
	syncTicker := m.clock.TickerFunc(runCtx, m.cfg.StoreSyncInterval, func() error {
		m.syncUpdates(runCtx)
		return nil
	}, "Manager", "storeSync")
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-m.flushNow:
				m.syncUpdates(runCtx)
			}
		}
	})
	if m.cfg.RetentionPeriod > 0 {
		purgeTicker := m.clock.TickerFunc(runCtx, purgeInterval(m.cfg.RetentionPeriod), func() error {
			n, err := m.store.PurgeMessages(runCtx, driver.PurgeParams{
				MessagesOlderThan:  m.cfg.RetentionPeriod,
				ReadInboxOlderThan: m.cfg.InboxRetentionPeriod,
			})
			if err != nil && runCtx.Err() == nil {
				m.log.Warn(runCtx, "purge finished messages", slog.Error(err))
			} else if n > 0 {
				m.log.Debug(runCtx, "purged finished messages", slog.F("count", n))
			}
			return nil
		}, "Manager", "purge")
		wg.Go(func() { _ = purgeTicker.Wait() })
	}
	if counter, ok := m.store.(pendingCounter); ok {
		pendingTicker := m.clock.TickerFunc(runCtx, pendingCheckInterval, func() error {
			m.checkPending(runCtx, counter)
			return nil
		}, "Manager", "pending")
		wg.Go(func() { _ = pendingTicker.Wait() })
	}

	n := m.notifier
	n.run(runCtx, leaseCtx, listening)
	close(m.deliveriesDone)

	_ = syncTicker.Wait()
	wg.Wait()
}

// purgeInterval is how often finished messages are purged: a tenth of the retention, at
// least a minute and at most an hour.
func purgeInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Minute), time.Hour)
}

// Wake asks the notifier to lease now instead of at its next FetchInterval tick. Stores
// that support Listen call it on every enqueue; a host may call it too. It never blocks.
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Stop stops leasing, waits for in-flight deliveries, writes every buffered result to the
// store and returns. It is safe to call before Run, after a hard stop (it then writes
// what was buffered) and more than once.
//
// ctx bounds the whole stop. When it ends first, deliveries still running are cancelled
// (their messages stay leased and are delivered again after the lease expires) and Stop
// returns an error wrapping ctx.Err() that says how many deliveries it cancelled and how
// many results are still buffered. Buffered results are kept: a later Stop writes them.
// Stop returns nil only when nothing is left unwritten.
func (m *Manager) Stop(ctx context.Context) error {
	return m.stop(ctx, false)
}

// StopAndCancel is the explicit hard stop: it stops leasing and cancels in-flight
// deliveries at once (their messages stay leased and are delivered again after the lease
// expires), then, like Stop, writes every result already buffered and waits for the
// Manager's goroutines, bounded by ctx. Use it when shutdown cannot wait for slow
// receivers.
func (m *Manager) StopAndCancel(ctx context.Context) error {
	return m.stop(ctx, true)
}

// Stopped returns a channel that is closed once every goroutine of the Manager has
// returned: after Stop or StopAndCancel, or once Run's context ended and the last delivery
// returned. For a Manager that never ran it is closed by Stop.
func (m *Manager) Stopped() <-chan struct{} { return m.done }

func (m *Manager) stop(ctx context.Context, cancelDeliveries bool) error {
	m.mu.Lock()
	prev, ran := m.state, m.leaseCancel != nil
	m.state = stateStopped
	m.mu.Unlock()
	if !ran {
		if prev == stateIdle {
			// Never ran (and now never will): nothing to wait for.
			close(m.deliveriesDone)
			close(m.done)
		}
		return nil
	}

	m.leaseCancel()
	if cancelDeliveries {
		m.runCancel()
	}
	select {
	case <-m.deliveriesDone:
	default:
		select {
		case <-m.deliveriesDone:
		case <-ctx.Done():
			running := m.notifier.running()
			m.runCancel()
			s, f := m.BufferedUpdatesCount()
			cancelled := ""
			if running > 0 {
				cancelled = fmt.Sprintf("%d deliveries were still running and are cancelled (their messages stay leased until the lease expires); ", running)
			}
			return xerrors.Errorf("stop manager: %s%d sent and %d failed results are buffered (a later Stop writes them): %w",
				cancelled, s, f, ctx.Err())
		}
	}
	if err := m.flushAll(ctx); err != nil {
		m.runCancel()
		return err
	}
	m.runCancel()
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return xerrors.Errorf("stop manager: %w", ctx.Err())
	}
}

// flushAll writes buffered results until none are left, retrying failed writes until ctx
// ends. It decides that nothing is left under the flush lock, so a flush that the ticker
// started (its batch taken from the buffer, not yet written) is waited for, never missed.
func (m *Manager) flushAll(ctx context.Context) error {
	if h := m.testHooks.stopFlushing; h != nil {
		h()
	}
	for {
		ok, left := m.syncUpdates(ctx)
		if left == 0 {
			return nil
		}
		if ok {
			continue // more than one batch was buffered
		}
		// A write failed; the batch is retained. Retry after a short pause unless the
		// context ends first.
		t := m.clock.NewTimer(stopFlushRetry, "Manager", "stopFlushRetry")
		select {
		case <-ctx.Done():
			t.Stop()
			s, f := m.BufferedUpdatesCount()
			return xerrors.Errorf("stop manager: %d sent and %d failed results could not be written (they stay buffered for a later Stop; their messages are delivered again after the lease expires if none succeeds): %w",
				s, f, ctx.Err())
		case <-t.C:
		}
	}
}

const stopFlushRetry = 100 * time.Millisecond

// BufferedUpdatesCount reports how many success and failure results are buffered and not
// yet written to the store.
func (m *Manager) BufferedUpdatesCount() (success, failure int) {
	return m.sent.buffered(), m.failed.buffered()
}

// syncUpdates writes at most one batch of each kind (StoreSyncBufferSize rows) and reports
// whether every write it tried succeeded and how many results are left buffered, counted
// under the flush lock (so a batch another flush has taken but not written is counted).
func (m *Manager) syncUpdates(ctx context.Context) (ok bool, left int) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	okSent := flush(ctx, m, m.sent)
	okFailed := flush(ctx, m, m.failed)
	return okSent && okFailed, m.sent.bufferedLocked() + m.failed.bufferedLocked()
}

// resultBuffer is one of the Manager's two result buffers: a bounded channel that
// deliveries push into, and the batch taken from it that is being written, or whose write
// failed and is written again before anything newer.
type resultBuffer[T any] struct {
	kind  string
	ch    chan T
	write func(ctx context.Context, notifierID uuid.UUID, batch []T) (int, error)
	// pending is guarded by Manager.syncMu; count mirrors len(pending) for
	// BufferedUpdatesCount, which does not take the lock.
	pending []T
	count   atomic.Int64
}

func newResultBuffer[T any](kind string, size int, write func(context.Context, uuid.UUID, []T) (int, error)) *resultBuffer[T] {
	return &resultBuffer[T]{kind: kind, ch: make(chan T, size), write: write}
}

func (b *resultBuffer[T]) buffered() int { return len(b.ch) + int(b.count.Load()) }

// bufferedLocked is buffered for callers that hold Manager.syncMu: exact, since no flush
// is between taking a batch and recording it.
func (b *resultBuffer[T]) bufferedLocked() int { return len(b.ch) + len(b.pending) }

// flush writes b's pending batch, or a new one of at most cap(b.ch) results, and reports
// whether it succeeded (true when there was nothing to write). Callers hold m.syncMu.
func flush[T any](ctx context.Context, m *Manager, b *resultBuffer[T]) bool {
	if len(b.pending) == 0 && len(b.ch) > 0 { // an empty buffer needs no batch allocated
		b.pending = drain(b.ch, make([]T, 0, cap(b.ch)))
		if h := m.testHooks.drained; h != nil && len(b.pending) > 0 {
			h()
		}
		b.count.Store(int64(len(b.pending)))
	}
	size := len(b.pending)
	if size == 0 {
		return true
	}
	changed, err := b.write(ctx, m.id, b.pending)
	if err != nil {
		m.log.Warn(ctx, "write delivery results; will retry", slog.F("kind", b.kind), slog.F("count", size), slog.Error(err))
		return false
	}
	b.pending = nil
	b.count.Store(0)
	m.metrics.PendingUpdates.Sub(float64(size))
	m.metrics.SyncedUpdates.Add(float64(size))
	if changed < size {
		m.log.Debug(ctx, "some results were stale (lease expired and the message was leased again) and changed nothing",
			slog.F("kind", b.kind), slog.F("stale", size-changed))
	}
	return true
}

// drain moves what is buffered in ch, up to cap(dst), into dst without blocking.
func drain[T any](ch <-chan T, dst []T) []T {
	for len(dst) < cap(dst) {
		select {
		case v := <-ch:
			dst = append(dst, v)
		default:
			return dst
		}
	}
	return dst
}
