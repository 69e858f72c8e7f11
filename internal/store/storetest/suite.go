// Package storetest is the one test suite of package store, run against
// SQLite by the store's own tests and against a real PostgreSQL by the e2e
// module's: both backends must behave alike.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/internal/store"
)

// Opener opens the same database every time it is called, with the limits
// given, and migrates it.
type Opener func(ctx context.Context, limits store.Limits) (*store.DB, error)

// Opens returns the Opener of the database cfg names: each call opens it
// with the limits given (in place of cfg.Limits) and migrates it; it logs
// nowhere unless cfg.Logger is set.
func Opens(cfg store.Config) Opener {
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	return func(ctx context.Context, limits store.Limits) (*store.DB, error) {
		c := cfg // calls may run at once: each sets the limits on its own copy
		c.Limits = limits
		db, err := store.Open(ctx, c)
		if err != nil {
			return nil, err
		}
		if err := db.Migrate(ctx, c.Logger); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	}
}

// Run runs the suite. fresh returns an Opener of a new, empty database for
// each test.
func Run(t *testing.T, fresh func(t *testing.T) Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"CRUD", testCRUD},
		{"Stats", testStats},
		{"ItemLimitIsExactAndWritesNothing", testItemLimit},
		{"ItemLimitUnderConcurrentWriters", testItemLimitConcurrent},
		{"ItemLimitIsTheDatabasesOwn", testItemLimitShared},
		{"EmptyingTheTableByHandResetsTheCount", testEmptiedByHand},
		{"ADriftedCountIsSetRightAtStart", testDriftedCount},
		{"RecountsBesideConcurrentWriters", testRecountBesideWriters},
		{"KeysAndValuesAreChecked", testKeysAndValues},
		{"ConcurrentWritersOfOneKey", testOneKeyConcurrent},
		{"CommittedWritesSurviveReopening", testReopen},
		{"MigrationsAreIdempotentAndConcurrent", testMigrateConcurrent},
		{"NewerSchemaIsRefused", testNewerSchema},
		{"RollbackToABinaryTheSchemaAllows", testRolledBack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, fresh(t)) })
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustOpen(t *testing.T, open Opener, limits store.Limits) *store.DB {
	t.Helper()
	db, err := open(t.Context(), limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testCRUD(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	ctx := t.Context()
	if _, err := db.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
	}
	steps := []struct {
		value   string
		created bool
	}{{`{"v":1}`, true}, {`{"v":2}`, false}}
	for _, s := range steps {
		created, err := db.Put(ctx, "k", []byte(s.value))
		if err != nil || created != s.created {
			t.Fatalf("Put %s = %v, %v; want created %v", s.value, created, err, s.created)
		}
		got, err := db.Get(ctx, "k")
		if err != nil || string(got) != s.value {
			t.Fatalf("Get after Put %s = %q, %v", s.value, got, err)
		}
	}
	// A nil value is Go's empty one, as []byte{} is: stored, and read back
	// empty (not NULL, which the table refuses).
	for _, empty := range [][]byte{nil, {}} {
		if _, err := db.Put(ctx, "empty", empty); err != nil {
			t.Fatalf("Put of %#v = %v; want it stored as an empty value", empty, err)
		}
		if got, err := db.Get(ctx, "empty"); err != nil || len(got) != 0 {
			t.Fatalf("Get after Put of %#v = %q, %v; want an empty value", empty, got, err)
		}
	}
	if err := db.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := db.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
}

func testStats(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	ctx := t.Context()
	for i, v := range []string{`1`, `"ab"`, `[1,2]`} {
		if _, err := db.Put(ctx, fmt.Sprint("k", i), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Put(ctx, "k0", []byte(`10`)); err != nil { // a replacement counts once
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(ctx)
	if err != nil || st != (store.Stats{Items: 2, Bytes: int64(len(`10`) + len(`[1,2]`))}) {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

func testItemLimit(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{MaxItems: 3})
	ctx := t.Context()
	for i := range 3 {
		if _, err := db.Put(ctx, fmt.Sprint("k", i), []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := db.Put(ctx, "extra", []byte(`1`))
	var le *store.LimitError
	if !errors.As(err, &le) || le.What != "items" || le.Limit != 3 || !strings.Contains(err.Error(), "limit of 3 items") {
		t.Fatalf("Put past the limit = %v", err)
	}
	if _, err := db.Get(ctx, "extra"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused item was written: %v", err)
	}
	if created, err := db.Put(ctx, "k1", []byte(`2`)); err != nil || created {
		t.Fatalf("replacing at the limit = %v, %v; want allowed", created, err)
	}
	if err := db.Delete(ctx, "k0"); err != nil {
		t.Fatal(err)
	}
	if created, err := db.Put(ctx, "extra", []byte(`1`)); err != nil || !created {
		t.Fatalf("a new key after a delete = %v, %v", created, err)
	}
	if st, _ := db.Stats(ctx); st.Items != 3 {
		t.Fatalf("items = %d, want 3", st.Items)
	}
}

func testItemLimitConcurrent(t *testing.T, open Opener) {
	const limit, writers = 10, 40
	db := mustOpen(t, open, store.Limits{MaxItems: limit})
	var created, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			ok, err := db.Put(t.Context(), fmt.Sprint("w", i), []byte(`1`))
			var le *store.LimitError
			switch {
			case errors.As(err, &le):
				refused.Add(1)
			case err != nil:
				t.Error(err)
			case ok:
				created.Add(1)
			}
		})
	}
	wg.Wait()
	st, err := db.Stats(t.Context())
	if created.Load() != limit || refused.Load() != writers-limit || err != nil || st.Items != limit {
		t.Fatalf("created %d, refused %d, stored %d (%v); want exactly %d created", created.Load(), refused.Load(), st.Items, err, limit)
	}
}

// The bound lives in the database, set by the last process to migrate it
// (a rollout changing BERTH_MAX_ITEMS): a pod that started with another
// bound is held to the database's, and its refusal says which.
func testItemLimitShared(t *testing.T, open Opener) {
	old := mustOpen(t, open, store.Limits{MaxItems: 100})
	_ = mustOpen(t, open, store.Limits{MaxItems: 2}) // migrates last
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, err := old.Put(ctx, k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := old.Put(ctx, "c", []byte(`1`))
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != 2 || !strings.Contains(err.Error(), "limit of 2 items") {
		t.Fatalf("Put past the database's bound = %v, want the bound of 2 named", err)
	}
}

// An operator who empties the table by hand (TRUNCATE on PostgreSQL,
// which fires no row triggers; DELETE on SQLite, which has no TRUNCATE)
// leaves a count of zero, not one that refuses new items.
func testEmptiedByHand(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{MaxItems: 2})
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, err := db.Put(ctx, k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	empty := "TRUNCATE items"
	if _, err := db.SQL().ExecContext(ctx, "SELECT 1 FROM pg_class LIMIT 1"); err != nil {
		empty = "DELETE FROM items" // SQLite
	}
	if _, err := db.SQL().ExecContext(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if st, err := db.Stats(ctx); err != nil || st.Items != 0 {
		t.Fatalf("after %s: %+v, %v; want 0 items", empty, st, err)
	}
	for _, k := range []string{"c", "d"} {
		if _, err := db.Put(ctx, k, []byte(`1`)); err != nil {
			t.Fatalf("a new item after %s: %v", empty, err)
		}
	}
}

// A count that drifted from its table (a TRUNCATE before the trigger that
// resets it, on a database migrated since) refused new items while the
// table had room, and nothing but SQL by hand mended it: the next start
// sets it right.
func testDriftedCount(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{MaxItems: 3})
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, err := db.Put(ctx, k, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SQL().ExecContext(ctx, "UPDATE item_count SET n = n + 1 WHERE id = 1"); err != nil { // 3 counted
		t.Fatal(err)
	}
	var limit *store.LimitError
	if _, err := db.Put(ctx, "c", []byte(`1`)); !errors.As(err, &limit) {
		t.Fatalf("a new item beside a drifted count = %v, want it refused (the drift this test mends)", err)
	}
	db = mustOpen(t, open, store.Limits{MaxItems: 3}) // a start: it migrates
	if st, err := db.Stats(ctx); err != nil || st.Items != 2 {
		t.Fatalf("after a start: %+v, %v; want the 2 items the table holds", st, err)
	}
	if _, err := db.Put(ctx, "c", []byte(`1`)); err != nil {
		t.Fatalf("a new item once the count is right: %v", err)
	}
	if _, err := db.Put(ctx, "d", []byte(`1`)); !errors.As(err, &limit) {
		t.Fatalf("a fourth item = %v, want the bound of 3 kept", err)
	}
}

// Starts that set a drifted count right while other processes write leave
// it exact: the recount keeps writers out while it counts (on PostgreSQL,
// without its lock, a write committed during the count was lost from it,
// and the next start found a drift of its own making).
func testRecountBesideWriters(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	ctx := t.Context()
	stop, busy := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i%16)
				var err error
				if i%3 == 2 {
					err = db.Delete(ctx, key)
				} else {
					_, err = db.Put(ctx, key, []byte(`1`))
				}
				if err == nil && acked.Add(1) == 40 {
					once.Do(func() { close(busy) })
				}
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters() // also when a start fails
	<-busy
	for range 5 {
		if _, err := db.SQL().ExecContext(ctx, "UPDATE item_count SET n = n + 7 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		started, err := open(ctx, store.Limits{}) // a start, which recounts
		if err != nil {
			t.Fatal(err)
		}
		started.Close()
	}
	stopWriters()
	var n, items int64
	if err := db.SQL().QueryRowContext(ctx, "SELECT (SELECT CAST(SUM(n) AS bigint) FROM item_count), (SELECT count(*) FROM items)").Scan(&n, &items); err != nil {
		t.Fatal(err)
	}
	if n != items {
		t.Errorf("after 5 recounts beside %d writes: the count is %d, the table holds %d", acked.Load(), n, items)
	}
}

func testKeysAndValues(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{MaxKeyBytes: 8, MaxValueBytes: 4})
	tests := []struct {
		key, value, want string
	}{
		{"", `1`, "invalid key: empty"},
		{"123456789", `1`, "key of 9 bytes is over the 8-byte limit"},
		{"a\xffb", `1`, "invalid key: not valid UTF-8"},
		{"a\nb", `1`, "invalid key: control character U+000A"},
		{"ok", `12345`, "value of 5 bytes is over the 4-byte limit"},
		{"12345678", `1234`, ""},
		{"ünï", `1`, ""},
	}
	for _, tt := range tests {
		_, err := db.Put(t.Context(), tt.key, []byte(tt.value))
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Put(%q, %q) = %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
	if st, err := db.Stats(t.Context()); err != nil || st.Items != 2 {
		t.Fatalf("stored %d items (%v); want only the 2 valid ones", st.Items, err)
	}
	if _, err := db.Get(t.Context(), "a\nb"); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("Get of an invalid key = %v", err)
	}
}

func testOneKeyConcurrent(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	// Rounds of 20 writers released at once on a new key each: a race
	// between the update that finds nothing and the insert shows in some
	// rounds only, so one round alone would often miss it.
	const rounds, writers = 10, 20
	for round := range rounds {
		key := fmt.Sprintf("same-%d", round)
		var created atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				ok, err := db.Put(t.Context(), key, fmt.Appendf(nil, `%d`, i))
				if err != nil {
					t.Errorf("round %d: %v", round, err)
				}
				if ok {
					created.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if created.Load() != 1 {
			t.Fatalf("round %d: %d of %d writers of one new key saw it created; want 1", round, created.Load(), writers)
		}
	}
	st, _ := db.Stats(t.Context())
	if st.Items != rounds {
		t.Fatalf("%d items stored after %d rounds on a key each; want %d", st.Items, rounds, rounds)
	}
}

func testReopen(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	value := bytes.Repeat([]byte("x"), 100<<10)
	value[0], value[len(value)-1] = '"', '"'
	if _, err := db.Put(t.Context(), "big", value); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustOpen(t, open, store.Limits{})
	got, err := again.Get(t.Context(), "big")
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("after reopening: %d bytes, %v", len(got), err)
	}
}

// Three replicas starting at once on an empty database each open and
// migrate it (the Opener migrates), and migrate again: one applies the
// schema, the others wait for it and find nothing to do.
func testMigrateConcurrent(t *testing.T, open Opener) {
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			other, err := open(t.Context(), store.Limits{})
			if err != nil {
				t.Error(err)
				return
			}
			defer other.Close()
			if err := other.Migrate(t.Context(), quiet); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	db := mustOpen(t, open, store.Limits{})
	if _, err := db.Put(t.Context(), "k", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
}

func testNewerSchema(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{})
	if _, err := db.SQL().ExecContext(t.Context(), "INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)"); err != nil {
		t.Fatal(err)
	}
	err := db.Migrate(t.Context(), quiet)
	if err == nil || !strings.Contains(err.Error(), "has schema version 999, newer than this binary knows (") {
		t.Fatalf("Migrate over a newer schema = %v", err)
	}
}

// A rollback: a newer release migrated the database, and its schema says
// which binaries can still use it (berth_schema). One that knows that
// version goes on, using the database as it is; one that does not is
// refused, told which version it would need.
func testRolledBack(t *testing.T, open Opener) {
	db := mustOpen(t, open, store.Limits{MaxItems: 5})
	ctx := t.Context()
	if _, err := db.Put(ctx, "kept", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	var known int64
	if err := db.SQL().QueryRowContext(ctx, "SELECT max(version) FROM berth_schema").Scan(&known); err != nil || known < 1 {
		t.Fatalf("this binary recorded no version in berth_schema: %d, %v", known, err)
	}
	// What a newer release (version 999) would leave behind.
	for _, q := range []string{
		"INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)",
		fmt.Sprintf("INSERT INTO berth_schema (version, works_from) VALUES (999, %d)", known),
	} {
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rolledBack, err := open(ctx, store.Limits{MaxItems: 5})
	if err != nil {
		t.Fatalf("a binary the newer schema says can use it was refused: %v", err)
	}
	defer rolledBack.Close()
	if v, err := rolledBack.Get(ctx, "kept"); err != nil || string(v) != "1" {
		t.Errorf("Get after the rollback = %q, %v", v, err)
	}
	if _, err := rolledBack.Put(ctx, "new", []byte(`2`)); err != nil {
		t.Errorf("Put after the rollback: %v", err)
	}

	if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf("UPDATE berth_schema SET works_from = %d WHERE version = 999", known+1)); err != nil {
		t.Fatal(err)
	}
	err = db.Migrate(ctx, quiet)
	if want := fmt.Sprintf("has schema version 999, newer than this binary knows (%d) and needs a binary that knows version %d", known, known+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Migrate under a schema that needs a newer binary = %v, want %q", err, want)
	}
}
