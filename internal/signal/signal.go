// Package signal broadcasts "something changed" to goroutines waiting for a condition,
// without polling and without lost wake-ups.
package signal

import (
	"context"
	"sync"
)

// Signal is a broadcast channel that is replaced on every Broadcast. The zero value is
// ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *Signal) current() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Broadcast wakes every current waiter.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil // the next waiter makes a new one: no allocation while nobody waits
	}
}

// Wait returns nil once cond holds, re-checking it after every Broadcast, or ctx's error.
// cond must read the state it checks under the state's own lock; Broadcast must follow
// every change that could make it true.
func (s *Signal) Wait(ctx context.Context, cond func() bool) error {
	for {
		ch := s.current() // taken before checking, so a Broadcast in between is not lost
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
