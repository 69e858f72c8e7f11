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

func TestFailedStartRollsBack(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		failing   Hook
		wantInErr []string
		wantIs    error
	}{
		{
			name:      "error",
			failing:   Hook{Name: "cache", Start: func(context.Context, *Scope) (StopFunc, error) { return nil, boom }},
			wantInErr: []string{`lifespan "api": hook "cache": start: boom`},
			wantIs:    boom,
		},
		{
			name:      "panic",
			failing:   Hook{Name: "cache", Start: func(context.Context, *Scope) (StopFunc, error) { panic("nil map") }},
			wantInErr: []string{`hook "cache": start: panic: nil map`},
		},
		{
			name: "timeout ignoring its context",
			failing: Hook{Name: "cache", StartTimeout: time.Second, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
				time.Sleep(time.Hour) // a start that ignores ctx; synctest's clock makes this instant
				return nil, nil
			}},
			wantInErr: []string{`hook "cache": start: start did not return within 1s`},
			wantIs:    context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := &journal{}
				l := &App{Name: "api"}
				l.Append(recorded(j, "db", nil, nil), recorded(j, "store", nil, errors.New("close failed")), tt.failing, recorded(j, "never", nil, nil))
				err := l.Start(t.Context())
				if err == nil {
					t.Fatal("Start succeeded, want error")
				}
				for _, s := range append(tt.wantInErr, `hook "store": stop: close failed`) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
				}
				want := []string{"start db", "start store", "stop store", "stop db"}
				if got := j.list(); !slices.Equal(got, want) {
					t.Errorf("journal = %q, want %q", got, want)
				}
				if l.Phase() != PhaseFailed {
					t.Errorf("phase = %v, want failed", l.Phase())
				}
				if err := l.Stop(t.Context()); err != nil {
					t.Errorf("Stop after failed Start = %v, want nil", err)
				}
				if l.Phase() != PhaseFailed || len(j.list()) != len(want) {
					t.Errorf("after Stop: phase %v, journal %q; want failed (the end of a failed app's life) and nothing stopped twice", l.Phase(), j.list())
				}
				time.Sleep(2 * time.Hour) // fake clock: lets the abandoned start return so the bubble ends clean
			})
		})
	}
}

func TestPanicErrorCarriesStack(t *testing.T) {
	l := &App{Name: "api"}
	l.Append(Hook{Name: "bad", Start: func(context.Context, *Scope) (StopFunc, error) { panic("kaboom") }})
	err := l.Start(t.Context())
	var p *PanicError
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not a *PanicError", err)
	}
	if p.Value != "kaboom" || !strings.Contains(string(p.Stack), "start_test.go") {
		t.Fatalf("panic value %v, stack without the panicking frame:\n%s", p.Value, p.Stack)
	}
}

// The stop of a start that timed out and then succeeded is a stop of its
// own, reported as any other (HookStopping, then HookStopped with its
// duration and error), not a late outcome of an event already reported.
func TestLateStartIsStoppedWhenItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var stops []Event
		l := &App{Name: "api", Observer: func(e Event) {
			if e.Kind == HookStopping || e.Kind == HookStopped {
				mu.Lock()
				stops = append(stops, e)
				mu.Unlock()
			}
		}}
		l.Append(Hook{Name: "slow", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
			<-release
			return func(context.Context) error {
				time.Sleep(200 * time.Millisecond) // the bubble's clock
				return errors.New("flush failed")
			}, nil
		}})
		if err := l.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded, want timeout")
		}
		close(release)
		time.Sleep(time.Second)
		synctest.Wait() // the late start's resource is released
		mu.Lock()
		defer mu.Unlock()
		if len(stops) != 2 || stops[0].Kind != HookStopping || stops[1].Kind != HookStopped {
			t.Fatalf("stop events %+v, want a HookStopping, then a HookStopped", stops)
		}
		if e := stops[1]; e.Late || e.Duration != 200*time.Millisecond || e.Err == nil || !strings.Contains(e.Err.Error(), `hook "slow": stop after late start: flush failed`) {
			t.Fatalf("HookStopped %+v, want not late, 200ms, the stop's error", e)
		}
	})
}

