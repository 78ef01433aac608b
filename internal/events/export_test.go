package events

// SlowPingAcknowledgement makes the pinger run f between a ping's commit and telling the
// listener about it, until the returned function restores it.
func SlowPingAcknowledgement(f func()) (restore func()) {
	pingCommitted = f
	return func() { pingCommitted = nil }
}
