// Package fanout delivers values to per-key subscribers without ever blocking the sender.
package fanout

import (
	"context"
	"sync"
)

// Hub fans values out to the subscribers of a key. The zero value is not usable; use New.
type Hub[K comparable, V any] struct {
	mu     sync.Mutex
	subs   map[K]map[chan V]struct{}
	buffer int
}

// New returns a hub whose subscriber channels buffer this many values. A value for a
// subscriber whose buffer is full is dropped for that subscriber.
func New[K comparable, V any](buffer int) *Hub[K, V] {
	return &Hub[K, V]{subs: make(map[K]map[chan V]struct{}), buffer: buffer}
}

// Subscribe returns a channel of key's values until ctx ends; the channel is closed then.
func (h *Hub[K, V]) Subscribe(ctx context.Context, key K) <-chan V {
	ch := make(chan V, h.buffer)
	h.mu.Lock()
	if h.subs[key] == nil {
		h.subs[key] = make(map[chan V]struct{})
	}
	h.subs[key][ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[key], ch)
		if len(h.subs[key]) == 0 {
			delete(h.subs, key)
		}
		close(ch)
	})
	return ch
}

// Has reports whether key has subscribers.
func (h *Hub[K, V]) Has(key K) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[key]) > 0
}

// Publish sends v to key's subscribers, dropping it for any whose buffer is full.
func (h *Hub[K, V]) Publish(key K, v V) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[key] {
		select {
		case ch <- v:
		default:
		}
	}
}

// Keys returns the keys that have subscribers.
func (h *Hub[K, V]) Keys() []K {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]K, 0, len(h.subs))
	for k := range h.subs {
		out = append(out, k)
	}
	return out
}
