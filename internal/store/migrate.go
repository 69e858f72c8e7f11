package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/backoff"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// Migrate brings the schema up to the newest migration embedded in the
// binary, with goose. It holds a lock meanwhile, so processes starting
// together migrate one at a time (the others find nothing left to do): an
// advisory lock on PostgreSQL, and on SQLite, which goose does not lock,
// an flock on a file beside the database's (see locked). A database whose
// schema is newer than the binary knows (a rollback) is used as it is when
// that schema says binaries that know this one's version can use it
// (berth_schema, see dialect.worksFrom), and refused otherwise: this binary
// would misread it. Waiting for the lock lasts until ctx's deadline, if it
// has one. It then records the item bound (Limits.MaxItems) that the
// database enforces, and sets a drifted item count right (see recount).
// On PostgreSQL no statement of the migration waits longer than its lock
// timeout (see lockTimeout) for a lock another session holds: it gives
// up, so that the queries queued behind it run, and the migration is
// tried again until ctx ends.
func (s *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	dir, err := fs.Sub(migrations, "migrations/"+map[string]string{"postgres": "postgres", "sqlite3": "sqlite"}[s.d.name])
	if err != nil {
		return err
	}
	return s.locked(ctx, func() error {
		m, err := s.forMigrating(ctx)
		if err != nil {
			return s.failed("migrate", err)
		}
		defer m.Close()
		return m.migrateRetrying(ctx, dir, log)
	})
}

// lockTimeout bounds each wait of a migration's statement for a lock
// another session holds (PostgreSQL's lock_timeout). A statement waiting
// for a table's lock queues every later one on that table behind it:
// unbounded, one long transaction elsewhere (an open psql session, a
// report) would hold up every pod's reads and writes of items for as long
// as the migration waited, up to BERTH_MIGRATE_TIMEOUT. The bound is
// half a second, or a third of the service's own database timeout
// (Limits.Timeout, BERTH_DB_TIMEOUT) when that is shorter, so a request
// queued behind the statement still has time to run once it gives up.
func (s *DB) lockTimeout() time.Duration {
	bound := 500 * time.Millisecond
	if s.limits.Timeout > 0 {
		bound = min(bound, s.limits.Timeout/3)
	}
	return max(bound, time.Millisecond) // lock_timeout counts whole milliseconds; 0 would mean none
}

// waitedOutLock reports whether err is PostgreSQL's lock_not_available
// (SQLSTATE 55P03): a statement that waited out lock_timeout.
func waitedOutLock(err error) bool {
	sqlstate, _ := codes(err)
	return sqlstate == "55P03"
}

// forMigrating returns the DB to migrate through: on PostgreSQL, one of
// its own, a small pool whose sessions set lock_timeout to lockTimeout
// (the service's sessions keep theirs); on SQLite, a copy of s whose Close
// closes nothing. The setting is a SET on each new session, not a startup
// parameter, which a connection pooler such as PgBouncer would refuse.
func (s *DB) forMigrating(ctx context.Context) (*DB, error) {
	m := &DB{db: s.db, d: s.d, limits: s.limits, where: s.where, file: s.file, writer: s.writer, close: func() error { return nil }}
	if s.pool == nil {
		return m, nil
	}
	pc := s.pool.Config()
	setLockTimeout := "SET lock_timeout = " + strconv.FormatInt(s.lockTimeout().Milliseconds(), 10)
	connected := pc.AfterConnect
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if connected != nil {
			if err := connected(ctx, conn); err != nil {
				return err
			}
		}
		_, err := conn.Exec(ctx, setLockTimeout)
		return err
	}
	pc.MinConns, pc.MaxConns = 0, 2 // goose's lock holds one session, the migration runs on another
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	m.pool = pool
	m.db, m.close = fromPool(pool)
	return m, nil
}

