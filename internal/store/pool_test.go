package store

import (
	"testing"

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
