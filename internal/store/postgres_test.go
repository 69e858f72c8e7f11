package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The pool holds at most 16 connections and opens 4 early, whatever pgx's
// own default (one per CPU of the node: 64 on a 64-core node, per pod),
// unless the URL sizes it.
func TestPoolDefaults(t *testing.T) {
	for _, tt := range []struct {
		url               string
		pgxDefault        int32
		wantMax, wantWarm int32
	}{
		{"postgres://db/x", 64, 16, 4},
		{"postgres://db/x", 4, 16, 4},
		{"postgres://db/x?pool_max_conns=3&pool_min_conns=1", 0, 3, 1},
		{"postgres://db/x?sslmode=disable&pool_max_conns=2", 0, 2, 2}, // the chart's small pools
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
			if pc.MaxConns != tt.wantMax || pc.MinConns != tt.wantWarm {
				t.Errorf("max %d, min %d; want %d and %d", pc.MaxConns, pc.MinConns, tt.wantMax, tt.wantWarm)
			}
		})
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
