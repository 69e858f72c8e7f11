// Package storepg runs package store's test suite, and its benchmark,
// against a real PostgreSQL: a container of POSTGRES_IMAGE (default
// postgres:15) started with testcontainers-go. With BERTHTEST_REQUIRE_POSTGRES
// set (CI sets it), a Docker that cannot start one fails the run instead of
// skipping it.
package storepg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

var (
	adminURL  string // the server's own database, to create one per test
	container *postgres.PostgresContainer
	startErr  error
	quiet     = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func TestMain(m *testing.M) {
	// Ryuk, testcontainers' reaper, is an image these machines cannot pull;
	// the container is terminated here instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// With the Docker daemon on this machine (no DOCKER_HOST), its published
	// ports are on localhost; testcontainers would otherwise guess a
	// gateway address when it believes it runs inside a container.
	if os.Getenv("DOCKER_HOST") == "" && os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	}
	ctx := context.Background()
	image := os.Getenv("POSTGRES_IMAGE")
	if image == "" {
		image = "postgres:15"
	}
	// startErr is the package's: requirePostgres reads it.
	var c *postgres.PostgresContainer
	c, startErr = postgres.Run(ctx, image, postgres.WithDatabase("berth"), postgres.WithUsername("berth"),
		postgres.WithPassword("berth-test"), postgres.BasicWaitStrategies())
	if startErr == nil {
		container = c
		adminURL, startErr = c.ConnectionString(ctx, "sslmode=disable")
	}
	code := m.Run()
	if c != nil {
		if err := testcontainers.TerminateContainer(c); err != nil {
			fmt.Fprintf(os.Stderr, "storepg: terminating the postgres container: %v\n", err)
		}
	}
	os.Exit(code)
}

// requirePostgres skips (or, with BERTHTEST_REQUIRE_POSTGRES, fails) the test
// when no PostgreSQL could be started.
func requirePostgres(t testing.TB) {
	t.Helper()
	if startErr == nil {
		return
	}
	if os.Getenv("BERTHTEST_REQUIRE_POSTGRES") != "" {
		t.Fatalf("BERTHTEST_REQUIRE_POSTGRES is set but no PostgreSQL could be started: %v", startErr)
	}
	t.Skipf("no PostgreSQL (set BERTHTEST_REQUIRE_POSTGRES to fail instead): %v", startErr)
}

var databases atomic.Int64

// freshDatabase creates an empty database on the server and returns its URL.
func freshDatabase(t testing.TB) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("t%d_%d", time.Now().UnixNano(), databases.Add(1))
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func opener(dbURL string) storetest.Opener {
	return storetest.Opens(store.Config{URL: dbURL, Logger: quiet})
}

func TestPostgres(t *testing.T) {
	requirePostgres(t)
	storetest.Run(t, func(t *testing.T) storetest.Opener { return opener(freshDatabase(t)) })
}

