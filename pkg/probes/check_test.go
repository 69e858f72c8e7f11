package probes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestKindString(t *testing.T) {
	if got := (Readiness | Startup).String(); got != "readyz|startupz" {
		t.Fatal(got)
	}
}

func TestThresholdsStopFlapping(t *testing.T) {
	var outcomes []error
	var i int
	r := New()
	r.Add(Readiness, Check{Name: "dep", FailureThreshold: 3, SuccessThreshold: 2, Run: func(context.Context) error {
		err := outcomes[i]
		i++
		return err
	}})
	e := errors.New("down")
	outcomes = []error{nil, e, e, nil, e, e, e, nil, nil}
	want := []bool{true, true, true, true, true, true, false, false, true}
	for step, w := range want {
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		if rep.Passing != w {
			t.Fatalf("step %d (outcome %v): passing = %v, want %v", step, outcomes[step], rep.Passing, w)
		}
	}
	res := r.Results()[0]
	if res.ConsecutiveSuccesses != 2 || res.ConsecutiveFailures != 0 || res.Err != nil {
		t.Fatalf("result = %+v", res)
	}
}

// A check without a Timeout runs under DefaultTimeout, 1s, and one with a
// Timeout under its own.
func TestCheckTimeoutDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New()
		var got []time.Duration
		for _, timeout := range []time.Duration{0, 3 * time.Second} {
			r.Add(Readiness, Check{Name: fmt.Sprint("t", timeout), Timeout: timeout, Run: func(ctx context.Context) error {
				deadline, _ := ctx.Deadline()
				got = append(got, time.Until(deadline))
				return nil
			}})
			r.Evaluate(t.Context(), Readiness, fmt.Sprint("t", timeout), nil)
		}
		if want := []time.Duration{time.Second, 3 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("checks ran under %v, want %v", got, want)
		}
	})
}

// A check's first result is its verdict at once, whatever its thresholds:
// one failing from the start never passed (it starts failing, with
// ErrNotRun), and one passing from the start need not wait for
// SuccessThreshold passes, which exist to stop a recovering check flapping.
func TestFirstResultCountsAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name  string
		check Check
		want  bool
	}{
		{"failing", Check{Name: "dep", FailureThreshold: 5, Run: fail("down")}, false},
		{"passing", Check{Name: "dep", SuccessThreshold: 3, Run: func(context.Context) error { return nil }}, true},
	} {
		r := New()
		r.Add(Readiness, tt.check)
		if rep, _ := r.Evaluate(t.Context(), Readiness, "", nil); rep.Passing != tt.want {
			t.Errorf("%s from the start: passing %v, want %v", tt.name, rep.Passing, tt.want)
		}
	}
}

// A check that passed once and now hangs, evaluated by a caller whose ctx
// ends before the check's Timeout (a gRPC health call's deadline, say), is
// failing for that caller, with its error: the run says nothing about the
// dependency and is not recorded, but the last pass may be from before it
// hung, and reporting it would say passing for as long as it hangs.
func TestEvaluateCutShortIsNoPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var down atomic.Bool
		r := New()
		r.Add(Readiness, Check{Name: "dep", Timeout: 5 * time.Second, Run: func(ctx context.Context) error {
			if down.Load() {
				<-ctx.Done() // the dependency hangs; the check honours its ctx
				return ctx.Err()
			}
			return nil
		}})
		if rep, _ := r.Evaluate(t.Context(), Readiness, "", nil); !rep.Passing {
			t.Fatal("no first pass")
		}
		down.Store(true)
		for i := range 3 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			rep, _ := r.Evaluate(ctx, Readiness, "", nil)
			cancel()
			if err := rep.Checks[0].Err; rep.Passing || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "its caller gave up") {
				t.Errorf("Evaluate %d, cut short by its caller: passing %v, error %v; want failing, the caller's deadline", i+1, rep.Passing, err)
			}
		}
		if res := r.Results()[0]; !res.Passing || res.Runs != 1 {
			t.Errorf("after the cut-short runs: %+v; want the one recorded pass", res)
		}
	})
}

