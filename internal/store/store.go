// Package store keeps the reference service's items in a SQL database:
// PostgreSQL through pgx's pool (pgxpool) when a postgres:// URL is given,
// else an embedded, pure-Go SQLite file, so the service runs with nothing
// else installed. One implementation over database/sql serves both; the
// schema is migrated with goose from SQL embedded in the binary.
//
// A write is acknowledged only once its transaction has committed. SQLite
// runs in WAL mode with synchronous=FULL: a committed write survives the
// process being killed and the machine losing power.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is the items' interface; *DB implements it for both databases.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key (a nil value as an empty one) and reports
	// whether the key is new. It returns only once the write has committed.
	Put(ctx context.Context, key string, value []byte) (created bool, err error)
	// Delete removes the item, or returns ErrNotFound.
	Delete(ctx context.Context, key string) error
	// Stats counts the items and their bytes.
	Stats(ctx context.Context) (Stats, error)
}

// Stats are the store's figures.
type Stats struct {
	Items int64 `json:"items"`
	Bytes int64 `json:"bytes"`
}

// ErrNotFound is returned for a key with no item.
var ErrNotFound = errors.New("no such item")

// ErrOutOfSpace is wrapped into a store error when the database has no room
// to write (SQLite's SQLITE_FULL: its disk, or its max_page_count;
// PostgreSQL's disk_full, 53100). The write was not stored, and retrying
// soon will not help.
var ErrOutOfSpace = errors.New("the database is out of space")

// ErrTooLarge is wrapped into a store error when the database refuses a
// value for its size (SQLite's blob limit, PostgreSQL's 1 GB field): the
// request would fail again however often it were retried.
var ErrTooLarge = errors.New("the database refuses a value this large")

// ErrRefused is wrapped into a store error when the database answered with
// a refusal it would repeat: SQLite's file or volume read-only, corrupt,
// not a database, failing its reads or writes, or not the service's to
// use (READONLY, CORRUPT, NOTADB, IOERR, PERM, AUTH); PostgreSQL's
// refusal of the query itself (class 42: a schema this binary does not
// match, a privilege revoked), of the credentials (28), or its own
// internal error (XX). Nothing was written, and a retry soon would fail
// again: no client should be told to retry.
var ErrRefused = errors.New("the database refused the operation, and would again")

// DefaultMaxKeyBytes bounds keys when Limits.MaxKeyBytes is 0.
const DefaultMaxKeyBytes = 256

// Limits bound what the store accepts, and how long an operation may take.
type Limits struct {
	// MaxItems bounds the number of items (0: no bound). A new key past it
	// is refused with a *LimitError; replacing an existing item is not.
	MaxItems int64
	// MaxKeyBytes bounds a key's length in bytes (0: DefaultMaxKeyBytes).
	MaxKeyBytes int
	// MaxValueBytes bounds a value's length (0: no bound here; the HTTP
	// layer bounds request bodies).
	MaxValueBytes int64
	// Timeout bounds each operation, so a request waits no longer on a
	// database that does not answer (0: none beyond the caller's context).
	// On PostgreSQL it includes the cancel of a statement past it, which
	// keeps the connection (see cancelOnTimeout): its statements are given
	// the Timeout less 250ms. A Timeout under 500ms gives them half of it,
	// and the operation may then end up to 250ms after that half.
	Timeout time.Duration
}

// problem refuses a negative bound, which no value could meet, naming it
// and what would be valid.
func (l Limits) problem() error {
	var bad []string
	for _, f := range []struct {
		name string
		v    int64
		zero string
	}{
		{"MaxItems", l.MaxItems, "no bound"},
		{"MaxKeyBytes", int64(l.MaxKeyBytes), "DefaultMaxKeyBytes"},
		{"MaxValueBytes", l.MaxValueBytes, "no bound"},
		{"Timeout", int64(l.Timeout), "none"},
	} {
		if f.v < 0 {
			v := fmt.Sprint(f.v)
			if f.name == "Timeout" {
				v = l.Timeout.String()
			}
			bad = append(bad, fmt.Sprintf("Limits.%s is %s; want 0 (%s) or more", f.name, v, f.zero))
		}
	}
	if len(bad) > 0 {
		return errors.New("store: " + strings.Join(bad, "; "))
	}
	return nil
}

// LimitError is a request refused because it passes a bound. Nothing was
// written.
type LimitError struct {
	What  string // "items", "key length" or "value size"
	Limit int64
	Got   int64
}

