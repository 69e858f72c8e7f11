package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// PostgreSQL's disk_full is ErrOutOfSpace too; other errors are not.
func TestFailedMarksOutOfSpace(t *testing.T) {
	s := &DB{where: "postgres db:5432/berth as berth"}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "53100", Message: "could not extend file"}, true},
		{fmt.Errorf("commit: %w", &pgconn.PgError{Code: "53100"}), true},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection"}, false},
		{errors.New("connection refused"), false},
	} {
		got := s.failed("put", tt.err)
		if errors.Is(got, ErrOutOfSpace) != tt.want || !errors.Is(got, tt.err) {
			t.Errorf("failed(%v) = %v; out of space %v, want %v", tt.err, got, errors.Is(got, ErrOutOfSpace), tt.want)
		}
	}
}

// A value the database refuses for its size is ErrTooLarge: PostgreSQL's
// program_limit_exceeded class, and SQLite's "string or blob too big",
// here the real driver's error.
func TestFailedMarksTooLarge(t *testing.T) {
	db, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var blob []byte
	liteErr := db.SQL().QueryRowContext(t.Context(), "SELECT zeroblob(2000000000)").Scan(&blob)
	if liteErr == nil {
		t.Fatal("SQLite made a 2 GB blob")
	}
	s := &DB{where: "sqlite berth.db"}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{liteErr, true},
		{&pgconn.PgError{Code: "54000", Message: "total size of jsonb array elements exceeds the maximum"}, true},
		{&pgconn.PgError{Code: "53100"}, false},
		{errors.New("connection refused"), false},
	} {
		got := s.failed("put", tt.err)
		if errors.Is(got, ErrTooLarge) != tt.want || !errors.Is(got, tt.err) {
			t.Errorf("failed(%v) = %v; too large %v, want %v", tt.err, got, errors.Is(got, ErrTooLarge), tt.want)
		}
	}
}

// A refusal the database would repeat is ErrRefused: SQLite's read-only
// database (here the real driver's error, from a connection that may only
// read), and PostgreSQL's classes 42, 28 and XX; an outage, a conflict or
// a failed-over primary's read-only transaction is not.
func TestFailedMarksRefused(t *testing.T) {
	db, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.SQL().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	liteErr := func() error { _, err := conn.ExecContext(t.Context(), "CREATE TABLE t (x)"); return err }()
	if liteErr == nil {
		t.Fatal("a query_only connection wrote")
	}
	s := &DB{where: "sqlite berth.db"}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{liteErr, true},
		{&pgconn.PgError{Code: "42P01", Message: `relation "items" does not exist`}, true},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for table items"}, true},
		{&pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, true},
		{&pgconn.PgError{Code: "XX001", Message: "invalid page in block"}, true},
		{&pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, false},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection"}, false},
		{&pgconn.PgError{Code: "40001", Message: "could not serialize access"}, false},
		{errors.New("connection refused"), false},
	} {
		got := s.failed("put", tt.err)
		if errors.Is(got, ErrRefused) != tt.want || !errors.Is(got, tt.err) {
			t.Errorf("failed(%v) = %v; refused %v, want %v", tt.err, got, errors.Is(got, ErrRefused), tt.want)
		}
	}
}

// A read-only refusal resets the pool at most once a second: a server
// read-only for good costs one reconnection a second, not one per write.
// Other errors never reset it.
func TestReadOnlyResetsThePoolAtMostOnceASecond(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), "postgres://u@127.0.0.1:1/db") // connects lazily: never, here
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := &DB{pool: pool, where: "postgres 127.0.0.1:1/db as u"}
	readOnly := &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}
	_ = s.failed("put", &pgconn.PgError{Code: "57P01"})
	if s.readOnlyReset.Load() != 0 {
		t.Fatal("another error reset the pool")
	}
	_ = s.failed("put", readOnly)
	first := s.readOnlyReset.Load()
	if first == 0 {
		t.Fatal("a read-only refusal did not reset the pool")
	}
	_ = s.failed("put", readOnly)
	if s.readOnlyReset.Load() != first {
		t.Fatal("a second read-only refusal within the second reset the pool again")
	}
	s.readOnlyReset.Store(first - int64(readOnlyResetEvery)) // as if the first came a second ago
	_ = s.failed("put", readOnly)
	if got := s.readOnlyReset.Load(); got == first-int64(readOnlyResetEvery) {
		t.Fatal("a read-only refusal a second after the last reset did not reset the pool")
	}
}

// SQLite reports extended result codes (the driver turns them on), and
// kindOf reads primary ones: codes reduces one to its primary, so an
// extended code of a class kindOf knows (an I/O error's subtype, say) is
// judged by its class. Here a duplicate key's SQLITE_CONSTRAINT_PRIMARYKEY
// (1555) reads as SQLITE_CONSTRAINT (19).
func TestCodesReadsThePrimaryResultCode(t *testing.T) {
	db, err := Open(t.Context(), Config{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(t.Context(), "CREATE TABLE t (k PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, err = db.SQL().ExecContext(t.Context(), "INSERT INTO t VALUES (1)")
	var le *sqlitedriver.Error
	if !errors.As(err, &le) || le.Code() != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		t.Fatalf("duplicate key: %v, want the driver's extended SQLITE_CONSTRAINT_PRIMARYKEY", err)
	}
	if _, lite := codes(err); lite != sqlite3.SQLITE_CONSTRAINT {
		t.Errorf("codes(%v) = %d, want SQLITE_CONSTRAINT (%d)", err, lite, sqlite3.SQLITE_CONSTRAINT)
	}
}
