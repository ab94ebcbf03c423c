package notifications

// SetTestHooks installs observation hooks; call it before Run.
func SetTestHooks(m *Manager, leased func(n int), waitingForSlot func(), buffered func()) {
	m.testHooks = testHooks{leased: leased, waitingForSlot: waitingForSlot, buffered: buffered}
}

// StopRequested is closed once a graceful stop has begun (leasing is cancelled); call it
// after Run.
func (m *Manager) StopRequested() <-chan struct{} { return m.leaseDone }
