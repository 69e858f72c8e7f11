// Package retrytest checks a retry loop's schedule: when each attempt came
// and what the loop returned. Run under testing/synctest, whose clock moves
// only while every goroutine waits, the times are exact, so a table can
// give them to the millisecond.
package retrytest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Attempts records the attempts of one loop under test.
type Attempts struct {
	tb      testing.TB
	begin   time.Time
	succeed int
	fail    error
	// At holds when each attempt came, from Record's call.
	At []time.Duration
}

// Record starts the clock: attempt number succeed (counting from 1; 0 for
// none) succeeds and every other fails with the error failure.
func Record(tb testing.TB, succeed int, failure string) *Attempts {
	return &Attempts{tb: tb, begin: time.Now(), succeed: succeed, fail: errors.New(failure)}
}

// Try is one attempt: the loop under test calls it. A loop that goes on
// past 100 attempts fails the test rather than run forever.
func (a *Attempts) Try() error {
	a.At = append(a.At, time.Since(a.begin))
	if len(a.At) > 100 {
		a.tb.Fatalf("more than 100 attempts, at %v", a.At[len(a.At)-3:])
	}
	if len(a.At) == a.succeed {
		return nil
	}
	return a.fail
}

// Check fails the test unless the attempts came at want and the loop's
// err contains wantErr ("" for none).
func (a *Attempts) Check(want []time.Duration, err error, wantErr string) {
	a.tb.Helper()
	if !slices.Equal(a.At, want) {
		a.tb.Errorf("attempts at %v, want %v", a.At, want)
	}
	if (err == nil) != (wantErr == "") || (err != nil && !strings.Contains(err.Error(), wantErr)) {
		a.tb.Errorf("err = %v, want %q", err, wantErr)
	}
}

// Ms is a schedule in whole milliseconds.
func Ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, n := range v {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}
