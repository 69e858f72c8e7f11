package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/backoff"
	"github.com/berth-dev/berth/internal/redact"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
	sqlite3 "modernc.org/sqlite/lib"
)

// Config says which database to open. Its fields are the service's
// BERTH_DATABASE_URL, BERTH_DATA_DIR and BERTH_DB_WAIT, and Open's errors
// name those variables, the settings an operator would change.
type Config struct {
	// URL is a postgres:// (or postgresql://) URL; empty means SQLite.
	URL string
	// DataDir holds the SQLite file, berth.db (created if missing).
	DataDir string
	// Wait is how long Open retries a database that is not there yet
	// (0: one attempt).
	Wait   time.Duration
	Limits Limits
	Logger *slog.Logger
}

// dialect is what differs between the two databases.
type dialect struct {
	name        string // goose's dialect
	placeholder func(n int) string
	tableExists string // a query of whether the table its one argument names exists
	// worksFrom is, for the newest schema version this binary
	// migrates to, the oldest schema version a binary must know to use it: a
	// binary rolled back to reads it (from berth_schema) and goes on when it
	// knows that version. Raise it to the new version with a migration that
	// older code cannot use (a column it does not fill, a table it does not
	// know). SQLite's rowid table and PostgreSQL's TRUNCATE trigger left
	// version 1's queries working; PostgreSQL's version 3 keeps the item count
	// in parts, which older binaries would read as the count and, at their
	// start, "recount" into a count too large.
	worksFrom int64
}

var (
	postgres = dialect{name: "postgres", placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		tableExists: "SELECT to_regclass($1) IS NOT NULL", worksFrom: 3}
	sqlite = dialect{name: "sqlite3", placeholder: func(int) string { return "?" },
		tableExists: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)", worksFrom: 1}
)

// q rewrites the ? placeholders of query for the dialect.
func (d dialect) q(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString(d.placeholder(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Open opens the database cfg names and waits for it to answer, retrying
// with backoff for up to cfg.Wait and logging each failed attempt with the
// database's host (never its password). It returns the last failure once
// the wait is over or ctx ends.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Limits.problem(); err != nil {
		return nil, err
	}
	var s *DB
	var err error
	if cfg.URL != "" {
		s, err = openPostgres(ctx, cfg)
	} else {
		s, err = openSQLite(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := s.locked(ctx, func() error { return s.wait(ctx, cfg.Wait, log) }); err != nil {
		s.Close()
		return nil, err
	}
	if s.file != "" {
		// The file the connections have open: the one CheckFile compares.
		if s.opened, err = os.Stat(s.file); err != nil {
			s.Close()
			return nil, fmt.Errorf("database %s: %w", s.where, explain(err))
		}
		// One connection stays open to it for the store's life, whatever
		// the pool does with the others: the file CheckFile's error says
		// to copy back from /proc/PID/fd if it is deleted.
		if s.pinned, err = s.db.Conn(ctx); err == nil {
			// A read opens the write-ahead log and its index, which SQLite
			// opens on a connection's first read and keeps: CheckFile's
			// checkpoint, on this connection, folds the log it has open
			// into the file, where a connection that opened neither
			// would find them deleted.
			var n int
			err = s.pinned.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("database %s: %w", s.where, explain(err))
		}
	}
	return s, nil
}

// locked runs f holding, for SQLite, an flock on a file beside the
// database's, so that processes opening the file at once take turns: a
// new file's first connection switches it to WAL, which SQLite refuses
// (SQLITE_BUSY, without waiting) to two at once; and goose does not lock
// SQLite while it migrates. PostgreSQL needs none here.
func (s *DB) locked(ctx context.Context, f func() error) error {
	if s.file == "" {
		return f()
	}
	unlock, err := lockFile(ctx, s.file+".lock")
	if err != nil {
		return fmt.Errorf("database %s: %w", s.where, explain(err))
	}
	defer unlock()
	return f()
}

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("BERTH_DATABASE_URL: %w", redact.Error(err, cfg.URL))
	}
	if pc.ConnConfig.ConnectTimeout == 0 && cfg.Limits.Timeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.Limits.Timeout
	}
	pc.ConnConfig.BuildContextWatcherHandler = cancelOnTimeout
	if err := poolDefaults(pc, cfg.URL); err != nil {
		return nil, fmt.Errorf("BERTH_DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", pgWhere(pc), err)
	}
	db, closeDB := fromPool(pool)
	return &DB{db: db, d: postgres, limits: cfg.Limits, where: pgWhere(pc), pool: pool, close: closeDB}, nil
}

// cancelGrace is how long a statement whose context ended may wait for
// PostgreSQL to confirm its cancel before its connection is closed.
const cancelGrace = 150 * time.Millisecond

// cancelSlack is the longest a statement returns after its context ended:
// cancelGrace, and then the 100ms pgx waits after a cancel request so it
// seldom reaches the connection's next statement (a slow server can still
// take it later: see strayCancel).
const cancelSlack = cancelGrace + 100*time.Millisecond