// Open returns with every connection the pool keeps open (pool_min_conns,
// the pool's size unless the URL says otherwise), so no request waits for
// a handshake (SCRAM, a server process each): a pool that opened more on
// demand did so in bursts, when the database was slow, and its requests
// timed out on their own handshakes. A URL may keep fewer open; Open's
// ping then leaves one.
func TestOpenWarmsConnections(t *testing.T) {
	requirePostgres(t)
	for _, tt := range []struct {
		maxConns, minConns string // "" leaves it to Open
		want               int
	}{{"", "", 8}, {"2", "", 2}, {"1", "", 1}, {"4", "0", 1}} {
		t.Run("pool_max_conns="+tt.maxConns+",pool_min_conns="+tt.minConns, func(t *testing.T) {
			u, err := url.Parse(freshDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			for k, v := range map[string]string{"pool_max_conns": tt.maxConns, "pool_min_conns": tt.minConns} {
				if v != "" {
					q.Set(k, v)
				}
			}
			u.RawQuery = q.Encode()
			db, err := store.Open(t.Context(), store.Config{URL: u.String(), Logger: quiet, Limits: store.Limits{Timeout: 2 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var open int // the query borrows one of the idle connections it counts
			if err := db.SQL().QueryRowContext(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").Scan(&open); err != nil {
				t.Fatal(err)
			}
			if open != tt.want {
				t.Fatalf("%d connections open to the database after Open, want %d", open, tt.want)
			}
		})
	}
}

// A database that stops answering costs a request no more than the store's
// timeout, and the pool recovers by itself once it answers again.
func TestOutageIsBoundedAndRidesOut(t *testing.T) {
	requirePostgres(t)
	const timeout = 500 * time.Millisecond
	db, err := opener(freshDatabase(t))(t.Context(), store.Limits{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Put(t.Context(), "before", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	docker := func(verb string) {
		t.Helper()
		if out, err := exec.Command("docker", verb, container.GetContainerID()).CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v: %s", verb, err, out)
		}
	}
	docker("pause") // the server stops answering; connections hang
	paused := true
	defer func() {
		if paused {
			docker("unpause")
		}
	}()
	for _, op := range []func() error{
		func() error { _, err := db.Get(t.Context(), "before"); return err },
		func() error { _, err := db.Put(t.Context(), "during", []byte(`1`)); return err },
	} {
		begin := time.Now()
		err := op()
		if took := time.Since(begin); err == nil || took > 4*timeout {
			t.Fatalf("during the outage: %v after %v; want an error within the %v timeout", err, took, timeout)
		}
		// The error tells a full pool, or one still opening connections,
		// from a database that did not answer on an open one.
		if !strings.Contains(err.Error(), "pool: ") || !strings.Contains(err.Error(), " of 8 connections in use, ") {
			t.Errorf("during the outage: %v; want the pool's state in it", err)
		}
	}
	docker("unpause")
	paused = false
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := db.Put(t.Context(), "after", []byte(`1`))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 10s of the database answering again: %v", err)
		}
	}
	if got, err := db.Get(t.Context(), "before"); err != nil || string(got) != "1" {
		t.Fatalf("after the outage: %q, %v", got, err)
	}
}

func BenchmarkItemsPostgres(b *testing.B) {
	requirePostgres(b)
	db, err := opener(freshDatabase(b))(context.Background(), store.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchmarkItems(b, db, "$1")
}

// A wrong password is refused at once, naming what to check, rather than
// waited on for BERTH_DB_WAIT as if the server were not there yet.
func TestWrongPasswordIsNotWaitedOn(t *testing.T) {
	requirePostgres(t)
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	_, err = store.Open(t.Context(), store.Config{URL: u.String(), Wait: 30 * time.Second, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "(SQLSTATE 28P01); not retried, as waiting will not mend it: check the user and password in BERTH_DATABASE_URL") ||
		strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("Open with a wrong password = %v", err)
	}
}

// A URL without a password takes PGPASSWORD's, as the chart deploys it: a
// password holding characters URLs reserve then needs no escaping (inside
// the URL, unescaped, it breaks the URL or names another host).
func TestPasswordFromPGPASSWORD(t *testing.T) {
	requirePostgres(t)
	const role, password = "berth_reserved", `p@ss:w/rd%?#&= 'x`
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	quoted := "'" + strings.ReplaceAll(password, "'", "''") + "'"
	if _, err := conn.Exec(t.Context(), "DROP ROLE IF EXISTS "+role); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE ROLE "+role+" LOGIN SUPERUSER PASSWORD "+quoted); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(freshDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	t.Setenv("PGPASSWORD", password)
	db, err := store.Open(t.Context(), store.Config{URL: u.String(), Wait: 10 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatalf("Open(%s) with PGPASSWORD set: %v", u.Redacted(), err)
	}
	defer db.Close()
	var user string
	if err := db.SQL().QueryRowContext(t.Context(), "SELECT current_user").Scan(&user); err != nil || user != role {
		t.Fatalf("connected as %q (%v), want %q", user, err, role)
	}
}

// gooseLockID is goose's PostgreSQL migration lock (its lock.DefaultLockID).
const gooseLockID = 4097083626

// A start that finds another process migrating waits for the migration
// lock as the migrate hook's deadline allows, trying every second: here the
// other process lets go after a second, and the start migrates well inside
// its 4s deadline. (With goose's own settings it tried every 5s, so it gave
// up at the deadline, and a long BERTH_MIGRATE_TIMEOUT ended at goose's 5
// minutes instead.)
func TestMigrateWaitsForAnotherProcesssLock(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	other := connect(t, dbURL)
	if _, err := other.Exec(t.Context(), "SELECT pg_advisory_lock($1)", gooseLockID); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), store.Config{URL: dbURL, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	released := make(chan error, 1)
	time.AfterFunc(time.Second, func() { // the other process's migration ends
		_, err := other.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", gooseLockID)
		released <- err
	})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	begin := time.Now()
	if err := db.Migrate(ctx, quiet); err != nil {
		t.Fatalf("Migrate after the lock was let go at 1s = %v (after %v), want it migrated within its 4s", err, time.Since(begin).Round(time.Millisecond))
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(t.Context(), "k", []byte(`1`)); err != nil {
		t.Errorf("Put after the migration: %v", err)
	}
}

// waitForLockWait returns once conn's server has a session waiting for a
// lock that which (a pg_locks condition) selects, and fails the test if
// call sending on migrated (a Migrate, say) returns first, while held says what it
// should have waited for.
func waitForLockWait(t *testing.T, conn *pgx.Conn, which string, migrated <-chan error, held string) {
	t.Helper()
	for {
		var waiting int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE "+which+" AND NOT granted").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		select {
		case err := <-migrated:
			t.Fatalf("the call under test returned %v while %s", err, held)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// berthSchemaLockID is the advisory lock store takes around its record of
// which binaries a schema version works with (berth_schema).
const berthSchemaLockID = 0x62657274

// A newer release that migrates while this binary's Migrate is between
// reading the schema version and applying its own migrations leaves it
// nothing to apply (goose leaves versions above a binary's alone), and
// Migrate still refuses a schema that says this binary cannot use it.
// Here the newer release's migration, in one transaction, holds the lock
// around berth_schema while this Migrate waits for it, having read the
// version already. Migrate read the version only before that wait, and
// returned nil on a schema it refuses a moment later.
func TestMigrateRefusesASchemaMigratedPastItMeanwhile(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	db, err := opener(dbURL)(t.Context(), store.Limits{}) // migrated to this binary's newest
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newer := connect(t, dbURL)
	tx, err := newer.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
	for _, q := range []string{
		fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", berthSchemaLockID),
		"INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)",
		"INSERT INTO berth_schema (version, works_from) VALUES (999, 999)",
	} {
		if _, err := tx.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	migrated := make(chan error, 1)
	go func() { migrated <- db.Migrate(t.Context(), quiet) }()
	// Once this Migrate waits for the lock (it has read the version), the
	// newer release's migration commits.
	waitForLockWait(t, newer, "locktype = 'advisory'", migrated, "the newer release's migration held its lock")
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err == nil || !strings.Contains(err.Error(), "newer than this binary knows") || !strings.Contains(err.Error(), "needs a binary that knows version 999") {
		t.Fatalf("Migrate as a newer release migrated past it = %v, want the schema refused", err)
	}
}

// A schema its owner migrated, then opened by a role that may read and
// write the tables but not create any (PostgreSQL 15 grants no CREATE on
// the public schema): with nothing to migrate, the start needs no more, as
// an admin role migrating and an app role serving would have it. The
// record of which versions a binary can use was written with CREATE TABLE
// IF NOT EXISTS on every start, which checks CREATE even when the table is
// there, and refused that role.
func TestMigrateWithNothingPendingNeedsNoCreate(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	owner, err := opener(dbURL)(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	owner.Close()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	role := "app_" + strings.TrimPrefix(u.Path, "/") // roles are the cluster's: one per database
	conn := connect(t, dbURL)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD 'pw'",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.UserPassword(role, "pw")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	db, err := store.Open(ctx, store.Config{URL: u.String(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, quiet); err != nil {
		t.Fatalf("Migrate as %s, nothing pending: %v", role, err)
	}
	if _, err := db.Put(ctx, "k", []byte(`1`)); err != nil {
		t.Fatalf("Put as %s: %v", role, err)
	}
}

// A migration that needs a lock another session holds (here a transaction
// left open after an UPDATE of items, as an operator's psql session might)
// does not hold up the service's requests behind it: it waits no longer
// than its lock_timeout, lets the writes queued behind it through, and
// tries again until that session ends. Another pod's writes, each bounded
// by the service's default database timeout (BERTH_DB_TIMEOUT, 1.5s),
// all succeed meanwhile. Out of time, the migration's error says what to
// look for. Unbounded, a pending migration's lock on items (CREATE TRIGGER
// of schema version 2 when this was found; version 3's LOCK TABLE here)
// kept every INSERT into items waiting behind it for as long as the other
// transaction lasted.
func TestMigrationWaitingForALockDoesNotHoldUpWrites(t *testing.T) {
	requirePostgres(t)
	dbURL := freshDatabase(t)
	limits := store.Limits{Timeout: 1500 * time.Millisecond} // the service's default
	open := func() *store.DB {
		db, err := store.Open(t.Context(), store.Config{URL: dbURL, Logger: quiet, Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db, pod := open(), open() // a pod starting, and one serving
	if err := db.Migrate(t.Context(), quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(t.Context(), "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	// Back to schema version 2, as an operator's goose down does, so that
	// version 3, which locks items while it splits their count, is pending.
	admin := connect(t, dbURL)
	down, err := os.ReadFile("../../internal/store/migrations/postgres/00003_items_count_parts.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, downSQL, ok := strings.Cut(string(down), "-- +goose Down")
	if !ok {
		t.Fatal("migration 00003 has no Down section")
	}
	for _, q := range []string{"BEGIN;" + downSQL + "; COMMIT", "DELETE FROM goose_db_version WHERE version_id = 3"} {
		if _, err := admin.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The other session: an UPDATE of items in a transaction left open. Its
	// lock lets other writes through, but not the migration's SHARE lock.
	other := connect(t, dbURL)
	tx, err := other.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
	if _, err := tx.Exec(t.Context(), "UPDATE items SET value = value WHERE key = 'a'"); err != nil {
		t.Fatal(err)
	}

	// Out of time: the error names what to look for.
	short, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := db.Migrate(short, quiet); err == nil || !strings.Contains(err.Error(), "another session held a lock the migration needs") || !strings.Contains(err.Error(), "pg_stat_activity") {
		t.Fatalf("Migrate with the lock held throughout = %v, want the lock's wait named", err)
	}

	migrated := make(chan error, 1)
	var migrateLog bytes.Buffer // read once Migrate has returned
	go func() { migrated <- db.Migrate(t.Context(), slog.New(slog.NewTextHandler(&migrateLog, nil))) }()
	// Wait until the migration's statement queues for the lock, then write
	// as the other pod does, while the migration gives up and tries again.
	waitForLockWait(t, admin, "relation = 'items'::regclass", migrated, "the other session still held its lock")
	for i := range 10 {
		if _, err := pod.Put(t.Context(), fmt.Sprint("b", i), []byte(`2`)); err != nil {
			t.Fatalf("write %d, queued behind the waiting migration: %v", i, err)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatalf("Migrate once the other session ended = %v", err)
	}
	var version int64
	if err := admin.QueryRow(t.Context(), "SELECT max(version_id) FROM goose_db_version").Scan(&version); err != nil || version != 3 {
		t.Errorf("schema version %d (%v) after the migration, want 3", version, err)
	}
	// The count came through the way down and up again, with writes
	// waiting meanwhile: a, and b0 to b9; the start found no drift to set
	// right (its recount would have hidden a count the migration lost).
	if st, err := pod.Stats(t.Context()); err != nil || st.Items != 11 {
		t.Errorf("Stats after the migration = %+v, %v; want 11 items", st, err)
	}
	if strings.Contains(migrateLog.String(), "recounted") {
		t.Errorf("the migration lost count of the items, and the start recounted them:\n%s", migrateLog.String())
	}
	// The service's own sessions keep the server's lock_timeout.
	var lockTimeout string
	if err := db.SQL().QueryRowContext(t.Context(), "SHOW lock_timeout").Scan(&lockTimeout); err != nil || lockTimeout != "0" {
		t.Errorf("the service's lock_timeout = %q (%v), want the server's 0", lockTimeout, err)
	}
}

// A write refused because the server is read-only (SQLSTATE 25006, as
// from a primary demoted by a failover, while the pool's connections to it
// stay open) fails, and drops the pool's connections, so the next write
// goes through a new connection, to the new primary. The pool kept the
// old connection, which refused every write until its hour-long lifetime
// ended. Here the pool's one connection is made read-only, and new ones
// are not.
func TestWritesLeaveAServerGoneReadOnly(t *testing.T) {
	requirePostgres(t)
	db, err := store.Open(t.Context(), store.Config{URL: freshDatabase(t) + "&pool_max_conns=1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(t.Context(), quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(t.Context(), "SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Put(t.Context(), "k", []byte(`1`))
	if err == nil || !strings.Contains(err.Error(), "25006") || errors.Is(err, store.ErrRefused) {
		t.Fatalf("a write on the read-only connection = %v, want its 25006, not marked ErrRefused (a retry may succeed)", err)
	}
	if _, err := db.Put(t.Context(), "k", []byte(`1`)); err != nil {
		t.Fatalf("the write after = %v, want it through a new connection", err)
	}
}
