package store

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/retrytest"
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