// cancelOnTimeout makes a statement whose context ends (Limits.Timeout,
// say) ask PostgreSQL to cancel it, and keeps its connection when the
// server confirms within cancelGrace. pgx's default closes the connection
// at once: on a database slowed for a few seconds, every write that timed
// out cost its pool a connection, whose replacement's handshake (a server
// process, SCRAM) then had to fit the next write's timeout too, and the
// pool stayed empty well after the database was quick again (20s in the
// kind e2e, with PostgreSQL's own commits back under 50ms). A canceled
// statement returns up to cancelSlack after its context ended, which
// statementTimeout takes off the operation's Timeout.
func cancelOnTimeout(c *pgconn.PgConn) ctxwatch.Handler {
	return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelGrace}
}

// fromPool is a database/sql handle on pool, and the function that closes
// both, the handle first.
func fromPool(pool *pgxpool.Pool) (*sql.DB, func() error) {
	db := stdlib.OpenDBFromPool(pool)
	return db, func() error {
		err := db.Close()
		pool.Close()
		return err
	}
}

// poolDefaults sizes the pool unless url does: maxConnections (where
// pgx's default would follow the node's CPU count, not the container's
// share: 64 on a 64-core node, for each pod), all of them kept open
// (pool_min_conns defaults to the pool's size) and opened before the pod
// is Ready (see warm). A fixed pool puts no handshake on a request's path:
// a pool that grew on demand opened its connections when a burst came,
// which is when the database was slow; in the kind e2e, writes queued
// behind a 1s commit stall found 6 connections open and 10 opening, each
// a server process and a SCRAM exchange on a busy machine, and timed out
// waiting for their own handshakes after PostgreSQL's commits were quick
// again. It is also the pool PostgreSQL serves best: a few busy
// connections, not many half-idle ones.
//
// The connections' lifetimes (pgx's pool_max_conn_lifetime, an hour) get
// a fifth of it in jitter unless the URL says otherwise, so that a pool
// opened at once does not expire at once, leaving requests to open its
// replacements. A pool told to keep more open than it holds, or fewer
// than none, is refused.
func poolDefaults(pc *pgxpool.Config, url string) error {
	// What the URL sets, read as pgx reads it (a key percent-encoded, or
	// a password that spells one, is read right), before pgxpool took its
	// keys out.
	var set map[string]string
	if c, err := pgconn.ParseConfig(url); err == nil {
		set = c.RuntimeParams
	}
	_, maxSet := set["pool_max_conns"]
	if !maxSet {
		pc.MaxConns = maxConnections
	}
	if _, ok := set["pool_min_conns"]; !ok {
		pc.MinConns = pc.MaxConns
	}
	if _, ok := set["pool_max_conn_lifetime_jitter"]; !ok {
		pc.MaxConnLifetimeJitter = pc.MaxConnLifetime / 5
	}
	switch {
	case pc.MinConns < 0:
		return fmt.Errorf("pool_min_conns=%d: want 0 or more connections kept open (at most pool_max_conns)", pc.MinConns)
	case pc.MinConns > pc.MaxConns:
		holds := fmt.Sprintf("%d, as the URL does not set pool_max_conns", pc.MaxConns)
		if maxSet {
			holds = fmt.Sprintf("pool_max_conns=%d", pc.MaxConns)
		}
		return fmt.Errorf("pool_min_conns=%d keeps more connections open than the pool holds (%s): make pool_min_conns at most pool_max_conns", pc.MinConns, holds)
	}
	return nil
}

// maxConnections is a pod's pool unless the URL's pool_max_conns says
// otherwise.
const maxConnections = 8

// warm opens the connections the pool keeps (MinConns) at once, so the
// handshakes (SCRAM authentication, a server process each) happen before
// the pod is Ready rather than on its first requests.
func (s *DB) warm(ctx context.Context) error {
	if s.pool == nil {
		return nil
	}
	n := int(s.pool.Config().MinConns)
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

func pgWhere(pc *pgxpool.Config) string {
	c := pc.ConnConfig
	return fmt.Sprintf("postgres %s/%s as %s", net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))), c.Database, c.User)
}

