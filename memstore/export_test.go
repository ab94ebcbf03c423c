package memstore

// Visited returns how many messages the leases have looked at so far, over every method:
// the work of leasing, which must follow what a lease takes, not the backlog.
func (s *Store) Visited() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, q := range s.queues {
		n += q.visited
	}
	return n
}

// Examined returns how many messages the message queries have looked at so far.
func (s *Store) Examined() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.examined
}
