package berthtest

import "time"

// SetCleanupSlack sets what Cleanup's wait allows past the budget, for a
// test of that wait; it returns a function that puts it back.
func SetCleanupSlack(d time.Duration) (restore func()) {
	old := cleanupSlack
	cleanupSlack = d
	return func() { cleanupSlack = old }
}
