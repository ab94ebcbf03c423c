package memstore

import (
	"cmp"
	"container/heap"
	"container/list"
	"time"

	"github.com/notifykit/notifications"
)

// methodQueue holds one method's unfinished messages so that a lease reads only what it
// takes: pending messages in enqueue order, and leased or retrying messages in a min-heap
// by the time they become eligible again (lease expiry, retry time).
type methodQueue struct {
	pending *list.List
	timed   timedHeap
	visited int64 // messages dueLocked has looked at, for the tests (export_test.go)
}

func newMethodQueue() *methodQueue { return &methodQueue{pending: list.New()} }

// queueLocked returns the queue of method, creating it.
func (s *Store) queueLocked(method notifications.Method) *methodQueue {
	q, ok := s.queues[method]
	if !ok {
		q = newMethodQueue()
		s.queues[method] = q
	}
	return q
}

// dequeueLocked takes msg out of its method's pending list and timed heap.
func (s *Store) dequeueLocked(msg *message) {
	q := s.queues[msg.Method]
	if msg.elem != nil {
		q.pending.Remove(msg.elem)
		msg.elem = nil
	}
	if msg.hidx >= 0 {
		heap.Remove(&q.timed, msg.hidx)
	}
}

// scheduleLocked puts msg in its method's timed heap, eligible again at at.
func (s *Store) scheduleLocked(msg *message, at time.Time) {
	msg.eligibleAt = at
	heap.Push(&s.queueLocked(msg.Method).timed, msg)
}

// dueLocked returns up to limit messages of the method that are eligible at now, oldest
// first, without taking them out of the queue.
func (q *methodQueue) dueLocked(now time.Time, limit int) []*message {
	out := make([]*message, 0, min(limit, q.pending.Len()+len(q.timed)))
	for e := q.pending.Front(); e != nil && len(out) < limit; e = e.Next() {
		q.visited++
		out = append(out, e.Value.(*message))
	}
	// The earliest-eligible timed messages: pop them, then put them back.
	var popped []*message
	for len(q.timed) > 0 && len(popped) < limit {
		q.visited++
		if q.timed[0].eligibleAt.After(now) {
			break
		}
		popped = append(popped, heap.Pop(&q.timed).(*message))
	}
	for _, m := range popped {
		heap.Push(&q.timed, m)
	}
	return append(out, popped...)
}

// timedHeap is a min-heap of messages by eligibleAt (then enqueue order); each message
// knows its index (hidx, -1 when not in the heap).
type timedHeap []*message

func (h timedHeap) Len() int { return len(h) }
func (h timedHeap) Less(i, j int) bool {
	if c := h[i].eligibleAt.Compare(h[j].eligibleAt); c != 0 {
		return c < 0
	}
	return cmp.Less(h[i].seq, h[j].seq)
}
func (h timedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *timedHeap) Push(x any) {
	m := x.(*message)
	m.hidx = len(*h)
	*h = append(*h, m)
}
func (h *timedHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.hidx = -1
	return m
}
