package notifications

import (
	"context"
	"sync"
	"time"

	"github.com/coder/quartz"
)

// dispatchContext is the context a DeliveryFunc runs with: its parent's values and
// cancellation, plus the DispatchTimeout deadline measured on the Manager's clock. The
// standard library's context.WithDeadline reads the wall clock and so cannot follow a mock
// clock; this one reports the deadline through Deadline and ends with
// context.DeadlineExceeded when the Manager's clock reaches it, so handlers (and the
// contexts they derive) can tell a timeout from a shutdown.
type dispatchContext struct {
	parent   context.Context
	deadline time.Time
	done     chan struct{}
	timer    *quartz.Timer
	unhook   func() bool

	mu       sync.Mutex
	err      error
	timedOut bool // the dispatch deadline (not the parent) ended it
}

var _ context.Context = (*dispatchContext)(nil)

func newDispatchContext(parent context.Context, clock quartz.Clock, timeout time.Duration) *dispatchContext {
	c := &dispatchContext{
		parent:   parent,
		deadline: clock.Now("Manager", "dispatchDeadline").Add(timeout),
		done:     make(chan struct{}),
	}
	c.unhook = context.AfterFunc(parent, func() { c.end(parent.Err(), false) })
	c.timer = clock.AfterFunc(timeout, func() { c.end(context.DeadlineExceeded, true) }, "Manager", "dispatchTimeout")
	return c
}

// Deadline is the dispatch deadline, or the parent's when that is earlier.
func (c *dispatchContext) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *dispatchContext) Done() <-chan struct{} { return c.done }

func (c *dispatchContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *dispatchContext) Value(key any) any { return c.parent.Value(key) }

func (c *dispatchContext) String() string { return "notifications.dispatchContext" }

// end ends the context with err unless it has ended already.
func (c *dispatchContext) end(err error, byDeadline bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err, c.timedOut = err, byDeadline
	close(c.done)
}

// exceeded reports whether the dispatch deadline ended the context.
func (c *dispatchContext) exceeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timedOut
}

// stop releases the timer and the parent hook and ends the context (contexts derived
// from it are released too).
func (c *dispatchContext) stop() {
	c.unhook()
	c.timer.Stop()
	c.end(context.Canceled, false)
}