// That stop is bounded as any stop is: one that ignores its context is
// abandoned at its stop timeout (and the late grace) with a TimeoutError,
// rather than holding the rollback, or its goroutine, for good.
func TestLateStartsStopIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, block := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var stopped []Event
		l := &App{Name: "api", StopTimeout: time.Second, Observer: func(e Event) {
			if e.Kind == HookStopped {
				mu.Lock()
				stopped = append(stopped, e)
				mu.Unlock()
			}
		}}
		l.Append(Hook{Name: "slow", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
			<-release
			return func(context.Context) error { <-block; return nil }, nil // ignores its context
		}})
		defer close(block)
		if err := l.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded, want timeout")
		}
		close(release)
		time.Sleep(time.Hour) // the bubble's clock: far past the stop timeout
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(stopped)
		mu.Unlock()
		var te *TimeoutError
		if len(got) != 1 || !errors.As(got[0].Err, &te) || te.Op != "stop" || got[0].Duration != time.Second+l.lateGrace {
			t.Fatalf("HookStopped events %+v, want one: the stop abandoned at 1s and the late grace, a TimeoutError", got)
		}
	})
}

// The same when the late start returns during the failed startup's
// rollback, which waits for it (up to its stop timeout) and stops it
// there: Start returns once that stop's timeout has passed.
func TestLateStartsStopInTheRollbackIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		var mu sync.Mutex
		var stopped []Event
		l := &App{Name: "api", StopTimeout: 5 * time.Second, Observer: func(e Event) {
			if e.Kind == HookStopped {
				mu.Lock()
				stopped = append(stopped, e)
				mu.Unlock()
			}
		}}
		l.Append(Hook{Name: "slow", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
			time.Sleep(1500 * time.Millisecond) // past its timeout, inside the rollback's wait
			return func(context.Context) error { <-block; return nil }, nil
		}})
		begin := time.Now()
		if err := l.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded, want timeout")
		}
		// The start timed out at 1.1s; the rollback took its result at
		// 1.5s and waited 5s and the late grace for its stop.
		if took, want := time.Since(begin), 1500*time.Millisecond+5*time.Second+l.lateGrace; took != want {
			t.Fatalf("Start returned after %v, want %v", took, want)
		}
		mu.Lock()
		defer mu.Unlock()
		var te *TimeoutError
		if len(stopped) != 1 || !errors.As(stopped[0].Err, &te) || te.Op != "stop" {
			t.Fatalf("HookStopped events %+v, want one with the stop's TimeoutError", stopped)
		}
	})
}

func TestStopDuringStartAbandonsAndRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := &App{Name: "api"}
		entered := make(chan struct{})
		l.Append(recorded(j, "db", nil, nil), Hook{Name: "warm", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
		startErr := make(chan error, 1)
		go func() { startErr <- l.Start(context.Background()) }()
		<-entered
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := <-startErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("Start = %v, want canceled", err)
		}
		if got, want := j.list(), []string{"start db", "stop db"}; !slices.Equal(got, want) {
			t.Fatalf("journal = %q, want %q", got, want)
		}
	})
}

