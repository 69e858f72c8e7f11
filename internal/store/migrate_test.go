package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// versionOne opens a new SQLite database and migrates it to version 1
// only, as a database from before version 2 is; p migrates it further.
func versionOne(t *testing.T, limits Limits) (db *DB, p *goose.Provider) {
	t.Helper()
	db, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: quiet, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = goose.NewProvider(goose.DialectSQLite3, db.db, dir, goose.WithDisableGlobalRegistry(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	return db, p
}

// A database made by the first schema (items WITHOUT ROWID) keeps its
// items, its count and its bound through the rebuild of version 2, and
// the rebuilt table's triggers count and bound as before.
func TestSQLiteRowidMigrationKeepsTheItems(t *testing.T) {
	ctx := t.Context()
	db, p := versionOne(t, Limits{MaxItems: 3})
	if _, err := db.db.ExecContext(ctx, "UPDATE item_count SET max = 3 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := db.Put(ctx, k, []byte(`{"k":"`+k+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(db.file + "-wal"); err != nil || st.Size() != 0 {
		t.Fatalf("the write-ahead log after migrating: %v, %v; want it cut back to nothing", st, err)
	}
	var ddl string
	if err := db.db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").Scan(&ddl); err != nil || strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("items after the migration: %q, %v", ddl, err)
	}
	for _, k := range []string{"a", "b"} {
		if v, err := db.Get(ctx, k); err != nil || string(v) != `{"k":"`+k+`"}` {
			t.Fatalf("item %s after the migration: %q, %v", k, v, err)
		}
	}
	if st, err := db.Stats(ctx); err != nil || st.Items != 2 {
		t.Fatalf("count after the migration: %+v, %v", st, err)
	}
	// Only WITHOUT ROWID tables make the primary key NOT NULL by themselves.
	if _, err := db.db.ExecContext(ctx, "INSERT INTO items (key, value) VALUES (NULL, x'31')"); err == nil {
		t.Fatal("the rebuilt table took a NULL key")
	}
	if _, err := db.Put(ctx, "c", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, "d", []byte(`1`)); err == nil {
		t.Fatal("a fourth item past the bound of 3 was stored: the insert trigger is gone")
	}
	if err := db.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if st, err := db.Stats(ctx); err != nil || st.Items != 2 {
		t.Fatalf("count after a delete: %+v, %v (the delete trigger)", st, err)
	}
	// and back down, for an operator who must return to the old binary
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").Scan(&ddl); err != nil || !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("items after the way down: %q, %v", ddl, err)
	}
	if v, err := db.Get(ctx, "b"); err != nil || string(v) != `{"k":"b"}` {
		t.Fatalf("item b after the way down: %q, %v", v, err)
	}
	if _, err := db.Put(ctx, "e", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, "f", []byte(`1`)); err == nil {
		t.Fatal("a fourth item past the bound of 3 was stored after the way down")
	}
}

// A rebuild that runs out of space changes nothing: the startup fails
// saying so, and the old table and its items stay as they were.
func TestSQLiteRowidMigrationOutOfSpaceChangesNothing(t *testing.T) {
	ctx := t.Context()
	db, p := versionOne(t, Limits{})
	db.db.SetMaxOpenConns(2) // the one Open pins and one for the work: the page limit below is the connection's
	value := []byte(`"` + strings.Repeat("x", 8<<10) + `"`)
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := db.Put(ctx, k, value); err != nil {
			t.Fatal(err)
		}
	}
	var pages int
	if err := db.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, quiet); !errors.Is(err, ErrOutOfSpace) {
		t.Fatalf("Migrate with no room for the copy = %v, want ErrOutOfSpace", err)
	}
	var ddl string
	if err := db.db.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").Scan(&ddl); err != nil || !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("items after the failed rebuild: %q, %v", ddl, err)
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != 1 {
		t.Fatalf("schema version after the failed rebuild = %d, %v; want 1", v, err)
	}
	if st, err := db.Stats(ctx); err != nil || st.Items != 4 {
		t.Fatalf("items after the failed rebuild: %+v, %v", st, err)
	}
}

// A migration's statement waits for another session's lock no longer than
// half a second, or a third of the database timeout when that is shorter,
// so a request queued behind it still has time to run; never 0, which
// PostgreSQL reads as no bound.
func TestLockTimeoutLeavesQueuedRequestsTheirTime(t *testing.T) {
	for _, tt := range []struct {
		dbTimeout, want time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1500 * time.Millisecond, 500 * time.Millisecond},
		{900 * time.Millisecond, 300 * time.Millisecond},
		{time.Microsecond, time.Millisecond},
	} {
		s := &DB{limits: Limits{Timeout: tt.dbTimeout}}
		if got := s.lockTimeout(); got != tt.want {
			t.Errorf("BERTH_DB_TIMEOUT %v: lock timeout %v, want %v", tt.dbTimeout, got, tt.want)
		}
	}
}