func (e *LimitError) Error() string {
	switch e.What {
	case "items":
		return fmt.Sprintf("the store is full: it holds its limit of %d items; delete some first", e.Limit)
	case "key length":
		return fmt.Sprintf("key of %d bytes is over the %d-byte limit", e.Got, e.Limit)
	default:
		return fmt.Sprintf("value of %d bytes is over the %d-byte limit", e.Got, e.Limit)
	}
}

// KeyError is a key the store refuses because of what it contains.
type KeyError struct{ Reason string }

func (e *KeyError) Error() string { return "invalid key: " + e.Reason }

// checkKey refuses empty, too long, non-UTF-8 and control-character keys.
func (l Limits) checkKey(key string) error {
	maxKey := l.MaxKeyBytes
	if maxKey == 0 {
		maxKey = DefaultMaxKeyBytes
	}
	switch {
	case key == "":
		return &KeyError{Reason: "empty"}
	case len(key) > maxKey:
		return &LimitError{What: "key length", Limit: int64(maxKey), Got: int64(len(key))}
	case !utf8.ValidString(key):
		return &KeyError{Reason: "not valid UTF-8"}
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return &KeyError{Reason: fmt.Sprintf("control character %U", r)}
		}
	}
	return nil
}

func (l Limits) checkValue(value []byte) error {
	if l.MaxValueBytes > 0 && int64(len(value)) > l.MaxValueBytes {
		return &LimitError{What: "value size", Limit: l.MaxValueBytes, Got: int64(len(value))}
	}
	return nil
}

// DB is a Store on PostgreSQL or SQLite.
type DB struct {
	db     *sql.DB
	d      dialect
	limits Limits
	where  string        // the host or the file, for logs; never a password
	pool   *pgxpool.Pool // PostgreSQL's pool behind db; nil for SQLite
	file   string        // SQLite's file; "" for PostgreSQL
	opened os.FileInfo   // SQLite's file as Open found it, for CheckFile
	pinned *sql.Conn     // SQLite: a connection kept open to that file; nil for PostgreSQL
	lost   atomic.Bool   // CheckFile found the file gone, and folded the whole log into it
	close  func() error  // closes db, then the pool behind it

	// readOnlyReset is when leaveReadOnly last closed the pool's
	// connections (unix nanoseconds; 0: never).
	readOnlyReset atomic.Int64

	// writer queues SQLite's writes (a slot of one, waited for in
	// order): SQLite takes one writer at a time, and left to its busy
	// wait, which sleeps in growing steps, a writer that has waited long
	// keeps losing the lock to ones just arrived, until its timeout turns
	// a healthy write into a 503. nil for PostgreSQL, whose rows lock.
	writer chan struct{}
}

// CheckFile returns an error wrapping ErrRefused when SQLite's database
// file is no longer the one the store opened: deleted, renamed away, or
// deleted and another put in its place (a backup copied back). The store
// still reads and writes the file it has open, which no later start will
// find: what is written to it now is lost at the next start, with
// everything before. Writes are refused meanwhile, and the service's
// "db" check fails with this error. Once it finds the file gone it folds
// the write-ahead log into the open file (each look tries again until one
// has folded all of it: one whose ctx ended, or that a reader kept busy,
// leaves it to the next), so that a copy of
// that one file (from /proc/PID/fd, as the error says) holds every
// acknowledged write even when the log was deleted too; the store keeps a
// connection to the file open for as long as it is open, so the copy is
// there to take, and a connection the pool opens after the deletion fails
// rather than make a new, empty file at the path. It cannot see a
// copy written over the file in place (the same file, its pages replaced
// under SQLite, which corrupts it). It returns nil for PostgreSQL, and
// when the file cannot be looked at for another reason (SQLite then
// reports what it finds).
func (s *DB) CheckFile(ctx context.Context) error {
	if s.opened == nil {
		return nil
	}
	now, err := os.Stat(s.file)
	var what string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = "was deleted or renamed"
	case err != nil, os.SameFile(now, s.opened):
		return nil
	default:
		what = "was replaced by another file"
	}
	if !s.lost.Load() {
		// On the pinned connection: another may be to a file put in the
		// deleted one's place. Marked done only once the whole log is
		// folded in: a look whose ctx ended, or that a reader kept busy,
		// leaves it to the next look.
		var busy, logged, folded int
		err := s.pinned.QueryRowContext(ctx, "PRAGMA wal_checkpoint(FULL)").Scan(&busy, &logged, &folded)
		if err == nil && busy == 0 && logged == folded {
			s.lost.Store(true)
		}
	}
	return fmt.Errorf("%w: the database file %s %s while the service had it open; writes are refused, as they would be lost at the next start with every item before them: before the service stops, copy the file it still has open back from /proc/%d/fd (the link to %s (deleted); and, if there is one, the link to %s-wal (deleted), beside it as %s-wal)", ErrRefused, s.file, what, os.Getpid(), s.file, s.file, filepath.Base(s.file))
}

