package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// Migrate brings the schema up to the newest migration embedded in the
// binary, with goose. It holds a lock meanwhile, so processes starting
// together migrate one at a time (the others find nothing left to do): an
// advisory lock on PostgreSQL, and on SQLite, which goose does not lock,
// an flock on a file beside the database's (see locked). A database whose schema is newer than the binary knows is
// refused: this binary would misread it. Waiting for the lock lasts until
// ctx's deadline, if it has one. It then records the item bound
// (Limits.MaxItems) that the database enforces.
func (s *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	dir, err := fs.Sub(migrations, "migrations/"+map[string]string{"postgres": "postgres", "sqlite3": "sqlite"}[s.d.name])
	if err != nil {
		return err
	}
	return s.locked(ctx, func() error { return s.migrate(ctx, dir, log) })
}

// lockTries is how many times, a second apart, to try PostgreSQL's
// migration lock so that the wait for another process's migration lasts
// until ctx's deadline (the migrate hook's BERTH_MIGRATE_TIMEOUT), not
// goose's own five minutes; false without a deadline (goose's default).
func lockTries(ctx context.Context) (uint64, bool) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return uint64(max(1, math.Ceil(time.Until(deadline).Seconds()))), true
}

func (s *DB) migrate(ctx context.Context, dir fs.FS, log *slog.Logger) error {
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.d.name == "postgres" {
		var lockOpts []lock.SessionLockerOption
		if tries, ok := lockTries(ctx); ok {
			lockOpts = append(lockOpts, lock.WithLockTimeout(1, tries))
		}
		locker, err := lock.NewPostgresSessionLocker(lockOpts...)
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.Dialect(s.d.name), s.db, dir, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	sources := p.ListSources()
	known := sources[len(sources)-1].Version
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return s.failed("migrate", err)
	}
	if current > known {
		return fmt.Errorf("database %s has schema version %d, newer than this binary knows (%d): run a newer berth; or, if another application's goose migrations share this database (its goose_db_version table), give berth a database of its own", s.where, current, known)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return s.failed("migrate", err)
	}
	for _, r := range results {
		log.Info("migration applied", "database", s.where, "version", r.Source.Version, "file", r.Source.Path, slog.Float64("took_seconds", r.Duration.Seconds()))
	}
	// The item bound lives beside the count it bounds, for the triggers.
	if _, err := s.db.ExecContext(ctx, s.d.q("UPDATE item_count SET max = ? WHERE id = 1"), s.limits.MaxItems); err != nil {
		return s.failed("migrate", err)
	}
	if err := s.recount(ctx, log); err != nil {
		return s.failed("migrate", err)
	}
	if s.file != "" && len(results) > 0 {
		// A migration's writes (SQLite's version 2 copies the whole items
		// table) went through the WAL, which keeps its size once grown:
		// fold them into the file and cut the WAL back to nothing. Pages
		// the copy freed stay in the file for later items; only VACUUM
		// would give them back to the volume.
		if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			log.Warn("could not shrink the write-ahead log after migrating", "database", s.where, "error", err.Error())
		}
	}
	log.Info("schema up to date", "database", s.where, "version", known, "applied", len(results), "max_items", s.limits.MaxItems)
	return nil
}

// recount sets the item count right when it has drifted from the table:
// rows removed or added without the count's triggers (a TRUNCATE before
// PostgreSQL's schema version 2 left the old number, which refused every
// new item of a table with room; triggers disabled by hand) would
// otherwise stay wrong for good. One statement compares the two (one
// snapshot, so writers elsewhere cannot make them differ); only a drift
// takes the lock that keeps writers out while the table is counted again.
func (s *DB) recount(ctx context.Context, log *slog.Logger) error {
	var counted, items int64
	if err := s.db.QueryRowContext(ctx, "SELECT (SELECT n FROM item_count WHERE id = 1), (SELECT count(*) FROM items)").Scan(&counted, &items); err != nil {
		return err
	}
	if counted == items {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil) // SQLite's BEGIN IMMEDIATE takes the write lock
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if s.d.name == postgres.name {
		// SHARE waits for the writers in flight and keeps new ones out
		// (their row triggers move the count) until the commit.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE items IN SHARE MODE"); err != nil {
			return err
		}
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&items); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.d.q("UPDATE item_count SET n = ? WHERE id = 1"), items); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	log.Warn("item count recounted: it had drifted from the table (rows removed or added without its triggers, such as a TRUNCATE before schema version 2)",
		"database", s.where, "counted", counted, "items", items)
	return nil
}
