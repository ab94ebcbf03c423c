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
	group    *dispatchGroup
	deadline time.Time
	timer    *quartz.Timer
	// prev and next link the context into its group while it is live.
	prev, next *dispatchContext

	mu       sync.Mutex
	done     chan struct{} // made by the first Done call, or by end
	err      error
	timedOut bool // the dispatch deadline (not the parent) ended it
}

var _ context.Context = (*dispatchContext)(nil)

// The clock tags of a dispatch, allocated once.
var (
	dispatchDeadlineTags = []string{"Manager", "dispatchDeadline"}
	dispatchTimeoutTags  = []string{"Manager", "dispatchTimeout"}
)

// dispatchGroup ends the live dispatch contexts of one run when its context ends: one
// context.AfterFunc for the run rather than one per delivery.
type dispatchGroup struct {
	parent context.Context
	unhook func() bool

	mu    sync.Mutex
	ended bool
	head  *dispatchContext // the live contexts
}

func newDispatchGroup(parent context.Context) *dispatchGroup {
	g := &dispatchGroup{parent: parent}
	g.unhook = context.AfterFunc(parent, g.endAll)
	return g
}

// endAll ends every live context with the parent's error, and any made later at once.
func (g *dispatchGroup) endAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = true
	err := g.parent.Err()
	for c := g.head; c != nil; c = c.next {
		c.end(err, false)
	}
}

// close stops watching the parent; call it once no context of the group is live.
func (g *dispatchGroup) close() { g.unhook() }

func (g *dispatchGroup) add(c *dispatchContext) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		c.end(g.parent.Err(), false)
		return
	}
	c.next = g.head
	if g.head != nil {
		g.head.prev = c
	}
	g.head = c
}

func (g *dispatchGroup) remove(c *dispatchContext) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.prev != nil {
		c.prev.next = c.next
	} else if g.head == c {
		g.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

func newDispatchContext(group *dispatchGroup, clock quartz.Clock, timeout time.Duration) *dispatchContext {
	c := &dispatchContext{
		parent:   group.parent,
		group:    group,
		deadline: clock.Now(dispatchDeadlineTags...).Add(timeout),
	}
	group.add(c)
	c.timer = clock.AfterFunc(timeout, func() { c.end(context.DeadlineExceeded, true) }, dispatchTimeoutTags...)
	return c
}

// Deadline is the dispatch deadline, or the parent's when that is earlier.
func (c *dispatchContext) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *dispatchContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

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
	if c.done != nil {
		close(c.done)
	}
}

// exceeded reports whether the dispatch deadline ended the context.
func (c *dispatchContext) exceeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timedOut
}

// stop releases the timer and leaves the group, and ends the context (contexts derived
// from it are released too).
func (c *dispatchContext) stop() {
	c.group.remove(c)
	c.timer.Stop()
	c.end(context.Canceled, false)
}
