package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A Put refused at the item limit reports the bound the database enforced.
// PostgreSQL's trigger names it, so the refusal costs the insert's round
// trip alone; when the error does not name it (SQLite's triggers do not),
// the bound is read back within the Put's own deadline, not a fresh one, so
// a refused Put never waits twice the store's Timeout. The database here is
// a recording driver that answers only the read-back's exact query: what
// is asserted is which statements run, and under which deadline. (It has no
// transactions, so the store here has PostgreSQL's dialect, whose Put needs
// none; the read-back is the same for both databases.)
func TestItemLimitRefusalRoundTrips(t *testing.T) {
	for _, tt := range []struct {
		name      string
		insertErr error
		want      int64
		queries   int  // statements run: the insert, and the read-back
		readFails bool // the read-back fails: this process's bound is reported
	}{
		{"PostgreSQL names the bound", &pgconn.PgError{Code: "23514", Message: "berth: item limit of 7 reached"}, 7, 1, false},
		{"wrapped, it still does", wrapped{&pgconn.PgError{Code: "23514", Message: "berth: item limit of 12 reached"}}, 12, 1, false},
		{"a message without the bound is read back", errors.New("berth: item limit reached"), 9, 2, false},
		{"a PostgreSQL message of another shape is read back", &pgconn.PgError{Code: "23514", Message: "berth: item limit reached"}, 9, 2, false},
		{"a failed read-back reports this process's bound", errors.New("berth: item limit reached"), 100, 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingConn{insertErr: tt.insertErr, stored: 9, readFails: tt.readFails}
			db := sql.OpenDB(rec)
			defer db.Close()
			s := &DB{db: db, d: postgres, limits: Limits{MaxItems: 100, Timeout: time.Hour}, where: "recording"}
			before := time.Now()
			_, err := s.Put(t.Context(), "k", []byte(`1`))
			var le *LimitError
			if !errors.As(err, &le) || le.What != "items" || le.Limit != tt.want {
				t.Fatalf("Put = %v, want the limit of %d items", err, tt.want)
			}
			if len(rec.queries) != tt.queries {
				t.Fatalf("statements run: %q, want %d", rec.queries, tt.queries)
			}
			share := statementTimeout(s.d, s.limits.Timeout)
			if d := rec.deadlines[0]; d.Before(before.Add(share)) || d.After(time.Now().Add(share)) {
				t.Fatalf("the insert's deadline is %v, want the statements' share (%v) of the store's Timeout (%v) from the Put", d, share, s.limits.Timeout)
			}
			if tt.queries == 2 && !rec.deadlines[1].Equal(rec.deadlines[0]) {
				t.Fatalf("the read-back's deadline %v is not the insert's %v: a refused Put could wait twice the Timeout", rec.deadlines[1], rec.deadlines[0])
			}
		})
	}
}

// The message pgLimitMessage parses is the one every PostgreSQL migration
// that defines the items trigger raises, with the bound as its value.
func TestPgLimitMessageMatchesMigrations(t *testing.T) {
	files, err := fs.Glob(migrations, "migrations/postgres/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("postgres migrations: %v, %v", files, err)
	}
	raised := "RAISE EXCEPTION '" + strings.Replace(pgLimitMessage, "%d", "%", 1) + "', bound"
	defining := 0
	for _, f := range files {
		sqlText, err := migrations.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(sqlText), "items_counted") {
			continue // it does not define the trigger's function
		}
		defining++
		if !strings.Contains(string(sqlText), raised) {
			t.Errorf("%s raises the item limit without %s, which itemBound parses", f, raised)
		}
	}
	if defining == 0 {
		t.Fatal("no postgres migration defines the items trigger")
	}
}

type wrapped struct{ error }

func (w wrapped) Unwrap() error { return w.error }

// recordingConn is a database/sql connection (and its connector) that
// records each query (and ping) and its context's deadline: an INSERT
// fails with insertErr, the read-back of the bound answers one row
// holding stored (or fails, with readFails), a ping passes, and anything
// else fails.
type recordingConn struct {
	insertErr error
	stored    int64
	readFails bool

	mu        sync.Mutex
	queries   []string
	deadlines []time.Time
}

func (c *recordingConn) Connect(context.Context) (driver.Conn, error) { return c, nil }
func (c *recordingConn) Driver() driver.Driver                        { return nil }
func (c *recordingConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("recordingConn: Prepare is not supported")
}
func (c *recordingConn) Close() error { return nil }
func (c *recordingConn) Begin() (driver.Tx, error) {
	return nil, errors.New("recordingConn: Begin is not supported")
}

// record notes a query (or "PING") and its context's deadline.
func (c *recordingConn) record(ctx context.Context, query string) {
	deadline, _ := ctx.Deadline()
	c.mu.Lock()
	c.queries = append(c.queries, query)
	c.deadlines = append(c.deadlines, deadline)
	c.mu.Unlock()
}

func (c *recordingConn) Ping(ctx context.Context) error {
	c.record(ctx, "PING")
	return nil
}

func (c *recordingConn) QueryContext(ctx context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	c.record(ctx, query)
	switch {
	case strings.HasPrefix(strings.TrimSpace(query), "INSERT"):
		return nil, c.insertErr
	case query == "SELECT max FROM item_count WHERE id = 1" && c.readFails:
		return nil, errors.New("recordingConn: the read-back fails")
	case query == "SELECT max FROM item_count WHERE id = 1":
		return &oneRow{v: c.stored}, nil
	}
	return nil, fmt.Errorf("recordingConn: unexpected query %q", query)
}

// oneRow is rows of one column and one row.
type oneRow struct {
	v    int64
	done bool
}

func (r *oneRow) Columns() []string { return []string{"v"} }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	dest[0], r.done = r.v, true
	return nil
}
