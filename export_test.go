package notifications

// SetTestHooks installs observation hooks; call it before Run.
func SetTestHooks(m *Manager, leased func(n int), waitingForSlot func(), buffered func()) {
	m.testHooks = testHooks{leased: leased, waitingForSlot: waitingForSlot, buffered: buffered}
}
