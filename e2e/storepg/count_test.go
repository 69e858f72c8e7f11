package storepg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/store"
	"github.com/jackc/pgx/v5"
)

// openMigrated opens dbURL with limits and migrates it, as a start does.
func openMigrated(t *testing.T, dbURL string, limits store.Limits) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), store.Config{URL: dbURL, Logger: quiet, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), quiet); err != nil {
		t.Fatal(err)
	}
	return db
}

// connect opens a session of its own, for SQL by hand.
func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// slackOf migrates the database at dbURL and returns its count's slack
// (items_count_slack(): twice it below the bound is the far side).
func slackOf(t *testing.T, dbURL string) int64 {
	t.Helper()
	openMigrated(t, dbURL, store.Limits{Timeout: time.Minute})
	var slack int64
	if err := connect(t, dbURL).QueryRow(t.Context(), "SELECT items_count_slack()").Scan(&slack); err != nil {
		t.Fatal(err)
	}
	return slack
}

// partOf is the SQL of the part of the item count that a transaction
// moves, given its ID (migrations/postgres/00003_items_count_parts.sql).
const partOf = "1 + %s::text::bigint %% 64"

// A write in flight, one whose commit has not reached the disk yet, holds
// up no other write far from the item bound: each transaction moves its
// own part of the count. Before the count had parts, every insert and
// delete moved one row and waited for the commit of the write before it,
// so one slow WAL flush held up every writer past BERTH_DB_TIMEOUT.
func TestWritesInFlightHoldUpNoOthers(t *testing.T) {
	requirePostgres(t)
	for _, tt := range []struct {
		name  string
		bound int64
	}{
		{"no bound", 0},
		{"far from the bound", 100000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := freshDatabase(t)
			db := openMigrated(t, dbURL, store.Limits{MaxItems: tt.bound, Timeout: 2 * time.Second})
			ctx := t.Context()
			if _, err := db.Put(ctx, "gone", []byte(`1`)); err != nil {
				t.Fatal(err)
			}
			// A transaction by hand inserts one item and deletes another,
			// and stays open: as long as a commit waiting for its flush.
			conn := connect(t, dbURL)
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
			if _, err := tx.Exec(ctx, "INSERT INTO items (key, value) VALUES ('held', '1')"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM items WHERE key = 'gone'"); err != nil {
				t.Fatal(err)
			}
			var held int
			if err := tx.QueryRow(ctx, "SELECT "+fmt.Sprintf(partOf, "txid_current()")).Scan(&held); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				key := fmt.Sprint("k", i)
				if created, err := db.Put(ctx, key, []byte(`1`)); err != nil || !created {
					t.Fatalf("Put %s beside a write in flight = %v, %v; want it stored within Limits.Timeout (2s)", key, created, err)
				}
				// The premise: this write's part is not the one held (its
				// transaction ID is a few past the held one's).
				var part int
				if err := db.SQL().QueryRowContext(ctx, "SELECT "+fmt.Sprintf(partOf, "xmin")+" FROM items WHERE key = $1", key).Scan(&part); err != nil {
					t.Fatal(err)
				}
				if part == held {
					t.Fatalf("Put %s moved part %d, the one the open transaction holds: the test proves nothing", key, part)
				}
			}
			if err := db.Delete(ctx, "k0"); err != nil {
				t.Fatalf("Delete beside a write in flight: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if st, err := db.Stats(ctx); err != nil || st.Items != 5 { // k1 to k4, and held
				t.Fatalf("Stats after the commit = %+v, %v; want 5 items", st, err)
			}
		})
	}
}

// Near the bound the count is exact: an insert waits for the one in flight
// before it, and is refused if that one commits, stored if it rolls back.
func TestInsertNearTheBoundWaitsForTheOneInFlight(t *testing.T) {
	requirePostgres(t)
	for _, tt := range []struct {
		end     string
		refused bool
	}{
		{"COMMIT", true},
		{"ROLLBACK", false},
	} {
		t.Run(tt.end, func(t *testing.T) {
			dbURL := freshDatabase(t)
			db := openMigrated(t, dbURL, store.Limits{MaxItems: 2, Timeout: time.Minute})
			ctx := t.Context()
			if _, err := db.Put(ctx, "a", []byte(`1`)); err != nil {
				t.Fatal(err)
			}
			conn, watch := connect(t, dbURL), connect(t, dbURL)
			if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO items (key, value) VALUES ('b', '1')"); err != nil {
				t.Fatal(err)
			}
			put := make(chan error, 1)
			go func() {
				_, err := db.Put(ctx, "c", []byte(`1`))
				put <- err
			}()
			waitForLockWait(t, watch, "relation = 'item_count'::regclass AND mode = 'ExclusiveLock'", put, "an insert of the same count was in flight")
			if _, err := conn.Exec(ctx, tt.end); err != nil {
				t.Fatal(err)
			}
			err := <-put
			var limit *store.LimitError
			if refused := errors.As(err, &limit); refused != tt.refused || (!refused && err != nil) {
				t.Fatalf("Put c after the one in flight's %s = %v; want refused %v", tt.end, err, tt.refused)
			}
			if st, err := db.Stats(ctx); err != nil || st.Items != 2 {
				t.Fatalf("Stats = %+v, %v; want 2 items", st, err)
			}
		})
	}
}