func TestDependencyErrors(t *testing.T) {
	tests := []struct {
		name  string
		hooks []Hook
		want  string
	}{
		{"unknown", []Hook{{Name: "a", Start: noop}, {Name: "b", Start: noop, After: []string{"c"}}},
			`lifespan "api": hook "b": After names "c", which is not another hook of this app (hooks: a)`},
		{"self", []Hook{{Name: "a", Start: noop, After: []string{"a"}}}, `hook "a": After names "a"`},
		{"cycle", []Hook{{Name: "a", Start: noop, After: []string{"b"}}, {Name: "b", Start: noop, After: []string{"a"}}, {Name: "c", Start: noop}},
			`hooks a, b depend on each other in a cycle`},
		// c only waits for the cycle: naming it sends the user to a hook
		// that needs no change.
		{"cycle with a dependent", []Hook{{Name: "a", Start: noop, After: []string{"b"}}, {Name: "b", Start: noop, After: []string{"a"}}, {Name: "c", Start: noop, After: []string{"a"}}},
			`lifespan "api": hooks a, b depend on each other in a cycle ("a" -> "b" -> "a", each After the next): remove one of these After names`},
		// A longer cycle reached through a hook outside it: only its own
		// hooks are named, in the order of the After names that close it.
		{"cycle of three behind a dependent", []Hook{{Name: "x", Start: noop, After: []string{"q"}}, {Name: "p", Start: noop, After: []string{"r"}},
			{Name: "q", Start: noop, After: []string{"p"}}, {Name: "r", Start: noop, After: []string{"q"}}},
			`hooks p, q, r depend on each other in a cycle ("q" -> "p" -> "r" -> "q", each After the next)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &App{Name: "api"}
			l.Append(tt.hooks...)
			err := l.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDependencyOrderSequential(t *testing.T) {
	j := &journal{}
	l := &App{Name: "api"}
	cache := recorded(j, "cache", nil, nil)
	cache.After = []string{"db"} // registered before its dependency
	l.Append(cache, recorded(j, "metrics", nil, nil), recorded(j, "db", nil, nil))
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start metrics", "start db", "start cache", "stop cache", "stop db", "stop metrics"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

// The values of Start's ctx (a logger, a trace) reach the starts, the
// app's tasks and a failed start's rollback, whose contexts do not end
// with Start's.
func TestStartsValuesReachItsTasksAndRollback(t *testing.T) {
	type key struct{}
	j := &journal{}
	seen := func(ctx context.Context, what string) {
		if v, _ := ctx.Value(key{}).(string); v != "start's" {
			what += " without Start's values"
		}
		j.add("%s", what)
	}
	taskSaw := make(chan struct{})
	l := &App{Name: "api"}
	l.Append(Hook{Name: "db", Start: func(ctx context.Context, s *Scope) (StopFunc, error) {
		seen(ctx, "start db")
		s.Go("poll", func(ctx context.Context) error {
			seen(ctx, "task")
			close(taskSaw)
			<-ctx.Done()
			return ctx.Err()
		})
		return func(ctx context.Context) error { seen(ctx, "stop db"); return nil }, nil
	}}, Hook{Name: "cache", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
		<-taskSaw
		return nil, errors.New("refused")
	}})
	if err := l.Start(context.WithValue(t.Context(), key{}, "start's")); err == nil {
		t.Fatal("Start succeeded with a failing hook")
	}
	want := []string{"start db", "task", "stop db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

// Asking the app what runs before Start (a status page, say) does not fix
// its tasks' context before Start can give it its values.
func TestTasksGetStartsValuesAfterRunningBeforeStart(t *testing.T) {
	type key struct{}
	a := &App{Name: "api"}
	got := make(chan any, 1)
	a.Append(Hook{Name: "poller", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		s.Go("poll", func(ctx context.Context) error { got <- ctx.Value(key{}); return nil })
		return nil, nil
	}})
	if r := a.Running(); len(r) != 0 {
		t.Fatalf("Running before Start = %q", r)
	}
	if err := a.Start(context.WithValue(t.Context(), key{}, "start's")); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(t.Context())
	if v := <-got; v != "start's" {
		t.Errorf("the task saw %v, want \"start's\"", v)
	}
}

// A Stop that abandons the start bounds the rollback by its deadline, and
// the rollback's stops keep Start's values; so does the stop of a start
// that succeeded only after the rollback stopped waiting for it.
func TestRollbackStopsKeepStartsValues(t *testing.T) {
	type key struct{}
	t.Run("abandoned by Stop", func(t *testing.T) {
		got := make(chan stopSeen, 1)
		entered := make(chan struct{})
		a := &App{Name: "api", StopTimeout: time.Minute}
		a.Append(seeingStop("db", key{}, got), blockedStart("cache", entered))
		started := make(chan error, 1)
		go func() { started <- a.Start(context.WithValue(t.Context(), key{}, "start's")) }()
		<-entered
		stopDeadline := time.Now().Add(5 * time.Second) // long before the app's stop timeout (a minute) ends
		ctx, cancel := context.WithDeadline(context.Background(), stopDeadline)
		defer cancel()
		_ = a.Stop(ctx)
		<-started
		s := <-got
		if s.value != "start's" {
			t.Errorf("the rollback's stop saw %v, want \"start's\"", s.value)
		}
		if s.deadline.After(stopDeadline) {
			t.Errorf("the rollback's stop had until %v, past the Stop's deadline %v", s.deadline, stopDeadline)
		}
	})
	t.Run("a late start reaped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			got := make(chan any, 1)
			a := &App{Name: "api", StartTimeout: time.Second, StopTimeout: time.Second}
			a.Append(Hook{Name: "slow", Start: func(context.Context, *Scope) (StopFunc, error) {
				<-release // ignores its context
				return func(ctx context.Context) error { got <- ctx.Value(key{}); return nil }, nil
			}})
			if err := a.Start(context.WithValue(context.Background(), key{}, "start's")); err == nil {
				t.Fatal("Start succeeded past its timeout")
			}
			close(release)
			synctest.Wait()
			if v := <-got; v != "start's" {
				t.Errorf("the late start's stop saw %v, want \"start's\"", v)
			}
		})
	})
}

func TestParallelStartHonoursDependenciesAndBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		var mu sync.Mutex
		running, peak := 0, 0
		slow := func(name string, d time.Duration, after ...string) Hook {
			return Hook{Name: name, After: after, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				time.Sleep(d) // fake time: the duration of real work
				mu.Lock()
				running--
				mu.Unlock()
				j.add("start %s", name)
				return func(context.Context) error { j.add("stop %s", name); return nil }, nil
			}}
		}
		l := &App{Name: "api", Concurrency: 2}
		l.Append(slow("db", 3*time.Second), slow("queue", time.Second), slow("dns", time.Second),
			slow("cache", time.Second, "db"), slow("api", time.Second, "cache", "queue"))
		begin := time.Now()
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// db 0-3s, queue 0-1s, dns 1-2s, cache 3-4s, api 4-5s: 5s, not the 7s of one at a time.
		if took := time.Since(begin); took != 5*time.Second {
			t.Errorf("parallel start took %v, want 5s", took)
		}
		if peak != 2 {
			t.Errorf("peak concurrency %d, want 2", peak)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"start queue", "start dns", "start db", "start cache", "start api",
			"stop api", "stop cache", "stop db", "stop dns", "stop queue"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Errorf("journal = %q, want %q", got, want)
		}
	})
}

// A hook that fails abandons its siblings' starts. The rollback waits for
// an abandoned start up to its hook's stop timeout: one that succeeds
// within it is stopped first, before the hooks started earlier (it may
// use them); one that outlives it is stopped when it finally returns.
func TestParallelFailureAbandonsSiblingsAndReapsThem(t *testing.T) {
	for _, tt := range []struct {
		name        string
		stopTimeout time.Duration
		atReturn    []string // the journal when Start returns
		after       []string // ...and once slow has returned
	}{
		{"returns within the stop timeout", 5 * time.Second,
			[]string{"start quick", "start slow", "stop slow", "stop quick"},
			[]string{"start quick", "start slow", "stop slow", "stop quick"}},
		{"outlives the stop timeout", 500 * time.Millisecond,
			[]string{"start quick", "stop quick"},
			[]string{"start quick", "stop quick", "start slow", "stop slow"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := &journal{}
				l := &App{Name: "api", Concurrency: 3, StopTimeout: tt.stopTimeout}
				l.Append(
					Hook{Name: "slow", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
						time.Sleep(2 * time.Second) // ignores the cancellation
						j.add("start slow")
						return func(context.Context) error { j.add("stop slow"); return nil }, nil
					}},
					Hook{Name: "bad", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
						time.Sleep(time.Second)
						return nil, errors.New("no route")
					}},
					recorded(j, "quick", nil, nil),
					recorded(j, "later", nil, nil),
				)
				l.hooks[3].After = []string{"bad"}
				err := l.Start(t.Context())
				if err == nil || !strings.Contains(err.Error(), `hook "bad": start: no route`) {
					t.Fatalf("Start = %v", err)
				}
				if got := j.list(); !slices.Equal(got, tt.atReturn) {
					t.Fatalf("journal at Start's return = %q, want %q", got, tt.atReturn)
				}
				time.Sleep(time.Hour)
				if got := j.list(); !slices.Equal(got, tt.after) {
					t.Fatalf("journal = %q, want %q", got, tt.after)
				}
			})
		})
	}
}

// A start's context ends when the start returns, even successfully, as
// StartFunc's doc says (it said only "at the start timeout or an abandoned
// startup"): work that outlives the start belongs in Scope.Go. With no
// start timeout too: it used to end only when the whole Start returned.
func TestStartContextEndsWhenTheStartReturns(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("StartTimeout ", timeout), func(t *testing.T) {
			var first context.Context
			var seen error
			l := &App{Name: "api", StartTimeout: timeout}
			l.Append(
				Hook{Name: "worker", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) { first = ctx; return nil, nil }},
				Hook{Name: "next", Start: func(context.Context, *Scope) (StopFunc, error) { seen = first.Err(); return nil, nil }})
			if err := l.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer l.Stop(context.Background())
			if !errors.Is(seen, context.Canceled) {
				t.Errorf("while the next hook started, the first start's context's Err() = %v; want context.Canceled", seen)
			}
		})
	}
}

// A start that passes its timeout and then returns its own error (as its
// context ends: a dependency's "connection refused") is reported with that
// error, after the timeout; it used to say only that the start timed out.
// One that returns nothing within the late grace is reported as before,
// and one that succeeds within it is stopped by the rollback.
func TestStartTimeoutKeepsTheHooksOwnError(t *testing.T) {
	refused := errors.New("redis 10.0.0.7:6379: connection refused (12 attempts)")
	for _, tt := range []struct {
		name    string
		start   func(ctx context.Context, stopped chan<- struct{}) (StopFunc, error)
		want    string
		wantErr error // what errors.Is must find beside context.DeadlineExceeded
		stopped bool  // the rollback called the start's stop
	}{
		{"fails as its context ends", func(ctx context.Context, _ chan<- struct{}) (StopFunc, error) {
			<-ctx.Done()
			return nil, refused
		}, `hook "redis": start: start did not return within 50ms: redis 10.0.0.7:6379: connection refused (12 attempts)`, refused, false},
		{"ignores its context", func(ctx context.Context, _ chan<- struct{}) (StopFunc, error) {
			time.Sleep(time.Hour)
			return nil, refused
		}, `hook "redis": start: start did not return within 50ms`, nil, false},
		{"succeeds just past its timeout", func(ctx context.Context, stopped chan<- struct{}) (StopFunc, error) {
			<-ctx.Done()
			return func(context.Context) error { close(stopped); return nil }, nil
		}, `hook "redis": start: start did not return within 50ms`, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stopped := make(chan struct{})
				l := &App{Name: "api"}
				l.Append(Hook{Name: "redis", StartTimeout: 50 * time.Millisecond, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
					return tt.start(ctx, stopped)
				}})
				err := l.Start(t.Context())
				var te *TimeoutError
				if err == nil || !strings.HasSuffix(err.Error(), tt.want) || !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Start = %v, want a TimeoutError ending %q", err, tt.want)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("errors.Is(err, the hook's own error) = false for %v", err)
				}
				synctest.Wait()
				select {
				case <-stopped:
					if !tt.stopped {
						t.Error("a stop was called that should not have been")
					}
				default:
					if tt.stopped {
						t.Error("the start that succeeded past its timeout was never stopped")
					}
				}
				time.Sleep(2 * time.Hour) // the start that ignores its context returns, and is reaped
			})
		})
	}
}

// With Concurrency, a failure's error is the startup's: the starts it cut
// short (cancelled) are reported by their events, and no longer joined into
// the error, where errors.Is(err, context.Canceled) read a failed startup
// as an abandoned one.
func TestParallelFailureIsNotACancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cut []string
		l := &App{Name: "api", Concurrency: 2, Observer: func(e Event) {
			if e.Kind == HookStarted && e.CutShort {
				cut = append(cut, e.Hook)
			}
		}}
		l.Append(
			Hook{Name: "cache", Start: func(context.Context, *Scope) (StopFunc, error) {
				time.Sleep(10 * time.Millisecond)
				return nil, errors.New("redis: connection refused")
			}},
			Hook{Name: "warm", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) { <-ctx.Done(); return nil, ctx.Err() }})
		err := l.Start(t.Context())
		if err == nil || errors.Is(err, context.Canceled) || err.Error() != `lifespan "api": hook "cache": start: redis: connection refused` {
			t.Fatalf("Start = %q (errors.Is Canceled: %v); want the failure alone", err, errors.Is(err, context.Canceled))
		}
		if !slices.Equal(cut, []string{"warm"}) {
			t.Errorf("cut short: %q, want warm's event", cut)
		}
	})
}

// A start that succeeds past its timeout while the rollback waits for it
// is stopped in the rollback, and that stop's failure is in Start's error
// with every other rolled-back hook's: no caller heard of it before.
func TestLateStartsStopErrorIsStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &App{Name: "api", StopTimeout: 5 * time.Second}
		a.Append(
			Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(context.Context) error { return errors.New("db close failed") }, nil
			}},
			Hook{Name: "cache", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
				time.Sleep(2 * time.Second) // succeeds past its timeout, inside the rollback's wait
				return func(context.Context) error { return errors.New("cache flush failed") }, nil
			}},
		)
		err := a.Start(t.Context())
		for _, s := range []string{`hook "db": stop: db close failed`, `hook "cache": stop after late start: cache flush failed`} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("Start = %v\nwant it to contain %q", err, s)
			}
		}
	})
}

// Late starts that succeed while the rollback waits for them stop in the
// reverse of the order their starts completed, as hooks do, whatever the
// order they were cut short in.
func TestLateStartsStopInReverseOfCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		a := &App{Name: "api", Concurrency: 3, StopTimeout: time.Minute}
		late := func(name string, d, timeout time.Duration) Hook {
			return Hook{Name: name, StartTimeout: timeout, Start: func(context.Context, *Scope) (StopFunc, error) {
				time.Sleep(d) // ignores its context
				j.add("start %s", name)
				return func(context.Context) error { j.add("stop %s", name); return nil }, nil
			}}
		}
		// a times out at 0.5s and fails the startup, which cuts b and c
		// short; c completes at 1s, b at 2s, a at 3s.
		a.Append(late("a", 3*time.Second, 500*time.Millisecond), late("b", 2*time.Second, 0), late("c", time.Second, 0))
		if err := a.Start(t.Context()); err == nil {
			t.Fatal("Start = nil")
		}
		want := []string{"start c", "start b", "start a", "stop a", "stop b", "stop c"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Errorf("journal %q, want %q", got, want)
		}
	})
}

// A failed startup's PhaseFailed event carries the whole startup's
// duration, its rollback included, as EventKind's doc says.
func TestFailedStartupsDurationIncludesTheRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failed []Event
		a := &App{Name: "api", Observer: func(e Event) {
			if e.Kind == PhaseChanged && e.Phase == PhaseFailed {
				failed = append(failed, e)
			}
		}}
		a.Append(
			Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
				time.Sleep(time.Second)
				return func(context.Context) error { time.Sleep(2 * time.Second); return nil }, nil
			}},
			Hook{Name: "bad", Start: func(context.Context, *Scope) (StopFunc, error) {
				time.Sleep(4 * time.Second)
				return nil, errors.New("denied")
			}},
		)
		if err := a.Start(t.Context()); err == nil {
			t.Fatal("Start = nil")
		}
		if len(failed) != 1 || failed[0].Duration != 7*time.Second || failed[0].Err == nil {
			t.Fatalf("PhaseFailed events %+v; want one of 7s (1s, 4s, then a 2s rollback) with the error", failed)
		}
	})
}

// Before the rollback, a start still running (one that ignores its
// context) is waited for up to its hook's stop timeout: starts that time
// out together are waited for together, so n stuck starts hold the
// rollback one stop timeout, not n.
func TestLateStartsAreWaitedForTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		a := &App{Name: "api", Concurrency: 2, StartTimeout: time.Second, StopTimeout: 2 * time.Second}
		for _, n := range []string{"a", "b"} {
			a.Append(Hook{Name: n, Start: func(context.Context, *Scope) (StopFunc, error) {
				<-block // ignores its context
				return nil, nil
			}})
		}
		begin := time.Now()
		if err := a.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded, want timeouts")
		}
		// Both timed out at 1s and were given the late grace; each is
		// then waited for up to its 2s stop timeout.
		if took, want := time.Since(begin), time.Second+lateStopGrace+2*time.Second; took > want {
			t.Errorf("Start returned after %v, want at most %v: the late starts' waits ran one after the other", took, want)
		}
	})
}

// A start still running when the startup ends that has succeeded by the
// time the rollback reaches it is stopped in the rollback, first, even when
// the rollback's deadline has passed (here a background task that ignores
// its cancellation used the window up): it is not left to stop on its own,
// after db. (Its result and the expired deadline are both ready then; a
// select between them would pick one at random, hence the 20 runs.)
func TestALateStartThatAlreadySucceededIsStoppedInTheRollback(t *testing.T) {
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := &journal{}
				stuck := make(chan struct{})
				a := &App{Name: "api", StopTimeout: time.Hour}
				a.Append(Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
					s.Go("poller", func(context.Context) error { <-stuck; return nil }) // ignores its cancellation
					j.add("start db")
					return func(context.Context) error { j.add("stop db"); return nil }, nil
				}})
				a.Append(deafCache(j))
				started := make(chan error, 1)
				go func() { started <- a.Start(context.Background()) }()
				time.Sleep(time.Second)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = a.Stop(ctx)
				<-started
				atReturn := j.list()
				close(stuck)
				synctest.Wait()
				if want := []string{"start db", "start cache", "stop cache", "stop db"}; !slices.Equal(atReturn, want) {
					t.Errorf("journal when Start returned %q, want %q", atReturn, want)
				}
			})
		})
	}
}

// A failed startup tells its observers it is about to roll back before the
// first stop and after the failure that caused it (an observer ends what
// reads the app's resources then: serve's background checks), also when
// the app that failed started nothing but a Group stops the apps before it.
func TestRollbackStartingComesBeforeTheFirstStop(t *testing.T) {
	fail := Hook{Name: "bad", Start: func(context.Context, *Scope) (StopFunc, error) { return nil, errors.New("migration failed") }}
	db := Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
		return func(context.Context) error { return nil }, nil
	}}
	for _, tt := range []struct {
		name       string
		infra, api []Hook // two apps of a Group, started in that order
		want       []string
	}{
		{"in the app that failed", nil, []Hook{db, fail},
			[]string{"api hook-started bad", "api rollback-starting ", "api hook-stopping db", "api hook-stopped db", "api phase "}},
		{"in an app before it", []Hook{db}, []Hook{fail},
			[]string{"api hook-started bad", "api rollback-starting ", "api phase ", "infra hook-stopping db", "infra hook-stopped db"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			observe := func(e Event) {
				if e.Kind == HookStarted && e.Err == nil || e.Kind == HookStarting || e.Kind == PhaseChanged && e.Phase != PhaseFailed {
					return
				}
				mu.Lock()
				seen = append(seen, e.App+" "+e.Kind.String()+" "+e.Hook)
				mu.Unlock()
			}
			infra, api := &App{Name: "infra", Observer: observe}, &App{Name: "api", Observer: observe}
			infra.Append(tt.infra...)
			api.Append(tt.api...)
			if err := (Group{infra, api}).Start(t.Context()); err == nil {
				t.Fatal("Start succeeded")
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(seen, tt.want) {
				t.Errorf("events %q, want %q", seen, tt.want)
			}
		})
	}
}

// A start that outlives its abandoned startup's rollback is left to stop
// itself when it finally returns (reapLateStart, which deliberately stops it
// under context.Background(): Stop has long returned). That stop must get
// its hook's stop timeout, not the deadline of the Stop that returned long
// ago, which would make its context done before it began.
func TestAReapedLateStartsStopIsNotBoundByAStopThatReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		entered := make(chan struct{})
		stopErr := make(chan error, 1)
		a := &App{Name: "api", StopTimeout: time.Second}
		a.Append(Hook{Name: "slow", Start: func(context.Context, *Scope) (StopFunc, error) {
			close(entered)
			<-release // ignores its context
			return func(ctx context.Context) error {
				stopErr <- ctx.Err() // a graceful close that honours its context
				return nil
			}, nil
		}})
		started := make(chan error, 1)
		go func() { started <- a.Start(context.Background()) }()
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
		<-started
		time.Sleep(10 * time.Second) // fake clock: the Stop's deadline is long past
		close(release)
		synctest.Wait()
		if err := <-stopErr; err != nil {
			t.Errorf("the reaped start's stop got a context already done (%v): bound by the deadline of a Stop that returned 8s before", err)
		}
	})
}

// A start may start a background task (Scope.Go) and then fail: no hook
// started, yet the rollback cancels and awaits that task, and
// RollbackStarting comes before it.
func TestRollbackStartingComesBeforeATaskOfAFailedStartIsStopped(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	a := &App{Name: "api", Observer: func(e Event) {
		if e.Kind == RollbackStarting || e.Kind == TaskExited {
			mu.Lock()
			seen = append(seen, e.Kind.String())
			mu.Unlock()
		}
	}}
	a.Append(Hook{Name: "bad", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		s.Go("poller", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		return nil, errors.New("migration failed")
	}})
	if err := a.Start(t.Context()); err == nil {
		t.Fatal("Start succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"rollback-starting", "task-exited"}; !slices.Equal(seen, want) {
		t.Errorf("events %q, want %q: the rollback stopped a task without saying it would", seen, want)
	}
}

// A hook's start timeout is the start's own: it is counted from the call
// of its start function, as the hook's stop timeout is counted from the
// call of its stop, not from before the observer was told of the start
// (an observer that writes to a slow log, say). A start that returns well
// within its timeout must not be failed as "did not return within 1s".
func TestStartTimeoutIsCountedFromTheStartsCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &App{Name: "api", StartTimeout: time.Second, Observer: func(e Event) {
			if e.Kind == HookStarting {
				time.Sleep(600 * time.Millisecond) // a slow observer (fake time)
			}
		}}
		l.Append(Hook{Name: "db", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
			select {
			case <-time.After(500 * time.Millisecond): // half its timeout
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start = %v; want nil: the start returned 500ms after its call, within its 1s timeout", err)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
