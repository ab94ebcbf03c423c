package pgstore

// WakesSent is how many NOTIFY statements s (and its WithTx copies) have sent.
func (s *Store) WakesSent() int { return s.wakesSent() }
