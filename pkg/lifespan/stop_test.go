package lifespan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestStopIsBestEffort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := &App{Name: "api", StopTimeout: 2 * time.Second}
		l.Append(
			recorded(j, "db", nil, nil),
			Hook{Name: "panicky", Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(context.Context) error { j.add("stop panicky"); panic("oops") }, nil
			}},
			Hook{Name: "stuck", Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(ctx context.Context) error {
					j.add("stop stuck")
					<-ctx.Done()
					return ctx.Err()
				}, nil
			}},
			recorded(j, "flaky", nil, errors.New("flush failed")),
		)
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		err := l.Stop(t.Context())
		want := []string{"start db", "start flaky", "stop flaky", "stop stuck", "stop panicky", "stop db"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Errorf("journal = %q, want %q", got, want)
		}
		for _, s := range []string{`hook "flaky": stop: flush failed`, `hook "stuck": stop: context deadline exceeded`, `hook "panicky": stop: panic: oops`} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("Stop error %v does not contain %q", err, s)
			}
		}
		if took := time.Since(begin); took != 2*time.Second {
			t.Errorf("Stop took %v, want the stuck hook's 2s timeout", took)
		}
	})
}

func TestStopAfterDeadlineStillCallsEveryStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			name     string
			leftover time.Duration
			done     bool
		}
		var calls []call
		hook := func(name string, hang bool) Hook {
			return Hook{Name: name, Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(ctx context.Context) error {
					dl, _ := ctx.Deadline()
					calls = append(calls, call{name, time.Until(dl), ctx.Err() != nil})
					if hang {
						<-ctx.Done()
						return ctx.Err()
					}
					return nil
				}, nil
			}}
		}
		l := &App{Name: "api", StopTimeout: 10 * time.Second, lateGrace: 50 * time.Millisecond}
		l.Append(hook("db", false), hook("cache", false), hook("hog", true))
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		err := l.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want the hog's deadline error", err)
		}
		want := []call{
			{"hog", 3 * time.Second, false}, // bounded by the overall deadline, not its own 10s
			{"cache", 0, true},              // called although the deadline passed, with a done context
			{"db", 0, true},
		}
		if !slices.Equal(calls, want) {
			t.Fatalf("calls = %+v, want %+v", calls, want)
		}
	})
}

// Stops that ignore their context, past the deadline, share one grace
// window (each with a tenth of it as a floor) instead of a window each, so
// twenty of them overrun the deadline by 100ms + 19 × 10ms, not 20 × 100ms
// (which ate the whole default shutdown margin). Their errors say they
// were called after the deadline, not "within -1.9s".
func TestStuckStopsShareTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		l := &App{Name: "api", StopTimeout: time.Minute}
		for i := range 20 {
			l.Append(Hook{Name: "stuck" + strings.Repeat("x", i), Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(context.Context) error { <-release; return nil }, nil
			}})
		}
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		begin := time.Now()
		err := l.Stop(ctx)
		if took, want := time.Since(begin), 500*time.Millisecond+lateStopGrace+19*lateStopGrace/10; took != want {
			t.Errorf("Stop took %v, want %v: the deadline, one grace window, and a floor for each later stop", took, want)
		}
		if err == nil || strings.Contains(err.Error(), "within -") || strings.Count(err.Error(), "stop, called after the deadline, did not return") != 19 {
			t.Errorf("Stop = %v\nwant the first stop timed out within 500ms and 19 called after the deadline", err)
		}
	})
}
