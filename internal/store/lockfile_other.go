//go:build !unix

package store

import "context"

// lockFile takes no lock where flock is missing (Windows): berth's
// containers run on Linux, and a service run elsewhere is one process per
// SQLite file.
func lockFile(context.Context, string) (unlock func(), err error) {
	return func() {}, nil
}
