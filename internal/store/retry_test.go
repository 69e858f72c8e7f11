package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/retrytest"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestRetryUsesTheWholeWait: attempts back off from 100ms to 2s, and the
// last comes when the wait is up rather than a backoff before it, so a
// database that answers just inside BERTH_DB_WAIT is found (the schedule's
// own rules are internal/backoff's tests; these pin the store's settings
// of it and its errors).
func TestRetryUsesTheWholeWait(t *testing.T) {
	ms := retrytest.Ms
	tests := []struct {
		name      string
		wait      time.Duration
		answersAt int // the attempt that succeeds; 0: none
		cancelAt  time.Duration
		attempts  []time.Duration
		err       string
	}{
		{"never answers", 2 * time.Second, 0, 0, ms(0, 100, 300, 700, 1500, 2000), "did not answer within BERTH_DB_WAIT=2s (6 attempts): refused"},
		{"backoff capped at 2s", 8 * time.Second, 0, 0, ms(0, 100, 300, 700, 1500, 3100, 5100, 7100, 8000), "(9 attempts)"},
		{"no wait: one attempt", 0, 0, 0, ms(0), "within BERTH_DB_WAIT=0s (1 attempts)"},
		{"cancelled while waiting", 2 * time.Second, 0, 200 * time.Millisecond, ms(0, 100), "context canceled (last failure: refused)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.cancelAt > 0 {
					time.AfterFunc(tt.cancelAt, cancel)
				}
				attempts := retrytest.Record(t, tt.answersAt, "refused")
				err := retry(ctx, "db", tt.wait, slog.New(slog.NewTextHandler(io.Discard, nil)), attempts.Try)
				attempts.Check(tt.attempts, err, tt.err)
			})
		})
	}
}

// A failure no wait can mend (refused credentials) ends the wait at once
// and says what to change; a server still starting is waited for.
func TestRetryGivesUpOnRefusedCredentials(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		attempts int
		want     string
	}{
		{"wrong password", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "berth"`}, 1,
			"database db: FATAL: password authentication failed for user \"berth\" (SQLSTATE 28P01); not retried, as waiting will not mend it: check the user and password in BERTH_DATABASE_URL"},
		{"no pg_hba entry", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: "no pg_hba.conf entry"}, 1, "not retried"},
		{"starting up", &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}, 6, "did not answer within BERTH_DB_WAIT=2s (6 attempts)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := 0
				err := retry(t.Context(), "db", 2*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)), func() error { n++; return tt.err })
				if n != tt.attempts || err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("%d attempts, err = %v; want %d and %q", n, err, tt.attempts, tt.want)
				}
			})
		})
	}
}

// A data directory the service may not write is named with the fix, not
// waited on.
func TestHopelessNamesTheFix(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/data/berth.db.lock", Err: syscall.EACCES}
	if got := hopeless(fmt.Errorf("lock: %w", denied)); !strings.Contains(got, "make BERTH_DATA_DIR, and berth.db in it, a directory and a file it may write (in a pod, set fsGroup)") {
		t.Errorf("hopeless(permission denied) = %q", got)
	}
	if got := hopeless(errors.New("connection refused")); got != "" {
		t.Errorf("hopeless(connection refused) = %q, want none", got)
	}
}

// A statement ended by a cancel request while its own context is live was
// ended by a cancel it never asked for (the statement before it on the
// connection timed out, and its cancel came late): it is run again. Its
// own cancel, which comes once its context has ended, and any other
// failure, are not.
func TestStrayCancelIsRetried(t *testing.T) {
	userCancel := &pgconn.PgError{Severity: "ERROR", Code: "57014", Message: "canceling statement due to user request"}
	statementTimeout := &pgconn.PgError{Severity: "ERROR", Code: "57014", Message: "canceling statement due to statement timeout"}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		fails []error // op's results, in turn, then nil
		calls int
		err   error
	}{
		{"stray cancel, then success", context.Background(), []error{userCancel}, 2, nil},
		{"wrapped as database/sql does", context.Background(), []error{fmt.Errorf("scan: %w", userCancel)}, 2, nil},
		{"three stray cancels: given up", context.Background(), []error{userCancel, userCancel, userCancel}, 3, userCancel},
		{"its own cancel: context ended", ended, []error{userCancel}, 1, userCancel},
		{"a statement_timeout of the URL's", context.Background(), []error{statementTimeout}, 1, statementTimeout},
		{"count near its bound, then a stray cancel", context.Background(), []error{&pgconn.PgError{Code: "40001", Message: "berth: item count came near its bound while this insert waited; try it again"}, userCancel}, 3, nil},
		{"other failure", context.Background(), []error{io.ErrUnexpectedEOF}, 1, io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retrying(tt.ctx, func() error {
				calls++
				if calls <= len(tt.fails) {
					return tt.fails[calls-1]
				}
				return nil
			})
			if calls != tt.calls || !errors.Is(err, tt.err) {
				t.Fatalf("%d calls, err = %v; want %d calls, err %v", calls, err, tt.calls, tt.err)
			}
		})
	}
}
