package store

import (
	"context"
	"strings"
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
	} {
		t.Run(tt.url, func(t *testing.T) {
			pc, err := pgxpool.ParseConfig(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if tt.pgxDefault != 0 {
				pc.MaxConns = tt.pgxDefault // pgx's default on a node of that many CPUs
			}
			poolDefaults(pc, tt.url)
			if pc.MaxConns != tt.wantMax || pc.MinConns != tt.wantMin {
				t.Errorf("max %d, min %d; want %d and %d", pc.MaxConns, pc.MinConns, tt.wantMax, tt.wantMin)
			}
		})
	}
}

// A pool told to keep more connections open than it holds is refused at
// Open, naming both settings, rather than waiting for a connection that
// can never come until BERTH_DB_WAIT runs out.
func TestPoolMinAboveMaxIsRefused(t *testing.T) {
	for _, url := range []string{"postgres://db/x?pool_min_conns=9", "postgres://db/x?pool_max_conns=2&pool_min_conns=3"} {
		_, err := Open(context.Background(), Config{URL: url})
		if err == nil || !strings.Contains(err.Error(), "BERTH_DATABASE_URL: pool_min_conns=") || !strings.Contains(err.Error(), "make pool_min_conns at most pool_max_conns") {
			t.Errorf("%s: err = %v, want a refusal naming pool_min_conns and pool_max_conns", url, err)
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
