package pgstore

// MigrateTo migrates up to a given version, for tests that start from an older schema.
var MigrateTo = migrateTo

// WakesSent is how many NOTIFY statements s (and its WithTx copies) have sent.
func (s *Store) WakesSent() int { return s.wakesSent() }
