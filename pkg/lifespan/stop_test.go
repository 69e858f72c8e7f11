package lifespan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// Cancelling Stop's ctx does not cut the stops short: only a deadline
// bounds them. A stop called with an already cancelled ctx that has no
// deadline gets a live context, bounded by its hook's stop timeout.
func TestStopWithACancelledContextGivesEachStopALiveOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			name string
			err  error
			left time.Duration
		}
		var calls []call
		hook := func(name string) Hook {
			return Hook{Name: name, Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(ctx context.Context) error {
					dl, _ := ctx.Deadline()
					calls = append(calls, call{name, ctx.Err(), time.Until(dl)})
					return nil
				}, nil
			}}
		}
		l := &App{Name: "api", StopTimeout: 4 * time.Second}
		l.Append(hook("db"), hook("cache"))
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := l.Stop(ctx); err != nil {
			t.Fatalf("Stop = %v, want nil: every stop ran with time to finish", err)
		}
		want := []call{{"cache", nil, 4 * time.Second}, {"db", nil, 4 * time.Second}}
		if !slices.Equal(calls, want) {
			t.Fatalf("calls = %+v, want %+v (each stop's context live, with its own timeout)", calls, want)
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

// The wait for background tasks ends at Stop's deadline (and its grace
// window) when that comes before the stop timeout: serve's stop timeout,
// shorter than an app's own, bounds tasks and hooks together.
func TestTaskWaitEndsAtStopsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		a := &App{Name: "api", StopTimeout: time.Hour}
		a.Append(Hook{Name: "deaf", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("deaf", func(context.Context) error { <-release; return nil })
			return nil, nil
		}})
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		begin := time.Now()
		err := a.Stop(ctx)
		if took := time.Since(begin); took != 300*time.Millisecond+lateStopGrace {
			t.Errorf("Stop took %v; want Stop's 300ms deadline and the %v grace, not the app's hour", took, lateStopGrace)
		}
		if err == nil || !strings.Contains(err.Error(), "background tasks still running") {
			t.Errorf("Stop = %v, want the task that ignored its context named", err)
		}
	})
}

// A task that winds down a moment after its cancellation is waited for,
// though Stop's deadline falls in that moment: the wait has the grace a
// late stop has.
func TestTaskEndingJustAfterTheDeadlineIsWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &App{Name: "api", StopTimeout: time.Hour}
		a.Append(Hook{Name: "flusher", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("flush", func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(350 * time.Millisecond) // a last flush, ending 50ms past Stop's deadline
				return nil
			})
			return nil, nil
		}})
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Fatalf("Stop = %v; want the task, done 50ms past the deadline, waited for", err)
		}
	})
}

// After a stuck app has used the whole grace window, the next app's tasks
// still get the floor, a tenth of it: time for a task that ends a moment
// after its cancellation.
func TestTaskWaitKeepsItsFloorAfterTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		quick := &App{Name: "quick", StopTimeout: time.Hour}
		quick.Append(Hook{Name: "h", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("winds-down", func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(lateStopGrace / 20) // within the floor
				return nil
			})
			return nil, nil
		}})
		stuck := &App{Name: "stuck", StopTimeout: time.Hour}
		stuck.Append(Hook{Name: "h", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("deaf", func(context.Context) error { <-release; return nil })
			return nil, nil
		}})
		g := Group{quick, stuck} // stopped in reverse: stuck first
		if err := g.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := g.StopTasks(ctx)
		if err == nil || !strings.Contains(err.Error(), `lifespan "stuck"`) || strings.Contains(err.Error(), `lifespan "quick"`) {
			t.Fatalf("StopTasks = %v; want only the stuck app's task named", err)
		}
	})
}

// In a Group whose apps each have a task and a stop that ignore their
// context, the shutdown overruns its deadline by one grace window and a
// floor for each later wait, not by a grace window per app: StopTasks then
// Stop, as serve calls them, each app's tasks past the deadline included.
func TestGroupOfStuckAppsSharesTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		const apps = 4
		var g Group
		for i := range apps {
			a := &App{Name: fmt.Sprint("app", i), StopTimeout: time.Minute}
			a.Append(Hook{Name: "stuck", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
				s.Go("deaf", func(context.Context) error { <-release; return nil })
				return func(context.Context) error { <-release; return nil }, nil
			}})
			g = append(g, a)
		}
		if err := g.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_ = g.StopTasks(ctx)
		_ = g.Stop(ctx)
		// The first app's tasks wait to the deadline and through the
		// grace window; the three others' each a floor; the four stops,
		// past the window by then, each a floor.
		want := 300*time.Millisecond + lateStopGrace + (apps-1)*lateStopGrace/10 + apps*lateStopGrace/10
		if took := time.Since(begin); took > want {
			t.Errorf("the group's shutdown took %v, past its %v deadline by more than one grace window and a floor per later wait (%v)", took, 300*time.Millisecond, want)
		}
	})
}