// An instant check runs in the probe's goroutine, without a deadline of its
// own; an ordinary inline check gets its timeout. A panic is a failure
// either way.
func TestInstantChecks(t *testing.T) {
	r := New()
	var instantDeadline, inlineDeadline bool
	r.Add(Readiness, Check{Name: "flag", Instant: true, Run: func(ctx context.Context) error {
		_, instantDeadline = ctx.Deadline()
		return nil
	}})
	r.Add(Readiness, Check{Name: "dial", Run: func(ctx context.Context) error {
		_, inlineDeadline = ctx.Deadline()
		return nil
	}})
	r.Add(Liveness, Check{Name: "bad", Instant: true, Run: func(context.Context) error { panic("nil map") }})
	r.Add(Liveness, Check{Name: "worse", Run: func(context.Context) error { panic("nil map") }})
	rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
	if !rep.Passing || instantDeadline || !inlineDeadline {
		t.Fatalf("passing %v; instant check had a deadline %v, inline check %v", rep.Passing, instantDeadline, inlineDeadline)
	}
	for _, name := range []string{"bad", "worse"} {
		rep, _ = r.Evaluate(t.Context(), Liveness, name, nil)
		if rep.Passing || rep.Checks[0].Err == nil || !strings.Contains(rep.Checks[0].Err.Error(), "check panicked: nil map") {
			t.Errorf("a panicking check (%s): %+v", name, rep.Checks)
		}
	}
}

// An inline check that ends its goroutine with runtime.Goexit (t.FailNow,
// in a test) fails at once, saying so: it neither passes nor holds the
// probe until its timeout.
func TestInlineCheckGoexitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New()
		r.Add(Readiness, Check{Name: "db", Timeout: time.Hour, Run: func(context.Context) error { runtime.Goexit(); return nil }})
		begin := time.Now()
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		if rep.Passing || rep.Checks[0].Err == nil || !strings.Contains(rep.Checks[0].Err.Error(), "runtime.Goexit") {
			t.Errorf("a check that called runtime.Goexit: %+v", rep.Checks)
		}
		if waited := time.Since(begin); waited > 0 {
			t.Errorf("the probe waited %v for a check that had ended", waited)
		}
	})
}

// A probe runs its instant checks back to back, timing each from the end
// of the one before: each one's start and duration are still its own,
// whatever runs beside it (here an inline check that ends last). synctest's
// clock stands still except while a check sleeps, so the figures are
// exact. (That each takes one clock read, not three, is a cost, which
// BenchmarkReadyzHandler in cmd/server measures.)
func TestInstantChecksAreTimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New()
		sleeps := func(d time.Duration) CheckFunc {
			return func(context.Context) error { time.Sleep(d); return nil }
		}
		r.Add(Readiness, Check{Name: "a", Instant: true, Run: sleeps(5 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "inline", Run: sleeps(30 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "b", Instant: true, Run: sleeps(7 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "c", Instant: true, Run: pass})
		begin := time.Now()
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		want := map[string]struct{ start, took time.Duration }{
			"a": {0, 5 * time.Millisecond}, "inline": {0, 30 * time.Millisecond},
			"b": {5 * time.Millisecond, 7 * time.Millisecond}, "c": {12 * time.Millisecond, 0},
		}
		for _, res := range rep.Checks {
			w := want[res.Name]
			if got := res.LastRun.Sub(begin); got != w.start || res.Duration != w.took {
				t.Errorf("%s: started %v, took %v; want %v and %v", res.Name, got, res.Duration, w.start, w.took)
			}
		}
		if time.Since(begin) != 30*time.Millisecond {
			t.Errorf("the probe took %v; want the inline check's 30ms, the instants (12ms) running beside it", time.Since(begin))
		}
		for _, res := range r.Results() { // the registry keeps what the probe saw
			if w := want[res.Name]; res.Duration != w.took {
				t.Errorf("%s: recorded %v, want %v", res.Name, res.Duration, w.took)
			}
		}
	})
}

// A probe whose client gives up (the kubelet's timeoutSeconds shorter than
// the check's Timeout) still lets the check finish, and records what it
// found: a healthy dependency slower than the client is a pass, not a
// failure "timed out after 5s" that never happened. A run whose own caller
// gave up (Evaluate's ctx ended, the registry stopping) says nothing about
// the dependency and is not recorded.
func TestRunWhoseCallerGaveUpIsNotRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New()
		r.Add(Readiness, Check{Name: "slow", Timeout: 5 * time.Second, Run: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond): // healthy, slower than the caller waits
				return nil
			}
		}})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		r.Evaluate(ctx, Readiness, "", nil)
		if res := r.Results()[0]; res.Ran || res.Runs != 0 || res.Failures != 0 {
			t.Errorf("after an Evaluate whose ctx ended first: %+v; want nothing recorded", res)
		}

		probe, cancelProbe := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancelProbe()
		r.Handler(HandlerOptions{}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil).WithContext(probe))
		if res := r.Results()[0]; !res.Ran || !res.Passing || res.Runs != 1 || res.Failures != 0 {
			t.Errorf("after a probe whose client left first: %+v; want the check's own pass", res)
		}
	})
}
