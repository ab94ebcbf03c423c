package pgstore

import (
	"context"
	"sync"
	"time"

	"cdr.dev/slog"
)

// Wake-ups are never sent inside the host's transaction: PostgreSQL serialises the commits
// of every transaction that sent a NOTIFY (a cluster-wide lock is held through the commit
// and its WAL flush), so a pg_notify in the host's transaction would serialise the host's
// own writes. An enqueue in the host's transaction leaves the wake-up to Wake, called after
// the commit, or to the one the store sends TxWakeDelay later.
//
// Wake-ups are coalesced per store: at most one starts per wake interval
// (Config.WakeInterval, default DefaultWakeInterval), and Wake has at most one NOTIFY in
// flight; wake-ups asked for meanwhile are folded into a single NOTIFY sent when the
// interval ends. An idle store notifies at once: an enqueue outside a transaction then
// carries the NOTIFY in its own implicit transaction (claimInlineWake), so that the
// listeners are woken by its commit, one round trip sooner than by a NOTIFY sent after
// it. Wake sends
// its NOTIFY from a connection of the pool, in a transaction that commits with
// synchronous_commit off: it carries no data, so it need not wait for a WAL flush. The
// notifiers' poll (Config.FetchInterval) remains the safety net for a lost wake-up.

// DefaultWakeInterval is the shortest time between two wake-up NOTIFYs of a store (see
// Config.WakeInterval). Under a stream of enqueues it bounds the NOTIFYs to 200 a second per
// store, and delays a wake-up by at most this much; a notifier that is busy leases again
// on its own after every full batch.
const DefaultWakeInterval = 5 * time.Millisecond

// TxWakeDelay is how long after an enqueue in the host's transaction
// (StoreEnqueuer.SendTx) the store sends a wake-up on its own, for hosts that do not call
// Wake after committing. A transaction that commits later than that is found by Wake or by
// the notifiers' next poll.
const TxWakeDelay = 20 * time.Millisecond

// wakeSQL notifies channel $1 in a transaction that does not wait for its WAL flush.
const wakeSQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`

// inlineWakeIdle, in wake intervals, is how long a store must have sent no wake-up for an
// enqueue to carry the next one in its own transaction (claimInlineWake): an idle store's
// first enqueue wakes the notifiers one round trip sooner. Enqueues that come more often
// than that keep their NOTIFYs off their commits: a transaction that notified holds
// PostgreSQL's notification lock through its commit and its WAL flush, which Wake's own
// NOTIFY does not wait for, so at most one enqueue per two intervals of a store (100 a
// second by default) holds it that long.
const inlineWakeIdle = 2

// waker sends the coalesced wake-ups of one store and of its WithTx copies.
type waker struct {
	mu      sync.Mutex
	running bool      // a goroutine is sending or pacing
	dirty   bool      // a wake-up was asked for since the last NOTIFY started
	timer   bool      // a TxWakeDelay wake-up is scheduled
	last    time.Time // when the last NOTIFY started
	sent    int       // NOTIFY statements sent (for tests)
}

// Wake tells the notifiers listening on this store's schema, in every process, that new
// work may be available. Call it after committing a transaction in which you enqueued
// (StoreEnqueuer.SendTx or SendAtomicTx): the enqueue itself sends no notification inside your transaction (that
// would serialise your commits). Wake returns at once; the NOTIFY is sent from a
// connection of the pool, coalesced with other wake-ups of this store. Without it the
// store sends one TxWakeDelay after the enqueue, and the notifiers' poll finds what that
// missed. Enqueues outside a transaction wake the notifiers themselves. A PollOnly store
// sends wake-ups too (a NOTIFY works through a transaction pooler): other processes may
// listen on a connection of their own (Config.ListenerDSN).
func (s *Store) Wake() {
	if s.pool == nil {
		return
	}
	w := s.w
	w.mu.Lock()
	w.dirty = true
	if w.running {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.mu.Unlock()
	go s.sendWakes(false)
}

// wakeLater schedules one Wake TxWakeDelay from now unless one is already scheduled.
func (s *Store) wakeLater() {
	if s.pool == nil {
		return
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer {
		return
	}
	w.timer = true
	s.o.clock.AfterFunc(TxWakeDelay, func() {
		w.mu.Lock()
		w.timer = false
		w.mu.Unlock()
		s.Wake()
	}, "pgstore", "txWake")
}

// claimInlineWake reports whether the caller's statement, about to run in an implicit
// transaction on the store's pool, is to carry the store's next wake-up: pg_notify after
// it in that transaction, if it stored its messages, delivered by its commit (a refused
// or failed enqueue notifies nobody: there is nothing to wake for). It is when the store
// is idle: pacing is on, no wake-up is in flight or pacing, and none has started for
// inlineWakeIdle wake intervals. The wake interval starts at once, as after one of Wake's
// NOTIFYs, so a statement that waits (on a lock, say) holds back no other wake-up for
// longer than the interval, and at most one enqueue per inlineWakeIdle intervals carries
// a NOTIFY.
func (s *Store) claimInlineWake() bool {
	if s.pool == nil || s.o.wakeInterval <= 0 {
		return false
	}
	now := s.o.clock.Now("pgstore", "inlineWake")
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || (!w.last.IsZero() && now.Sub(w.last) < inlineWakeIdle*s.o.wakeInterval) {
		return false
	}
	w.running, w.dirty, w.last = true, false, now
	w.sent++
	go s.sendWakes(true)
	return true
}

// sendWakes sends NOTIFYs until no wake-up was asked for during the last one; with pace,
// it first waits out the wake interval of the NOTIFY an enqueue carries (claimInlineWake).
func (s *Store) sendWakes(pace bool) {
	w := s.w
	if pace {
		s.paceWakes()
	}
	for {
		now := s.o.clock.Now("pgstore", "wake")
		w.mu.Lock()
		if !w.dirty {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.dirty, w.last = false, now
		w.sent++
		w.mu.Unlock()

		// No deadline of its own: a NOTIFY stuck on an unreachable server holds back only
		// later wake-ups, which the notifiers' poll stands in for.
		_, err := s.pool.Exec(context.Background(), wakeSQL, s.channel())
		if err != nil {
			s.o.log.Warn(context.Background(), "send wake-up notification (notifiers will find the work at their next poll)",
				slog.F("channel", s.channel()), slog.Error(err))
		}
		s.paceWakes()
	}
}

// paceWakes waits out the wake interval after a NOTIFY.
func (s *Store) paceWakes() {
	if s.o.wakeInterval > 0 {
		t := s.o.clock.NewTimer(s.o.wakeInterval, "pgstore", "wakeInterval")
		<-t.C
	}
}

// wakesSent is how many NOTIFY statements the store has sent.
func (s *Store) wakesSent() int {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.sent
}