func openSQLite(cfg Config) (*DB, error) {
	dir := cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory (BERTH_DATA_DIR): %w", explain(err))
	}
	// Absolute, as SQLite resolves it once at open: CheckFile looks at
	// the same file after a change of working directory.
	path, err := filepath.Abs(filepath.Join(dir, "berth.db"))
	if err != nil {
		return nil, fmt.Errorf("data directory (BERTH_DATA_DIR): %w", err)
	}
	if err := writable(path); err != nil {
		return nil, fmt.Errorf("data directory (BERTH_DATA_DIR): %w", explain(err))
	}
	// WAL lets readers run beside the writer; synchronous=FULL makes a
	// commit durable before it returns; immediate transactions take the
	// write lock at BEGIN, so two writers wait (busy_timeout) instead of
	// failing when one upgrades a read. Within the process, writes queue
	// for one slot (DB.writer); busy_timeout is for other processes. busy_timeout comes first: setting
	// WAL on a new file takes a lock too, and two processes opening it at
	// once would otherwise fail with SQLITE_BUSY.
	// The path is escaped as a URI's: SQLite decodes it, and a "?" or "#"
	// in it would otherwise end the file name there.
	// mode=rw: a connection opened after the file was deleted fails, where
	// SQLite would make a new, empty file there (writable made the first).
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=rw&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// Eight for the requests and one Open pins; every connection made is
	// kept, so reads go on from the file the store has open after it is
	// deleted (CheckFile).
	db.SetMaxOpenConns(9)
	db.SetMaxIdleConns(9)
	return &DB{db: db, d: sqlite, limits: cfg.Limits, where: "sqlite " + path, file: path, close: db.Close,
		writer: make(chan struct{}, 1)}, nil
}

// writable makes the SQLite file at path if there is none, and returns an
// error if it, or the log and index SQLite keeps beside it (-wal, -shm),
// is not the service's to write. SQLite opens a file it may only read
// read-only, without a word, and fails at the first write (the migration)
// with a bare "readonly database", leaving an index as unwritable as the
// file, which fails the next start too. A directory where the file should
// be is left to SQLite, which refuses it (CANTOPEN) with the same fix.
func writable(path string) error {
	for i, p := range []string{path, path + "-wal", path + "-shm"} {
		flags := os.O_RDWR
		if i == 0 {
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(p, flags, 0o644) // SQLite's own mode for its files
		switch {
		case err == nil:
			f.Close()
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EISDIR):
		default:
			return err
		}
	}
	return nil
}

// wait pings the database until it answers, for up to wait. Each attempt
// (the ping, and the pool's handshakes) has the whole Limits.Timeout: no
// request waits on it, so it keeps no room for a cancel (see bound).
func (s *DB) wait(ctx context.Context, wait time.Duration, log *slog.Logger) error {
	return retry(ctx, s.where, wait, log, func() error {
		pingCtx, cancel := withTimeout(ctx, s.limits.Timeout)
		defer cancel()
		if err := s.db.PingContext(pingCtx); err != nil {
			return err
		}
		return s.warm(pingCtx)
	})
}

// retry calls try until it succeeds, backing off from 100ms to 2s between
// attempts, for up to wait: the last pause is cut short so that a last
// attempt comes when wait is up, not a backoff before it.
func retry(ctx context.Context, where string, wait time.Duration, log *slog.Logger, try func() error) error {
	begin := time.Now()
	attempts, err := backoff.Schedule{
		Initial: 100 * time.Millisecond, Max: 2 * time.Second, Aim: begin.Add(wait), Final: true,
		Retrying: func(attempt int, err error) {
			log.Warn("waiting for the database", "database", where, "attempt", attempt, "error", err.Error())
		},
		GiveUp: func(err error) bool { return hopeless(err) != "" },
	}.Retry(ctx, try)
	hint := hopeless(err)
	switch {
	case err == nil:
		if attempts > 1 {
			log.Info("database answered", "database", where, "attempts", attempts, slog.Float64("waited_seconds", time.Since(begin).Seconds()))
		}
		return nil
	case hint != "":
		return fmt.Errorf("database %s: %w; not retried, as waiting will not mend it: %s", where, err, hint)
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for database %s: %w (last failure: %v)", where, ctx.Err(), err)
	default:
		return fmt.Errorf("database %s did not answer within BERTH_DB_WAIT=%v (%d attempts): %w", where, wait, attempts, err)
	}
}

// hopeless says what to change when err is one no wait can mend, and is
// "" otherwise: the server refused the credentials (SQLSTATE class 28), or
// the SQLite file or its directory is not the service's to write (a
// permission refused, or SQLite's CANTOPEN or READONLY: a file of another
// uid, say, or a directory where the file should be).
func hopeless(err error) string {
	sqlstate, lite := codes(err)
	switch {
	case strings.HasPrefix(sqlstate, "28"):
		return "check the user and password in BERTH_DATABASE_URL, or PGPASSWORD when the URL has none (with the chart, the Secret it names)"
	case errors.Is(err, fs.ErrPermission), lite == sqlite3.SQLITE_CANTOPEN, lite == sqlite3.SQLITE_READONLY:
		return fmt.Sprintf("the service runs as uid %d: make BERTH_DATA_DIR, and berth.db in it, a directory and a file it may write (in a pod, set fsGroup)", os.Getuid())
	}
	return ""
}

// explain adds to err what to change, when it is one no wait can mend.
func explain(err error) error {
	if hint := hopeless(err); hint != "" {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}
