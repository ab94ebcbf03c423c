package notifications

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"cdr.dev/slog"
	"github.com/notifykit/notifications/driver"
	"golang.org/x/xerrors"
)

// notifier is the lease loop of a Manager and the deliveries it starts.
type notifier struct {
	m *Manager

	inflight atomic.Int64
	freed    chan struct{} // a delivery slot was freed (coalesced)

	// Deliveries run on workers that stay for the next message instead of one goroutine
	// per message: rendering grows a goroutine's stack, and copying fresh stacks was a
	// quarter of the Go CPU of a drain. There are at most LeaseCount workers (the slots
	// bound them); idle ones wait on tasks, which run closes when it returns.
	tasks chan *driver.LeasedMessage
	wg    sync.WaitGroup
	// dispatches ends the deliveries' contexts when the run context ends.
	dispatches *dispatchGroup
}

// run leases and starts deliveries until leaseCtx ends, then waits for the deliveries it
// started (which end early only if runCtx ends). The first lease waits until the store's
// listener is ready (or the first fetch tick).
func (n *notifier) run(runCtx, leaseCtx context.Context, listening <-chan struct{}) {
	m := n.m
	n.freed = make(chan struct{}, 1)
	n.tasks = make(chan *driver.LeasedMessage)
	n.dispatches = newDispatchGroup(runCtx)
	defer func() {
		close(n.tasks) // idle workers exit; busy ones exit after their delivery
		n.wg.Wait()
		n.dispatches.close()
	}()

	ticker := m.clock.NewTicker(m.cfg.FetchInterval, "Manager", "fetch")
	defer ticker.Stop()
	select {
	case <-listening:
	case <-ticker.C:
	case <-leaseCtx.Done():
		return
	}

	for leaseCtx.Err() == nil {
		avail := n.available()
		if avail <= 0 {
			if h := m.testHooks.waitingForSlot; h != nil {
				h()
			}
			select {
			case <-n.freed:
				continue
			case <-leaseCtx.Done():
				return
			}
		}
		// The lease runs on runCtx, not leaseCtx: a graceful Stop must not cancel a lease
		// statement the store may already have committed, or its messages would sit
		// leased, undelivered, until LeasePeriod expires. What it returns is delivered.
		msgs, err := m.store.LeaseMessages(runCtx, driver.LeaseParams{
			NotifierID:  m.id,
			Methods:     m.methodNames,
			Limit:       avail,
			LeasePeriod: m.cfg.LeasePeriod,
			MaxAttempts: m.cfg.MaxSendAttempts,
		})
		if err != nil {
			if runCtx.Err() != nil {
				return
			}
			m.log.Warn(leaseCtx, "lease messages; will retry at the next wake-up or fetch tick", slog.Error(err))
		}
		if len(msgs) > avail {
			m.log.Error(leaseCtx, "the store returned more messages than asked for, which breaks the Store contract; delivering them all",
				slog.F("limit", avail), slog.F("returned", len(msgs)))
		}
		for i := range msgs {
			n.start(runCtx, &msgs[i])
		}
		if h := m.testHooks.leased; h != nil && err == nil {
			h(len(msgs))
		}
		if err == nil && len(msgs) >= avail {
			// A full batch: there is probably more, so lease again as soon as a slot frees.
			continue
		}
		select {
		case <-m.wake:
		case <-ticker.C:
		case <-leaseCtx.Done():
			return
		}
	}
}

func (n *notifier) available() int {
	return n.m.cfg.LeaseCount - n.running()
}

// start hands msg to an idle worker, or starts a worker for it.
func (n *notifier) start(runCtx context.Context, msg *driver.LeasedMessage) {
	n.inflight.Add(1)
	select {
	case n.tasks <- msg:
	default:
		n.wg.Go(func() { n.work(runCtx, msg) })
	}
}

// work delivers msg, then every message handed to it, until tasks is closed. A handler
// that ends its goroutine (runtime.Goexit) ends this worker too, after its slot is
// released and its message recorded; start makes a new worker when no idle one takes a
// message.
func (n *notifier) work(runCtx context.Context, msg *driver.LeasedMessage) {
	for {
		n.deliverAndRelease(runCtx, msg)
		next, ok := <-n.tasks
		if !ok {
			return
		}
		msg = next
	}
}

