package pgstore

import "github.com/coder/quartz"

// StatusExpr is a message's status as the API reports it, over a row aliased m, for tests
// that read the table directly.
const StatusExpr = statusExpr

// MigrateTo migrates up to a given version, for tests that start from an older schema.
var MigrateTo = migrateTo

// WakesSent is how many NOTIFY statements s (and its WithTx copies) have sent.
func (s *Store) WakesSent() int { return s.wakesSent() }

// WithTestClock returns cfg with the store reading "now" from c instead of the database,
// for tests with a mock clock (production reads the database's clock, the one every
// replica shares). Unless WakeInterval says otherwise, wake-ups are then not paced, so
// that no timer of the store waits on a mock clock.
func (cfg Config) WithTestClock(c quartz.Clock) Config {
	cfg.clock = c
	return cfg
}

// WakerIdle reports whether s has no wake-up in flight or pacing.
func (s *Store) WakerIdle() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return !s.w.running
}
