package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