// deliverAndRelease delivers msg and frees its slot, even if the handler ends the
// goroutine.
func (n *notifier) deliverAndRelease(runCtx context.Context, msg *driver.LeasedMessage) {
	defer n.release()
	n.deliver(runCtx, msg)
}

func (n *notifier) release() {
	n.inflight.Add(-1)
	select {
	case n.freed <- struct{}{}:
	default:
	}
}

// running is how many deliveries are in flight.
func (n *notifier) running() int {
	return int(n.inflight.Load())
}

// deliver renders and delivers one message and buffers its result. The delivery slot is
// released only once the result is buffered, so full buffers hold back leasing.
func (n *notifier) deliver(runCtx context.Context, msg *driver.LeasedMessage) {
	m := n.m
	series := m.series(msg.Method, msg.TemplateID)
	if msg.AttemptCount <= 1 {
		// Enqueue to first lease only: later leases would count retry backoff as queueing.
		series.queued.Observe(msg.LeasedAt.Sub(msg.CreatedAt).Seconds())
	} else {
		series.retries.Observe(float64(msg.AttemptCount))
	}

	if msg.Disabled {
		n.fail(runCtx, msg, series, StatusInhibited, "disabled by user", 0, 0)
		return
	}
	retryable, delivered, took, err := n.attempt(runCtx, msg, series)
	if !delivered {
		return // the handler ended the goroutine; attempt recorded the failure
	}
	if runCtx.Err() != nil {
		// Hard stop: the outcome may be a cancellation rather than the handler's answer.
		// Leave the message leased; it is delivered again after the lease expires.
		m.log.Debug(runCtx, "run context ended during delivery; message stays leased", slog.F("msg_id", msg.ID))
		return
	}
	switch {
	case err == nil:
		series.sent.Inc()
		push(runCtx, m, m.sent.ch, driver.SentResult{ID: msg.ID, AttemptCount: msg.AttemptCount, Duration: took})
	case retryable && msg.AttemptCount < m.cfg.MaxSendAttempts:
		n.fail(runCtx, msg, series, StatusTemporaryFailure, err.Error(), n.retryDelay(msg.AttemptCount, err), took)
	case retryable:
		n.fail(runCtx, msg, series, StatusPermanentFailure,
			fmt.Sprintf("giving up after %d attempts: %s", msg.AttemptCount, err), 0, took)
	default:
		n.fail(runCtx, msg, series, StatusPermanentFailure, err.Error(), 0, took)
	}
}

// attempt prepares and runs one delivery. A panic anywhere in it (rendering, the
// handler's Dispatcher, a host helper, the DeliveryFunc) becomes a permanent failure that
// carries the panic text. If the handler ends the goroutine (runtime.Goexit, which
// t.FailNow calls), attempt records a permanent failure on the way out and reports
// delivered=false; the goroutine then ends. took is how long the DeliveryFunc ran.
func (n *notifier) attempt(runCtx context.Context, msg *driver.LeasedMessage, series *deliverySeries) (retryable, delivered bool, took time.Duration, err error) {
	m := n.m
	returned := false
	defer func() {
		if r := recover(); r != nil {
			m.log.Error(runCtx, "handler panicked", slog.F("msg_id", msg.ID), slog.F("panic", fmt.Sprint(r)),
				slog.F("stack", string(debug.Stack())))
			retryable, err, delivered = false, xerrors.Errorf("handler panicked: %v", r), true
			return
		}
		if !returned {
			m.log.Error(runCtx, "handler called runtime.Goexit", slog.F("msg_id", msg.ID))
			n.fail(runCtx, msg, series, StatusPermanentFailure, "handler called runtime.Goexit (t.FailNow?) instead of returning", 0, 0)
		}
	}()

	deliver, err := n.prepare(msg)
	if err != nil {
		returned = true
		return isRetryable(err, false), true, 0, err
	}
	series.inflight.Inc()
	defer series.inflight.Dec()
	start := m.clock.Now()
	ctx := newDispatchContext(n.dispatches, m.clock, m.cfg.DispatchTimeout)
	defer ctx.stop()
	retryable, err = deliver(ctx, msg.ID)
	returned = true
	took = m.clock.Since(start)
	series.send.Observe(took.Seconds())
	if err != nil && ctx.exceeded() {
		err = xerrors.Errorf("delivery exceeded DispatchTimeout (%s): %w", m.cfg.DispatchTimeout, err)
	}
	return isRetryable(err, retryable), true, took, err
}

