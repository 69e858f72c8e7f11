package backoff

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/retrytest"
)

func TestRetry(t *testing.T) {
	ms := retrytest.Ms
	tests := []struct {
		name     string
		aim      time.Duration // from the start; 0: none
		final    bool
		ctxEnds  time.Duration // 0: never
		succeed  int           // the attempt that succeeds; 0: none
		attempts []time.Duration
		retrying int // calls of Retrying
		err      string
	}{
		{"final: the last attempt at the aim", 2 * time.Second, true, 0, 0, ms(0, 100, 300, 700, 1500, 2000), 5, "refused"},
		{"final: success at the aim", 2 * time.Second, true, 0, 6, ms(0, 100, 300, 700, 1500, 2000), 5, ""},
		{"final: backoff capped at Max", 8 * time.Second, true, 0, 0, ms(0, 100, 300, 700, 1500, 3100, 5100, 7100, 8000), 8, "refused"},
		{"final: aim at the start, one attempt", 0, true, 0, 0, ms(0), 0, "refused"},
		{"not final: after the aim, until ctx ends", 2 * time.Second, false, 5 * time.Second, 0, ms(0, 100, 300, 700, 1500, 2000, 4000), 7, "refused"},
		{"no aim: the doubling as it falls", 0, false, 2 * time.Second, 0, ms(0, 100, 300, 700, 1500), 5, "refused"},
		{"ctx ends before a final aim", 2 * time.Second, true, 200 * time.Millisecond, 0, ms(0, 100), 2, "refused"},
		{"success at once", time.Second, true, 0, 1, ms(0), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.ctxEnds > 0 {
					time.AfterFunc(tt.ctxEnds, cancel)
				}
				s := Schedule{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Final: tt.final}
				if tt.aim > 0 || tt.final {
					s.Aim = time.Now().Add(tt.aim)
				}
				retrying := 0
				s.Retrying = func(attempt int, err error) {
					if retrying++; attempt != retrying || err == nil {
						t.Errorf("Retrying(%d, %v) on call %d", attempt, err, retrying)
					}
				}
				attempts := retrytest.Record(t, tt.succeed, "refused")
				n, err := s.Retry(ctx, attempts.Try)
				attempts.Check(tt.attempts, err, tt.err)
				if n != len(tt.attempts) {
					t.Errorf("Retry counted %d attempts, made %d", n, len(tt.attempts))
				}
				if retrying != tt.retrying {
					t.Errorf("Retrying called %d times, want %d", retrying, tt.retrying)
				}
			})
		})
	}
}

// A failure GiveUp calls hopeless ends the retries at once; the ones
// before it are retried as usual.
func TestRetryGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		var at []time.Duration
		n, err := Schedule{Initial: 100 * time.Millisecond, Max: time.Second, Aim: begin.Add(time.Minute), Final: true,
			GiveUp: func(err error) bool { return err.Error() == "wrong password" }}.Retry(t.Context(), func() error {
			at = append(at, time.Since(begin))
			if len(at) < 3 {
				return errors.New("refused")
			}
			return errors.New("wrong password")
		})
		if n != 3 || err == nil || err.Error() != "wrong password" || !slices.Equal(at, retrytest.Ms(0, 100, 300)) {
			t.Fatalf("Retry = %d, %v at %v; want 3 attempts, the last the hopeless one", n, err, at)
		}
	})
}

// An attempt that ctx's end cuts short says nothing about why the thing
// waited for was not ready: Retry returns the failure before it.
func TestRetryKeepsTheLastRealFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		calls := 0
		n, err := Schedule{Initial: 100 * time.Millisecond, Max: time.Second}.Retry(ctx, func() error {
			if calls++; calls == 1 {
				return errors.New("503 Service Unavailable")
			}
			<-ctx.Done() // the second attempt hangs until the wait ends
			return ctx.Err()
		})
		if n != 2 || err == nil || err.Error() != "503 Service Unavailable" {
			t.Fatalf("Retry = %d, %v; want 2 attempts and the 503, not the deadline that cut the second short", n, err)
		}
	})
}

// A pause long enough that doubling it overflows (an Initial of
// math.MaxInt64, "no retry before the aim", with a Max of "no cap") stays
// as long after the aim: the doubled pause must not wrap negative and turn
// the wait after the aim into a hot loop of attempts until ctx ends.
func TestRetryLongPauseDoesNotOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		begin := time.Now()
		var at []time.Duration
		_, _ = Schedule{Initial: math.MaxInt64, Max: math.MaxInt64, Aim: begin.Add(time.Second)}.Retry(ctx, func() error {
			at = append(at, time.Since(begin))
			if len(at) >= 100 { // a hot loop: end it, as ctx would (in real time)
				cancel()
			}
			return errors.New("refused")
		})
		if len(at) != 2 {
			t.Fatalf("%d attempts (the first ones at %v); want 2, at once and at the aim, then the full pause", len(at), at[:min(len(at), 5)])
		}
	})
}