// Stop called while Start runs abandons the start, and the rollback stops
// what started under Stop's ctx, as Stop's own stops would: no stop gets a
// deadline past ctx's (it used to get its hook's whole stop timeout, so a
// rollback of n hooks could take n stop timeouts past ctx's deadline).
func TestStopDuringStartBoundsTheRollbackByItsContext(t *testing.T) {
	a := &App{Name: "api", StopTimeout: time.Hour}
	var mu sync.Mutex
	var deadlines []time.Time
	for _, n := range []string{"db", "cache"} {
		a.Append(Hook{Name: n, Start: func(context.Context, *Scope) (StopFunc, error) {
			return func(ctx context.Context) error {
				dl, ok := ctx.Deadline()
				mu.Lock()
				defer mu.Unlock()
				if ok {
					deadlines = append(deadlines, dl)
				}
				return nil
			}, nil
		}})
	}
	entered := make(chan struct{})
	a.Append(Hook{Name: "slow", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	started := make(chan error, 1)
	go func() { started <- a.Start(context.Background()) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Errorf("Stop = %v; the rollback's errors are Start's", err)
	}
	if err := <-started; err == nil {
		t.Error("Start = nil after Stop abandoned it")
	}
	limit, _ := ctx.Deadline()
	mu.Lock()
	defer mu.Unlock()
	if len(deadlines) != 2 {
		t.Fatalf("%d stops saw a deadline, want both", len(deadlines))
	}
	for _, dl := range deadlines {
		if dl.After(limit) {
			t.Errorf("a rollback stop's deadline is %v past Stop's ctx", dl.Sub(limit))
		}
	}
}

// deafCache is a hook "cache" whose start blocks 2s in a call that ignores
// its context, then succeeds; its start and stop are journalled.
func deafCache(j *journal) Hook {
	return Hook{Name: "cache", Start: func(context.Context, *Scope) (StopFunc, error) {
		time.Sleep(2 * time.Second) // a blocking call that ignores its context
		j.add("start cache")
		return func(context.Context) error { j.add("stop cache"); return nil }, nil
	}}
}

// A start that Stop abandoned but that ignores its context and succeeds
// during the rollback is stopped before the hooks it started after, in
// the reverse of the order starts completed, as the contract says (it
// used to be stopped last, after the database it was built on).
func TestStopDuringStartStopsALateStartFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		a := &App{Name: "api", StopTimeout: 5 * time.Second}
		a.Append(recorded(j, "db", nil, nil))
		a.Append(deafCache(j))
		started := make(chan error, 1)
		go func() { started <- a.Start(context.Background()) }()
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = a.Stop(ctx)
		<-started
		if got, want := j.list(), []string{"start db", "start cache", "stop cache", "stop db"}; !slices.Equal(got, want) {
			t.Errorf("journal %q, want %q", got, want)
		}
	})
}

// A Stop's deadline bounds what is left of a stop already under way: a
// failed start's rollback (which runs under the stop timeouts alone until
// a Stop comes: serve's Stop on a SIGTERM during startup), or a Stop
// without a deadline (Group.Start's rollback of the apps before the one
// that failed, which Group.Stop then reaches). The stop under way sees its
// context end at the new deadline, as DeadlineExceeded.
func TestALaterStopBoundsAStopUnderWay(t *testing.T) {
	for _, tt := range []struct {
		name string
		// underWay starts the app and begins its stop, or its rollback,
		// which ends in what it returns.
		underWay func(a *App) <-chan error
		// bubble runs the case on synctest's clock. The later Stop of "a
		// Stop without a deadline" waits on the first's sync.Once, which
		// synctest does not count as blocked: that case runs on the real
		// clock, with a short deadline, and its figures are the same.
		bubble bool
	}{
		{"a failed start's rollback", func(a *App) <-chan error {
			a.Append(Hook{Name: "bad", Start: func(context.Context, *Scope) (StopFunc, error) {
				return nil, errors.New("migration failed")
			}})
			ended := make(chan error, 1)
			go func() { ended <- a.Start(context.Background()) }()
			return ended
		}, true},
		{"a Stop without a deadline", func(a *App) <-chan error {
			ended := make(chan error, 1)
			go func() {
				if err := a.Start(context.Background()); err != nil {
					ended <- err
					return
				}
				ended <- a.Stop(context.Background())
			}()
			return ended
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := func(t *testing.T) {
				inStop := make(chan struct{})
				var stopCtx context.Context
				a := &App{Name: "api", StopTimeout: time.Hour}
				a.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
					return func(ctx context.Context) error {
						stopCtx = ctx
						close(inStop)
						<-ctx.Done() // a stop that honours its context (a pool draining)
						return ctx.Err()
					}, nil
				}})
				ended := tt.underWay(a)
				<-inStop
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				stopped := make(chan time.Duration, 1)
				go func() {
					begin := time.Now()
					_ = a.Stop(ctx)
					stopped <- time.Since(begin)
				}()
				var took time.Duration
				select {
				case took = <-stopped:
				case <-time.After(time.Minute): // a failure detector, not a pause: with the bound it takes 50ms
					t.Fatal("Stop with a 50ms deadline had not returned after a minute: it waits out the stop under way")
				}
				<-ended
				if limit := 50*time.Millisecond + lateStopGrace; tt.bubble && took > limit {
					t.Errorf("Stop with a 50ms deadline returned after %v, want at most %v", took, limit)
				}
				want, _ := ctx.Deadline()
				if dl, _ := stopCtx.Deadline(); !errors.Is(stopCtx.Err(), context.DeadlineExceeded) || !dl.Equal(want) {
					t.Errorf("the stop under way ended with %v at the deadline %v; want DeadlineExceeded at the Stop's, %v", stopCtx.Err(), dl, want)
				}
			}
			if tt.bubble {
				synctest.Test(t, run)
			} else {
				run(t)
			}
		})
	}
}
