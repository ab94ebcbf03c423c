package notifications

// SetTestHooks installs observation hooks; call it before Run.
func SetTestHooks(m *Manager, leased func(n int), waitingForSlot func(), buffered func()) {
	m.testHooks = testHooks{leased: leased, waitingForSlot: waitingForSlot, buffered: buffered}
}

// StopRequested is closed once a graceful stop has begun (leasing is cancelled); call it
// after Run.
func (m *Manager) StopRequested() <-chan struct{} { return m.leaseDone }

// SetFlushHooks installs hooks called when a flush has taken a batch from a buffer (under
// the flush lock) and when Stop starts writing what is buffered; call it before Run.
func SetFlushHooks(m *Manager, drained, stopFlushing func()) {
	m.testHooks.drained, m.testHooks.stopFlushing = drained, stopFlushing
}