// prepare decodes the payload, renders title and body and asks the method's handler for a
// delivery function. Its errors are permanent unless marked with Retryable.
func (n *notifier) prepare(msg *driver.LeasedMessage) (DeliveryFunc, error) {
	m := n.m
	h, ok := m.handlers[Method(msg.Method)]
	if !ok {
		// The store leases only the methods this Manager has handlers for.
		return nil, fmt.Errorf("%w %q (the store leased a method this Manager did not ask for)", errUnknownMethod, msg.Method)
	}
	payload, err := DecodePayload(msg.Payload)
	if err != nil {
		return nil, err
	}
	title, body, err := m.registry.render.titleBody(msg.TitleTemplate, msg.BodyTemplate, payload)
	if err != nil {
		return nil, xerrors.Errorf("template %q: %w", msg.TemplateName, err)
	}
	deliver, err := h.Dispatcher(payload, title, body, m.registry.helpers)
	if err != nil {
		return nil, xerrors.Errorf("prepare %s delivery: %w", msg.Method, err)
	}
	if deliver == nil {
		return nil, xerrors.Errorf("prepare %s delivery: handler returned no delivery function", msg.Method)
	}
	return deliver, nil
}

// retryDelay is the delay before a retry of a message that failed attempt with err: the
// delay err asks for (RetryAfter), or RetryInterval doubled per earlier attempt, spread by
// RetryJitter; always between 0 and MaxRetryInterval.
func (n *notifier) retryDelay(attempt int, err error) time.Duration {
	cfg := n.m.cfg
	if d, ok := retryAfterDelay(err); ok {
		return min(d, cfg.MaxRetryInterval)
	}
	d := cfg.RetryInterval
	for i := 1; i < attempt && d < cfg.MaxRetryInterval; i++ {
		d *= 2 // both are at most 30 days (Validate): no overflow
	}
	d = min(d, cfg.MaxRetryInterval)
	if cfg.RetryJitter > 0 {
		spread := float64(d) * cfg.RetryJitter
		d += time.Duration((rand.Float64()*2 - 1) * spread)
	}
	return min(max(d, 0), cfg.MaxRetryInterval)
}

func (n *notifier) fail(ctx context.Context, msg *driver.LeasedMessage, series *deliverySeries, status Status, reason string, delay, took time.Duration) {
	m := n.m
	m.metrics.DispatchAttempts.WithLabelValues(msg.Method, series.template, string(status)).Inc()
	if status != StatusInhibited {
		m.log.Debug(ctx, "delivery failed", slog.F("msg_id", msg.ID), slog.F("status", status),
			slog.F("attempt", msg.AttemptCount), slog.F("reason", reason))
	}
	push(ctx, m, m.failed.ch, driver.FailedResult{
		ID: msg.ID, AttemptCount: msg.AttemptCount, Status: string(status), Reason: reason, RetryDelay: delay, Duration: took,
	})
}

// push buffers a result, asking for a flush when the buffer is full and blocking until
// there is room (backpressure). If ctx ends first the result is dropped and the message
// stays leased, to be delivered again after its lease expires.
func push[T any](ctx context.Context, m *Manager, ch chan T, v T) {
	select {
	case ch <- v:
	default:
		m.requestFlush()
		select {
		case ch <- v:
		case <-ctx.Done():
			m.log.Debug(ctx, "run context ended with a result unbuffered; message stays leased")
			return
		}
	}
	m.metrics.PendingUpdates.Inc()
	if len(ch) == cap(ch) {
		m.requestFlush()
	}
	if h := m.testHooks.buffered; h != nil {
		h()
	}
}

func (m *Manager) requestFlush() {
	select {
	case m.flushNow <- struct{}{}:
	default:
	}
}
