//go:build unix

package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// On SQLite, Open and Migrate wait for the lock another process holds
// (goose does not lock SQLite: two processes would both create the
// tables), and name it when their context ends first.
func TestSQLiteWaitsForTheLock(t *testing.T) {
	db, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	unlock, err := lockFile(t.Context(), db.file+".lock") // another process, say
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(context.Context) error{
		"Migrate": func(ctx context.Context) error { return db.Migrate(ctx, quiet) },
		"Open": func(ctx context.Context) error {
			other, err := Open(ctx, Config{DataDir: strings.TrimSuffix(db.file, "/berth.db"), Logger: quiet})
			if err == nil {
				other.Close()
			}
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		err := f(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "held by another process opening or migrating the database") {
			t.Errorf("%s while the lock is held = %v, want it to wait for the lock", name, err)
		}
	}
	unlock()
	if err := db.Migrate(t.Context(), quiet); err != nil {
		t.Fatalf("Migrate once the lock is free: %v", err)
	}
}