// queueWrite waits for the write slot (SQLite only), for no longer than
// ctx, and returns the function that gives it back.
func (s *DB) queueWrite(ctx context.Context) (release func(), err error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the writes queued before this one: %w", ctx.Err())
	}
}

// Get returns the value stored under key, or ErrNotFound.
func (s *DB) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.limits.checkKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var v []byte
	err := retrying(ctx, func() error {
		return s.db.QueryRowContext(ctx, s.d.q("SELECT value FROM items WHERE key = ?"), key).Scan(&v)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.readFailed(ctx, "get", err)
	}
	return v, nil
}

// Put stores value under key (a nil value as an empty one): a
// replacement, or an insert that the database counts (and refuses past
// MaxItems) in the same statement.
func (s *DB) Put(ctx context.Context, key string, value []byte) (bool, error) {
	if err := s.limits.checkKey(key); err != nil {
		return false, err
	}
	if err := s.limits.checkValue(value); err != nil {
		return false, err
	}
	if value == nil {
		value = []byte{} // empty, as Go reads nil: both drivers would send NULL
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var created bool
	var err error
	if s.d.name == postgres.name {
		// One statement: the insert's trigger takes the count's locks
		// inside the server, never across a round trip to this client.
		// An insert that came near the bound while it waited for its part
		// of the count is ended, to be tried again and counted exactly
		// (migrations/postgres/00003_items_count_parts.sql; countRetry).
		err = retrying(ctx, func() error {
			return s.db.QueryRowContext(ctx, `INSERT INTO items (key, value) VALUES ($1, $2)
				ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
				RETURNING (xmax = 0)`, key, value).Scan(&created)
		})
	} else {
		created, err = s.putSQLite(ctx, key, value)
	}
	switch {
	case err != nil && strings.Contains(err.Error(), "berth: item limit"):
		return false, &LimitError{What: "items", Limit: s.itemBound(ctx, err)}
	case err != nil:
		return false, s.failed("put", err)
	}
	return created, nil
}

// itemBound is the bound the database enforced when it refused an insert
// with err: the one the last process to migrate it recorded, which may not
// be this one's (a rollout that changes BERTH_MAX_ITEMS). PostgreSQL's
// trigger names it in its error, so a refusal costs one round trip.
// SQLite's triggers raise a fixed message, so there it is read back, within
// what is left of ctx, the Put's own bound: a refused Put never waits
// longer than the store's Timeout. When that read fails (ctx spent, say),
// this process's own bound is reported; on SQLite, whose file only this
// process migrates, that is the database's too.
func (s *DB) itemBound(ctx context.Context, err error) int64 {
	var pgErr *pgconn.PgError
	var bound int64
	if errors.As(err, &pgErr) {
		if _, scanErr := fmt.Sscanf(pgErr.Message, pgLimitMessage, &bound); scanErr == nil {
			return bound
		}
	}
	bound = s.limits.MaxItems
	_ = s.db.QueryRowContext(ctx, "SELECT max FROM item_count WHERE id = 1").Scan(&bound)
	return bound
}

// pgLimitMessage is the message PostgreSQL's items trigger raises when an
// insert would pass the bound (migrations/postgres/00001_items.sql).
const pgLimitMessage = "berth: item limit of %d reached"

// itemCount is the SQL of the item count: the sum of item_count's rows
// (PostgreSQL keeps it in parts since schema version 3; SQLite in one).
const itemCount = "(SELECT CAST(SUM(n) AS bigint) FROM item_count)"

// countRetry reports whether err ended a write that nothing stored and
// that is tried again at once: the insert trigger's request, the count
// having come near the bound while the insert waited for its part of it
// (SQLSTATE 40001), or PostgreSQL's deadlock detector (40P01), which can
// end a write waiting for its part behind a transaction that inserts
// several items (by hand) and asks for the count's lock at its second.
func countRetry(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" && strings.HasPrefix(pgErr.Message, "berth: item count came near its bound") || pgErr.Code == "40P01")
}

// strayCancel reports whether err is PostgreSQL ending a statement for a
// cancel request (SQLSTATE 57014, "due to user request") while ctx, the
// statement's own, is still live: not this statement's cancel, which is
// sent only once ctx has ended (see cancelOnTimeout), but most likely the
// one sent for the statement before it on the same connection, which
// timed out. Such a cancel reaches the server process after pgx stopped
// waiting for it (100ms) when the server is slow to take it, and ends
// whichever statement runs then. A canceled statement stored nothing: it
// is run again. (An operator's pg_cancel_backend reads the same, and is
// retried likewise. The message is matched in English: on a server whose
// lc_messages is another language, no cancel is taken for a stray one,
// and the statement fails as it did before this retry.)
func strayCancel(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	return ctx.Err() == nil && errors.As(err, &pgErr) && pgErr.Code == "57014" && strings.Contains(pgErr.Message, "user request")
}

// retrying runs op, and again while it fails with countRetry's errors or
// a stray cancel (strayCancel, judged by ctx, op's context), three tries
// in all, whichever the reasons. op must be one statement in autocommit:
// a failed statement inside a transaction has aborted it, and running
// that statement again would not redo the ones before it. (SQLite's
// statements never fail so.)
func retrying(ctx context.Context, op func() error) error {
	var err error
	for range 3 {
		if err = op(); !countRetry(err) && !strayCancel(ctx, err) {
			break
		}
	}
	return err
}

// putSQLite replaces or inserts in one transaction, in the write queue;
// SQLite has one writer at a time, so nothing can insert the key in
// between.
func (s *DB) putSQLite(ctx context.Context, key string, value []byte) (bool, error) {
	release, err := s.queueWrite(ctx)
	if err != nil {
		return false, err
	}
	defer release() // also when the driver panics: a slot kept would stall every write
	if err := s.CheckFile(ctx); err != nil {
		return false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, "UPDATE items SET value = ?, updated_at = unixepoch() WHERE key = ?", value, key)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO items (key, value) VALUES (?, ?)", key, value); err != nil {
			return false, err
		}
	}
	return n == 0, tx.Commit()
}