// The bound holds exactly when writers cross from the count's far side,
// where they only move their parts, to its near side, where they count
// under its lock, together: no more items are stored than the bound,
// and none is refused below it.
func TestItemBoundIsExactAcrossItsTwoSides(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	bound := 2*slackOf(t, dbURL) + 40 // 40 items on the far side, then the near one
	db := openMigrated(t, dbURL, store.Limits{MaxItems: bound, Timeout: time.Minute})
	const writers = 16
	var created, refused atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > bound+2*writers {
					return
				}
				ok, err := db.Put(t.Context(), fmt.Sprint("w", n), []byte(`1`))
				var limit *store.LimitError
				switch {
				case errors.As(err, &limit):
					refused.Add(1)
				case err != nil:
					t.Error(err)
					return
				case ok:
					created.Add(1)
				}
			}
		})
	}
	wg.Wait()
	st, err := db.Stats(t.Context())
	if err != nil || created.Load() != bound || st.Items != bound || refused.Load() != 2*writers {
		t.Fatalf("bound %d: created %d, refused %d, Stats %+v (%v); want exactly %d created and %d refused", bound, created.Load(), refused.Load(), st, err, bound, 2*writers)
	}
}

// Inserts that found the count far from the bound, then waited for their
// parts while writes brought it near (here a transaction by hand that
// holds the count's lock and fills it to one below the bound), are tried
// again and counted exactly: one is stored, the others refused. Had they
// gone on as they began, every one would have been stored, past the bound.
func TestInsertsThatWaitedCountAgain(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	bound := 2*slackOf(t, dbURL) + 5
	db := openMigrated(t, dbURL, store.Limits{MaxItems: bound, Timeout: time.Minute})
	ctx := t.Context()
	conn, watch := connect(t, dbURL), connect(t, dbURL)
	if _, err := conn.Exec(ctx, "BEGIN; LOCK TABLE item_count IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const puts = 8
	errs := make(chan error, puts)
	for i := range puts {
		go func() {
			_, err := db.Put(ctx, fmt.Sprint("p", i), []byte(`1`))
			errs <- err
		}()
	}
	// Every Put has read the count (empty: far from the bound) and waits
	// for its part.
	for {
		var waiting int
		if err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE relation = 'item_count'::regclass AND NOT granted").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == puts {
			break
		}
		select {
		case err := <-errs:
			t.Fatalf("a Put returned %v while the count's lock was held", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO items (key, value) SELECT 'h' || g, '1' FROM generate_series(1, %d) AS g; COMMIT", bound-1)); err != nil {
		t.Fatal(err)
	}
	var stored, refused int
	for range puts {
		err := <-errs
		var limit *store.LimitError
		switch {
		case err == nil:
			stored++
		case errors.As(err, &limit):
			refused++
		default:
			t.Error(err)
		}
	}
	if st, err := db.Stats(ctx); err != nil || stored != 1 || refused != puts-1 || st.Items != bound {
		t.Fatalf("bound %d: %d stored, %d refused, Stats %+v (%v); want 1 stored, %d refused, %d items", bound, stored, refused, st, err, puts-1, bound)
	}
}

// A start that changes the bound waits for the inserts in flight, which
// were checked against the old one, and every insert after it is checked
// against the new: without the wait, inserts that found no bound could
// commit after it, past it.
func TestBoundChangeWaitsForTheInsertsInFlight(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	db := openMigrated(t, dbURL, store.Limits{Timeout: time.Minute}) // no bound
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, err := db.Put(ctx, k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	conn, watch := connect(t, dbURL), connect(t, dbURL)
	if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO items (key, value) VALUES ('c', '1')"); err != nil {
		t.Fatal(err)
	}
	bounded, err := store.Open(ctx, store.Config{URL: dbURL, Logger: quiet, Limits: store.Limits{MaxItems: 3, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer bounded.Close()
	migrated := make(chan error, 1)
	go func() { migrated <- bounded.Migrate(ctx, quiet) }()
	waitForLockWait(t, watch, "relation = 'item_count'::regclass AND mode = 'ExclusiveLock'", migrated, "an insert checked against no bound was in flight")
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	var limit *store.LimitError
	if _, err := db.Put(ctx, "d", []byte(`1`)); !errors.As(err, &limit) || limit.Limit != 3 {
		t.Fatalf("a fourth item after the bound of 3 = %v; want it refused", err)
	}
}

// A binary from before the count had parts would read part 1 as the whole
// count and, at its start, "recount" it into one too large: schema
// version 3 says a binary must know it to use it, and one rolled back to
// is refused (see Migrate).
func TestPartedCountNeedsABinaryThatKnowsIt(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	openMigrated(t, dbURL, store.Limits{})
	var worksFrom int64
	if err := connect(t, dbURL).QueryRow(t.Context(), "SELECT works_from FROM berth_schema WHERE version = 3").Scan(&worksFrom); err != nil || worksFrom != 3 {
		t.Fatalf("berth_schema says version 3 works from version %d (%v); want 3", worksFrom, err)
	}
}

// A statement that outlives Limits.Timeout (here an insert behind a lock
// held by hand) is canceled, and its connection kept: pgx's default
// closed it, so a database slow for a few seconds emptied the pool, and
// every write after it waited for a new connection's handshake. The
// cancel is inside the Timeout: the Put returns within it.
func TestTimedOutStatementKeepsItsConnection(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	const timeout = time.Second
	db := openMigrated(t, dbURL+"&pool_max_conns=1&pool_min_conns=1", store.Limits{Timeout: timeout})
	ctx := t.Context()
	var before, after int
	if err := db.SQL().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dbURL)
	if _, err := conn.Exec(ctx, "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := db.Put(ctx, "a", []byte(`1`))
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "57014") {
		t.Fatalf("Put behind an exclusive lock = %v; want it canceled in the server (SQLSTATE 57014, query_canceled)", err)
	}
	if took >= timeout {
		t.Errorf("the timed-out Put returned after %v, not within its Timeout (%v): the statement's cancel came after it", took, timeout)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("after a statement timed out, the pool's one connection is server process %d, not %d: the connection was closed", after, before)
	}
	t.Logf("the timed-out Put returned after %v (Timeout %v): %v", took.Round(time.Millisecond), timeout, err)
	if _, err := db.Put(ctx, "a", []byte(`1`)); err != nil {
		t.Errorf("Put once the lock was gone: %v", err)
	}
}

// A statement ended by a cancel request it did not send, while its own
// timeout has time left, is run again: such a cancel is most often the
// one sent for the statement before it on the connection, which timed
// out, reaching a slow server late. Here the cancel is pg_cancel_backend
// from another session, which PostgreSQL delivers the same way, sent
// while the Put waits behind a lock. Before the retry, the Put failed
// with SQLSTATE 57014 and the service answered 503.
func TestStrayCancelIsRetried(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	db := openMigrated(t, dbURL+"&pool_max_conns=1&pool_min_conns=1", store.Limits{Timeout: time.Minute})
	ctx := t.Context()
	var pid int
	if err := db.SQL().QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	conn, watch := connect(t, dbURL), connect(t, dbURL)
	if _, err := conn.Exec(ctx, "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	put := make(chan error, 1)
	go func() {
		_, err := db.Put(ctx, "a", []byte(`1`))
		put <- err
	}()
	waitForLockWait(t, watch, "relation = 'items'::regclass", put, "another session held the table")
	var started time.Time // the waiting statement's start
	if err := watch.QueryRow(ctx, "SELECT query_start FROM pg_stat_activity WHERE pid = $1", pid).Scan(&started); err != nil {
		t.Fatal(err)
	}
	var canceled bool
	if err := watch.QueryRow(ctx, "SELECT pg_cancel_backend($1)", pid).Scan(&canceled); err != nil || !canceled {
		t.Fatalf("pg_cancel_backend(%d) = %v, %v", pid, canceled, err)
	}
	// The Put's statement again, a new one waiting for the lock: it was
	// run again, not given up on.
	for {
		var again bool
		if err := watch.QueryRow(ctx, "SELECT query_start <> $2 AND wait_event_type IS NOT DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1", pid, started).Scan(&again); err != nil {
			t.Fatal(err)
		}
		if again {
			break
		}
		select {
		case err := <-put:
			t.Fatalf("Put returned %v after a cancel it did not send, with its Timeout's time left; want it run again", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatalf("Put after a stray cancel and the lock's release = %v; want it stored", err)
	}
	if v, err := db.Get(ctx, "a"); err != nil || string(v) != `1` {
		t.Fatalf("Get a = %q, %v; want 1", v, err)
	}
}
