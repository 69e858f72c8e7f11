package store

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The pool is 8 connections, all kept open, whatever pgx's own default
// (one per CPU of the node: 64 on a 64-core node, per pod), unless the URL
// sizes it; a URL that sets only pool_max_conns keeps that many open.
func TestPoolDefaults(t *testing.T) {
	for _, tt := range []struct {
		url              string
		pgxDefault       int32
		wantMax, wantMin int32
	}{
		{"postgres://db/x", 64, 8, 8},
		{"postgres://db/x", 4, 8, 8},
		{"postgres://db/x?pool_max_conns=3&pool_min_conns=1", 0, 3, 1},
		{"postgres://db/x?pool_max_conns=3&pool_min_conns=0", 0, 3, 0},
		{"postgres://db/x?sslmode=disable&pool_max_conns=16", 0, 16, 16}, // the chart's pools
		{"postgres://db/x?pool_min_conns=2", 0, 8, 2},
		{"postgres://db/x?pool%5Fmax%5Fconns=3", 0, 3, 3},               // read as pgx reads it
		{"postgres://u:pool_max_conns@db/x", 0, 8, 8},                   // a password is not a setting
		{"host=db dbname=x pool_max_conns=5 pool_min_conns=2", 0, 5, 2}, // keyword/value
	} {
		t.Run(tt.url, func(t *testing.T) {
			pc, err := pgxpool.ParseConfig(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if tt.pgxDefault != 0 {
				pc.MaxConns = tt.pgxDefault // pgx's default on a node of that many CPUs
			}
			if err := poolDefaults(pc, tt.url); err != nil {
				t.Fatal(err)
			}
			if pc.MaxConns != tt.wantMax || pc.MinConns != tt.wantMin {
				t.Errorf("max %d, min %d; want %d and %d", pc.MaxConns, pc.MinConns, tt.wantMax, tt.wantMin)
			}
			if pc.MaxConnLifetimeJitter != pc.MaxConnLifetime/5 {
				t.Errorf("lifetime jitter %v of %v; want a fifth, so a pool opened at once does not expire at once", pc.MaxConnLifetimeJitter, pc.MaxConnLifetime)
			}
		})
	}
}

// A pool told to keep more connections open than it holds, or fewer than
// none, is refused at Open, naming the settings, rather than waiting for
// a connection that can never come until BERTH_DB_WAIT runs out (or, for
// a negative count, crashing).
func TestPoolSizeIsRefused(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"postgres://db/x?pool_min_conns=9", "BERTH_DATABASE_URL: pool_min_conns=9 keeps more connections open than the pool holds (8, as the URL does not set pool_max_conns): make pool_min_conns at most pool_max_conns"},
		{"postgres://db/x?pool_max_conns=2&pool_min_conns=3", "BERTH_DATABASE_URL: pool_min_conns=3 keeps more connections open than the pool holds (pool_max_conns=2): make pool_min_conns at most pool_max_conns"},
		{"postgres://db/x?pool_min_conns=-1", "BERTH_DATABASE_URL: pool_min_conns=-1: want 0 or more connections kept open (at most pool_max_conns)"},
	} {
		_, err := Open(context.Background(), Config{URL: tt.url})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err = %v\nwant %s", tt.url, err, tt.want)
		}
	}
}

// PostgreSQL's migration lock is tried every second until the context's
// deadline (the migrate hook's bound), not goose's fixed five minutes.
func TestLockTriesLastUntilTheDeadline(t *testing.T) {
	if _, ok := lockTries(context.Background()); ok {
		t.Fatal("tries without a deadline; want goose's default")
	}
	for _, tt := range []struct {
		left time.Duration
		min  uint64
	}{
		{time.Hour, 3599}, // an hour's wait, far past goose's five minutes
		{90 * time.Second, 89},
		{1500 * time.Millisecond, 2}, // a second and a half: two tries, not one
		{-time.Second, 1},            // past already: one try
	} {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(tt.left))
		tries, ok := lockTries(ctx)
		cancel()
		if !ok || tries < tt.min || tries > tt.min+2 {
			t.Errorf("%v left: %d tries (%v), want %d to %d", tt.left, tries, ok, tt.min, tt.min+2)
		}
	}
}

// An operation on PostgreSQL ends within Limits.Timeout, the cancel of a
// statement past it included: its statements are given cancelSlack less.
// SQLite's end with their context, and keep the whole Timeout.
func TestStatementsLeaveRoomForTheirCancel(t *testing.T) {
	for _, tt := range []struct {
		d             dialect
		timeout, want time.Duration
	}{
		{postgres, 1500 * time.Millisecond, 1250 * time.Millisecond}, // the service's default
		{postgres, time.Minute, time.Minute - 250*time.Millisecond},
		{postgres, 500 * time.Millisecond, 250 * time.Millisecond}, // the least that keeps the whole cancel inside
		{postgres, 400 * time.Millisecond, 200 * time.Millisecond}, // shorter: half
		{postgres, 10 * time.Millisecond, 5 * time.Millisecond},    // BERTH_DB_TIMEOUT's least
		{sqlite, 1500 * time.Millisecond, 1500 * time.Millisecond},
	} {
		if got := statementTimeout(tt.d, tt.timeout); got != tt.want {
			t.Errorf("%s, Timeout %v: statements get %v, want %v", tt.d.name, tt.timeout, got, tt.want)
		}
	}
	// bound is what every operation uses.
	s := &DB{d: postgres, limits: Limits{Timeout: 1500 * time.Millisecond}}
	before := time.Now()
	ctx, cancel := s.bound(context.Background())
	defer cancel()
	after := time.Now()
	if dl, ok := ctx.Deadline(); !ok || dl.Before(before.Add(1250*time.Millisecond)) || dl.After(after.Add(1250*time.Millisecond)) {
		t.Errorf("bound's deadline is %v after it was asked (%v); want 1.25s, the Timeout less the cancel's 250ms", dl.Sub(before), ok)
	}
}

// Open's attempts to reach the database (a ping, and the pool's
// handshakes) have the whole Timeout: no request waits on them, and eight
// handshakes on a busy machine did not fit the statements' share.
func TestOpenAttemptsKeepTheWholeTimeout(t *testing.T) {
	rec := &recordingConn{}
	db := sql.OpenDB(rec)
	defer db.Close()
	s := &DB{db: db, d: postgres, limits: Limits{Timeout: 1500 * time.Millisecond}, where: "recording"}
	before := time.Now()
	if err := s.wait(t.Context(), 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if len(rec.queries) != 1 || rec.queries[0] != "PING" {
		t.Fatalf("statements run: %q, want one ping", rec.queries)
	}
	if d := rec.deadlines[0]; d.Before(before.Add(s.limits.Timeout)) || d.After(after.Add(s.limits.Timeout)) {
		t.Errorf("the ping's deadline is %v after the wait began; want the whole Timeout (%v)", d.Sub(before), s.limits.Timeout)
	}
}