// migrateRetrying runs migrate until it ends other than by waiting out
// lockTimeout, or until ctx ends, pausing between tries so the queries
// that queued behind the migration's statement run. When the time ran out
// after a try waited a lock out, the error says what to look for, even if
// the last try was cut short before its own wait ended.
func (s *DB) migrateRetrying(ctx context.Context, dir fs.FS, log *slog.Logger) error {
	waited := false // a try waited out lock_timeout
	retry := backoff.Schedule{
		Initial: 250 * time.Millisecond,
		Max:     2 * time.Second,
		// A try that ctx cut short is not given up on here: Retry then
		// returns the failure before it, which says why.
		GiveUp: func(err error) bool { return !waitedOutLock(err) && ctx.Err() == nil },
		Retrying: func(attempt int, err error) {
			log.Warn("the migration waited "+s.lockTimeout().String()+" for a lock another session holds; letting the queries queued behind it through, then trying again",
				"database", s.where, "attempt", attempt, "error", err.Error())
		},
	}
	_, err := retry.Retry(ctx, func() error {
		err := s.migrate(ctx, dir, log)
		waited = waited || waitedOutLock(err)
		return err
	})
	if err != nil && waited && (waitedOutLock(err) || ctx.Err() != nil) {
		return fmt.Errorf("%w: another session held a lock the migration needs until BERTH_MIGRATE_TIMEOUT ran out: find it in pg_locks and pg_stat_activity (a long transaction, or one idle in transaction), end it, or raise BERTH_MIGRATE_TIMEOUT", err)
	}
	return err
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
	var results []*goose.MigrationResult
	if current > known {
		if err := s.acceptNewer(ctx, current, known, log); err != nil {
			return err
		}
	} else {
		// Before migrating, so a binary rolled back to finds the record
		// as soon as the new version is there.
		if err := s.recordWorksFrom(ctx, known); err != nil {
			return s.failed("migrate", err)
		}
		results, err = p.Up(ctx)
		for _, r := range results { // applied, whatever comes next
			log.Info("migration applied", "database", s.where, "version", r.Source.Version, "file", r.Source.Path, slog.Float64("took_seconds", r.Duration.Seconds()))
		}
		if err != nil {
			return s.failed("migrate", err)
		}
		// A newer release may have migrated between the version read
		// above and Up, which takes goose's lock afresh and leaves
		// versions above this binary's alone: read the version again, so
		// that a schema this binary cannot use is refused now too.
		if current, err = p.GetDBVersion(ctx); err != nil {
			return s.failed("migrate", err)
		}
		if current > known {
			if err := s.acceptNewer(ctx, current, known, log); err != nil {
				return err
			}
		}
	}
	if err := s.setBound(ctx); err != nil {
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
	log.Info("schema up to date", "database", s.where, "version", max(known, current), "applied", len(results), "max_items", s.limits.MaxItems)
	return nil
}

// acceptNewer decides whether this binary, which knows schema versions up
// to known, can use a database a newer release migrated to current: it
// can when that schema's record in berth_schema says binaries that know
// known's version or an older one can.
func (s *DB) acceptNewer(ctx context.Context, current, known int64, log *slog.Logger) error {
	worksFrom, ok, err := s.worksFrom(ctx, current)
	if err != nil {
		return s.failed("migrate", fmt.Errorf("reading what schema version %d needs (berth_schema): %w", current, err))
	}
	if !ok || worksFrom > known {
		needs := ""
		if ok {
			needs = fmt.Sprintf(" and needs a binary that knows version %d", worksFrom)
		}
		return fmt.Errorf("database %s has schema version %d, newer than this binary knows (%d)%s: run a newer berth; or, if another application's goose migrations share this database (its goose_db_version table), give berth a database of its own", s.where, current, known, needs)
	}
	log.Warn("database schema is newer than this binary knows, and says binaries that know its version "+strconv.FormatInt(worksFrom, 10)+" can use it: going on without migrating",
		"database", s.where, "version", current, "known", known)
	return nil
}

// berthSchemaLock is the PostgreSQL advisory lock around berth_schema's
// creation: two sessions creating one table at once can collide in the
// catalog, IF NOT EXISTS notwithstanding.
const berthSchemaLock = 0x62657274 // "bert"

// recordWorksFrom records the dialect's worksFrom for version in berth_schema,
// creating it if need be. The table stays outside goose's versions on
// purpose: as a migration, it would itself have made the database newer
// than the release before it accepts. Each version's row is written only
// by binaries that know that version, which agree on its value.
func (s *DB) recordWorksFrom(ctx context.Context, version int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if s.d.name == postgres.name {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", berthSchemaLock); err != nil {
			return err
		}
	}
	// Written only when missing or different: a start with nothing to
	// migrate then needs no more than SELECT, so a role that may use the
	// tables but not create them (PostgreSQL 15 grants no CREATE on public)
	// can start; CREATE TABLE IF NOT EXISTS checks that right even when the
	// table exists.
	var exists bool
	if err := tx.QueryRowContext(ctx, s.d.tableExists, "berth_schema").Scan(&exists); err != nil {
		return err
	}
	if exists {
		var recorded int64
		err := tx.QueryRowContext(ctx, s.d.q("SELECT works_from FROM berth_schema WHERE version = ?"), version).Scan(&recorded)
		if err == nil && recorded == s.d.worksFrom {
			return tx.Commit()
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	} else if _, err := tx.ExecContext(ctx, "CREATE TABLE berth_schema (version bigint PRIMARY KEY, works_from bigint NOT NULL)"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.d.q("INSERT INTO berth_schema (version, works_from) VALUES (?, ?) ON CONFLICT (version) DO UPDATE SET works_from = excluded.works_from"),
		version, s.d.worksFrom); err != nil {
		return err
	}
	return tx.Commit()
}

// worksFrom reads what berth_schema says of version: the oldest version a
// binary must know to use it; ok is false when nothing is recorded (no
// table: a release before the record; no row: another application's goose
// version). Any other error (the database not answering) is returned.
func (s *DB) worksFrom(ctx context.Context, version int64) (worksFrom int64, ok bool, err error) {
	var exists bool
	if err := s.db.QueryRowContext(ctx, s.d.tableExists, "berth_schema").Scan(&exists); err != nil || !exists {
		return 0, false, err
	}
	err = s.db.QueryRowContext(ctx, s.d.q("SELECT works_from FROM berth_schema WHERE version = ?"), version).Scan(&worksFrom)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return worksFrom, err == nil, err
}

// setBound records the item bound (Limits.MaxItems) beside the count it
// bounds, for the triggers. On PostgreSQL a change takes the count's
// EXCLUSIVE lock first, as an insert near the bound does: the inserts in
// flight, checked against the old bound, commit before the new one, and
// every later insert is checked against it.
func (s *DB) setBound(ctx context.Context) error {
	if s.d.name != postgres.name {
		_, err := s.db.ExecContext(ctx, "UPDATE item_count SET max = ? WHERE id = 1", s.limits.MaxItems)
		return err
	}
	var bound int64
	if err := s.db.QueryRowContext(ctx, "SELECT max FROM item_count WHERE id = 1").Scan(&bound); err != nil || bound == s.limits.MaxItems {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "LOCK TABLE item_count IN EXCLUSIVE MODE"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE item_count SET max = $1 WHERE id = 1", s.limits.MaxItems); err != nil {
		return err
	}
	return tx.Commit()
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
	if err := s.db.QueryRowContext(ctx, "SELECT "+itemCount+", (SELECT count(*) FROM items)").Scan(&counted, &items); err != nil {
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
		// (their row triggers move the count) until the commit; the
		// count's own lock then keeps another start's recount, or bound,
		// from taking the parts' rows in another order.
		for _, lock := range []string{"LOCK TABLE items IN SHARE MODE", "LOCK TABLE item_count IN EXCLUSIVE MODE"} {
			if _, err := tx.ExecContext(ctx, lock); err != nil {
				return err
			}
		}
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&items); err != nil {
		return err
	}
	// The whole count in row 1, and none in PostgreSQL's other parts.
	if _, err := tx.ExecContext(ctx, s.d.q("UPDATE item_count SET n = CASE id WHEN 1 THEN ? ELSE 0 END"), items); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	log.Warn("item count recounted: it had drifted from the table (rows removed or added without its triggers, such as a TRUNCATE before schema version 2)",
		"database", s.where, "counted", counted, "items", items)
	return nil
}
