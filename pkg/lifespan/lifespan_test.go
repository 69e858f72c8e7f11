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

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what hooks did, in order, safely across goroutines.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// recorded is a hook that journals its start and stop and can fail either.
func recorded(j *journal, name string, startErr, stopErr error) Hook {
	return Hook{Name: name, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
		if startErr != nil {
			j.add("start %s failed", name)
			return nil, startErr
		}
		j.add("start %s", name)
		return func(ctx context.Context) error {
			j.add("stop %s", name)
			return stopErr
		}, nil
	}}
}

func TestStartInOrderStopInReverse(t *testing.T) {
	j := &journal{}
	l := New("api")
	l.Append(recorded(j, "db", nil, nil), recorded(j, "cache", nil, nil), recorded(j, "jobs", nil, nil))
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := l.Phase(); got != PhaseReady {
		t.Fatalf("phase after Start = %v, want ready", got)
	}
	select {
	case <-l.Ready():
	default:
		t.Fatal("Ready() not closed after Start")
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start db", "start cache", "start jobs", "stop jobs", "stop cache", "stop db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("order = %q, want %q", got, want)
	}
	if got := l.Phase(); got != PhaseStopped {
		t.Fatalf("phase after Stop = %v, want stopped", got)
	}
}

func TestStopClosureSeesStartLocals(t *testing.T) {
	l := New("api")
	var closedConn string
	l.Append(Hook{Name: "conn", Start: func(context.Context, *Scope) (StopFunc, error) {
		conn := "conn-42" // a resource opened at start
		return func(context.Context) error { closedConn = conn; return nil }, nil
	}})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if closedConn != "conn-42" {
		t.Fatalf("stop closed %q, want the conn its start opened", closedConn)
	}
}

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
				l := New("api")
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
				time.Sleep(2 * time.Hour) // fake clock: lets the abandoned start return so the bubble ends clean
			})
		})
	}
}

func TestPanicErrorCarriesStack(t *testing.T) {
	l := New("api")
	l.Append(Hook{Name: "bad", Start: func(context.Context, *Scope) (StopFunc, error) { panic("kaboom") }})
	err := l.Start(t.Context())
	var p *PanicError
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not a *PanicError", err)
	}
	if p.Value != "kaboom" || !strings.Contains(string(p.Stack), "lifespan_test.go") {
		t.Fatalf("panic value %v, stack without the panicking frame:\n%s", p.Value, p.Stack)
	}
}

func TestLateStartIsStoppedWhenItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		stopped := make(chan struct{})
		l := New("api")
		l.Append(Hook{Name: "slow", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
			<-release
			return func(context.Context) error { close(stopped); return nil }, nil
		}})
		if err := l.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded, want timeout")
		}
		close(release)
		<-stopped // the late start's resource is released
	})
}

func TestStopIsBestEffort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := New("api", WithStopTimeout(2*time.Second))
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
		l := New("api", WithStopTimeout(10*time.Second), WithLateStopGrace(50*time.Millisecond))
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

func TestStopWithoutStartAndTwice(t *testing.T) {
	l := New("api")
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	l.Append(recorded(&journal{}, "db", nil, nil))
	if err := l.Start(t.Context()); err == nil || !strings.Contains(err.Error(), `lifespan "api": Start called after Stop`) {
		t.Fatalf("Start after Stop = %v", err)
	}
	l2 := New("api")
	l2.Append(recorded(&journal{}, "x", nil, errors.New("bad")))
	if err := l2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := l2.Stop(t.Context())
	if second := l2.Stop(t.Context()); first == nil || second != first {
		t.Fatalf("second Stop = %v, want the first's %v", second, first)
	}
	if err := l2.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "Start called twice") {
		t.Fatalf("second Start = %v", err)
	}
}

func TestStopDuringStartAbandonsAndRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := New("api")
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
	noop := func(context.Context, *Scope) (StopFunc, error) { return nil, nil }
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New("api")
			l.Append(tt.hooks...)
			err := l.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAppendPanicsOnMistakes(t *testing.T) {
	noop := func(context.Context, *Scope) (StopFunc, error) { return nil, nil }
	tests := []struct {
		name string
		do   func(l *Lifespan)
	}{
		{"no name", func(l *Lifespan) { l.Append(Hook{Start: noop}) }},
		{"no start", func(l *Lifespan) { l.Append(Hook{Name: "a"}) }},
		{"duplicate", func(l *Lifespan) { l.Append(Hook{Name: "a", Start: noop}, Hook{Name: "a", Start: noop}) }},
		{"after start", func(l *Lifespan) { _ = l.Start(context.Background()); l.Append(Hook{Name: "a", Start: noop}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.do(New("api"))
		})
	}
}

func TestDependencyOrderSequential(t *testing.T) {
	j := &journal{}
	l := New("api")
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
		l := New("api", WithConcurrency(2))
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

func TestParallelFailureAbandonsSiblingsAndReapsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := New("api", WithConcurrency(3))
		l.Append(
			Hook{Name: "slow", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
				time.Sleep(2 * time.Second)
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
		// slow ignores the cancellation, so the rollback does not wait for it...
		if got, want := j.list(), []string{"start quick", "stop quick"}; !slices.Equal(got, want) {
			t.Fatalf("journal at Start's return = %q, want %q", got, want)
		}
		// ...and when it finally returns, what it started is stopped.
		time.Sleep(time.Hour)
		if got, want := j.list(), []string{"start quick", "stop quick", "start slow", "stop slow"}; !slices.Equal(got, want) {
			t.Fatalf("journal = %q, want %q", got, want)
		}
	})
}

func TestHookStatusWhileStarting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l := New("api")
		l.Append(recorded(&journal{}, "db", nil, nil), Hook{Name: "warm", Start: func(context.Context, *Scope) (StopFunc, error) {
			<-release
			return nil, nil
		}})
		if got := l.HookStatus("db"); got != HookPending {
			t.Fatalf("before Start: %v", got)
		}
		go l.Start(context.Background())
		synctest.Wait()
		if got := l.HookStatus("db"); got != HookUp {
			t.Errorf("db = %v, want started", got)
		}
		if got := l.HookStatus("warm"); got != HookRunningStart {
			t.Errorf("warm = %v, want starting", got)
		}
		if got := l.Running(); !slices.Equal(got, []string{"hook:warm"}) {
			t.Errorf("Running = %q", got)
		}
		close(release)
		<-l.Ready()
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := l.HookStatus("warm"); got != HookDown {
			t.Errorf("after Stop warm = %v, want stopped", got)
		}
	})
}