// Delete removes the item (its trigger uncounts it), or returns
// ErrNotFound.
func (s *DB) Delete(ctx context.Context, key string) error {
	if err := s.limits.checkKey(key); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var res sql.Result
	err := retrying(ctx, func() (err error) {
		res, err = s.deleteRow(ctx, key)
		return err
	})
	if err != nil {
		return s.failed("delete", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// deleteRow deletes key's row, in the write queue on SQLite.
func (s *DB) deleteRow(ctx context.Context, key string) (sql.Result, error) {
	release, err := s.queueWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := s.CheckFile(ctx); err != nil {
		return nil, err
	}
	return s.db.ExecContext(ctx, s.d.q("DELETE FROM items WHERE key = ?"), key)
}

// Stats counts the items and their bytes.
func (s *DB) Stats(ctx context.Context) (Stats, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var st Stats
	err := retrying(ctx, func() error {
		return s.db.QueryRowContext(ctx, "SELECT "+itemCount+", (SELECT COALESCE(SUM(LENGTH(value)), 0) FROM items)").Scan(&st.Items, &st.Bytes)
	})
	if err != nil {
		return Stats{}, s.readFailed(ctx, "stats", err)
	}
	return st, nil
}

// SQL returns the database/sql handle (over pgx's pool for PostgreSQL),
// for health checks and for measuring the store against plain queries.
func (s *DB) SQL() *sql.DB { return s.db }

// Where names the database for logs: host, port and database, or the file.
func (s *DB) Where() string { return s.where }

// Close closes the database (and the pool behind it).
func (s *DB) Close() error {
	if s.pinned != nil {
		s.pinned.Close()
	}
	return s.close()
}

// bound gives an operation its share of Limits.Timeout (see
// statementTimeout).
func (s *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return withTimeout(ctx, statementTimeout(s.d, s.limits.Timeout))
}

// withTimeout bounds ctx by d, or leaves it as it is when d is 0.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}

// statementTimeout is how long an operation's statements may run for the
// whole operation to end within timeout. A PostgreSQL statement runs on
// for up to cancelSlack after its context ends, while the server confirms
// its cancel, so it is given that much less; a timeout under twice that
// leaves it half. SQLite's statements end with their context.
func statementTimeout(d dialect, timeout time.Duration) time.Duration {
	if d.name != postgres.name {
		return timeout
	}
	return timeout - min(cancelSlack, timeout/2)
}

// failed wraps a database error, naming the operation and the database,
// and marks it with its kind (see kindOf) when it has one. A write refused
// as read-only also drops the pool's connections (see leaveReadOnly).
func (s *DB) failed(op string, err error) error {
	s.leaveReadOnly(err)
	if kind := kindOf(err); kind != nil {
		return fmt.Errorf("store %s (%s): %w: %w", op, s.where, kind, err)
	}
	if s.pool != nil {
		// Whether the pool was full, or still opening connections, tells
		// a database that did not answer from a pool too small for the
		// load, or a slow handshake.
		st := s.pool.Stat()
		return fmt.Errorf("store %s (%s; pool: %d of %d connections in use, %d opening, %d idle): %w",
			op, s.where, st.AcquiredConns(), st.MaxConns(), st.ConstructingConns(), st.IdleConns(), err)
	}
	return fmt.Errorf("store %s (%s): %w", op, s.where, err)
}

// readFailed is failed for a read. A read that needed a new connection
// to SQLite's file after the file was deleted cannot open it (CANTOPEN,
// where the connections opened before still read the open file): that is
// CheckFile's refusal, which names the loss, not a failure a retry mends.
// A CANTOPEN with the file in place (out of file descriptors, say) is
// failed's as any other.
func (s *DB) readFailed(ctx context.Context, op string, err error) error {
	if _, lite := codes(err); lite == sqlite3.SQLITE_CANTOPEN {
		if lost := s.CheckFile(ctx); lost != nil {
			return fmt.Errorf("store %s (%s): %w", op, s.where, lost)
		}
	}
	return s.failed(op, err)
}

// pgReadOnly is PostgreSQL's SQLSTATE read_only_sql_transaction: a write
// sent to a server that is not, or no longer, the primary.
const pgReadOnly = "25006"

// readOnlyResetEvery spaces leaveReadOnly's resets, so that a server that
// stays read-only costs the pool one reconnection a second at most, not
// one per write.
const readOnlyResetEvery = time.Second

// leaveReadOnly closes the pool's connections when err is PostgreSQL's
// read-only refusal. After a failover, connections opened to the old
// primary (demoted to a standby, or set read-only) stay open and refuse
// every write until their lifetime ends (pgxpool's MaxConnLifetime, an
// hour by default), where new ones look the host up again and reach the
// new primary. Connections in use close when they are given back.
func (s *DB) leaveReadOnly(err error) {
	if s.pool == nil {
		return
	}
	if sqlstate, _ := codes(err); sqlstate != pgReadOnly {
		return
	}
	now, last := time.Now().UnixNano(), s.readOnlyReset.Load()
	if last != 0 && now-last < int64(readOnlyResetEvery) || !s.readOnlyReset.CompareAndSwap(last, now) {
		return
	}
	s.pool.Reset()
}

// pgDiskFull is PostgreSQL's SQLSTATE disk_full.
const pgDiskFull = "53100"

// kindOf says what a database error means for the request, nil when it
// says nothing a retry would not mend:
//   - ErrOutOfSpace: either database's "disk full";
//   - ErrTooLarge: either database's refusal of a value for its size,
//     SQLite's "string or blob too big" (SQLITE_TOOBIG) or PostgreSQL's
//     program_limit_exceeded class (SQLSTATE 54);
//   - ErrRefused: a refusal the database would repeat (see ErrRefused).
//     PostgreSQL's read_only_sql_transaction (25006) is not one: it comes
//     from a primary that failed over, whose connections failed then
//     closes (see leaveReadOnly), so a retry reaches the new primary.
func kindOf(err error) error {
	sqlstate, lite := codes(err)
	switch {
	case sqlstate == pgDiskFull || lite == sqlite3.SQLITE_FULL:
		return ErrOutOfSpace
	case strings.HasPrefix(sqlstate, "54") || lite == sqlite3.SQLITE_TOOBIG:
		return ErrTooLarge
	}
	switch lite {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		return ErrRefused
	}
	for _, class := range []string{"42", "28", "XX"} {
		if strings.HasPrefix(sqlstate, class) {
			return ErrRefused
		}
	}
	return nil
}

// codes returns the PostgreSQL SQLSTATE and the SQLite primary result code
// err carries, "" and 0 for those it does not.
func codes(err error) (sqlstate string, lite int) {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		sqlstate = pg.Code
	}
	var le *sqlitedriver.Error
	if errors.As(err, &le) {
		lite = le.Code() & 0xff
	}
	return sqlstate, lite
}
