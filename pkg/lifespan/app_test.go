package lifespan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestStartInOrderStopInReverse(t *testing.T) {
	j := &journal{}
	l := &App{Name: "api"}
	l.Append(recorded(j, "db", nil, nil), recorded(j, "cache", nil, nil), recorded(j, "jobs", nil, nil))
	if got := l.Phase(); got != PhaseNew {
		t.Fatalf("phase before Start = %v, want new", got)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := l.Phase(); got != PhaseReady {
		t.Fatalf("phase after Start = %v, want ready", got)
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

func TestZeroAppStartsAndStops(t *testing.T) {
	var l App
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.Phase() != PhaseStopped {
		t.Fatalf("phase = %v", l.Phase())
	}
}

func TestStopClosureSeesStartLocals(t *testing.T) {
	l := &App{Name: "api"}
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

func TestAppendPanicsOnMistakes(t *testing.T) {
	tests := []struct {
		name string
		do   func(l *App)
	}{
		{"no name", func(l *App) { l.Append(Hook{Start: noop}) }},
		{"no start", func(l *App) { l.Append(Hook{Name: "a"}) }},
		{"duplicate", func(l *App) { l.Append(Hook{Name: "a", Start: noop}, Hook{Name: "a", Start: noop}) }},
		{"after start", func(l *App) { _ = l.Start(context.Background()); l.Append(Hook{Name: "a", Start: noop}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.do(&App{Name: "api"})
		})
	}
}

func TestSettingsThatCannotWorkAreRefused(t *testing.T) {
	tests := []struct {
		name string
		app  *App
		want string
	}{
		{"negative stop timeout", &App{Name: "api", StopTimeout: -1}, `lifespan "api": StopTimeout is -1ns; want 0 (the default) or more`},
		{"negative start timeout", &App{Name: "api", StartTimeout: -1}, `StartTimeout is -1ns`},
		{"negative concurrency", &App{Name: "api", Concurrency: -2}, `Concurrency is -2; want 0 or 1 (one at a time) or more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			tt.app.Append(recorded(j, "db", nil, nil))
			err := tt.app.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want %q", err, tt.want)
			}
			if got := j.list(); len(got) != 0 {
				t.Fatalf("hooks ran: %q", got)
			}
		})
	}
	for _, h := range []Hook{{Name: "db", Start: noop, StopTimeout: -1}, {Name: "db", Start: noop, StartTimeout: -1}} {
		l := &App{Name: "api"}
		l.Append(h)
		want := fmt.Sprintf(`hook "db": StartTimeout %v, StopTimeout %v; want 0 (the app's) or more`, h.StartTimeout, h.StopTimeout)
		if err := l.Start(t.Context()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start = %v, want %q", err, want)
		}
	}
	// A context already done starts nothing.
	j := &journal{}
	l := &App{Name: "api"}
	l.Append(recorded(j, "db", nil, nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Start(ctx); err == nil || !strings.Contains(err.Error(), "startup abandoned") || len(j.list()) != 0 {
		t.Errorf("Start with a done context = %v, hooks %q; want it abandoned before any hook", err, j.list())
	}
}

func TestStopWithoutStartAndTwice(t *testing.T) {
	l := &App{Name: "api"}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	l.Append(recorded(&journal{}, "db", nil, nil))
	if err := l.Start(t.Context()); err == nil || !strings.Contains(err.Error(), `lifespan "api": Start called after Stop`) {
		t.Fatalf("Start after Stop = %v", err)
	}
	l2 := &App{Name: "api"}
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

func TestHookStatusAndRunningWhileStarting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		l := &App{Name: "api"}
		l.Append(recorded(&journal{}, "db", nil, nil), Hook{Name: "warm", Start: func(context.Context, *Scope) (StopFunc, error) {
			<-release
			return nil, nil
		}})
		if got := l.HookStatus("db"); got != HookPending {
			t.Fatalf("before Start: %v", got)
		}
		started := make(chan error, 1)
		go func() { started <- l.Start(context.Background()) }()
		synctest.Wait()
		if got := l.HookStatus("db"); got != HookUp {
			t.Errorf("db = %v, want started", got)
		}
		if got := l.HookStatus("warm"); got != HookRunningStart {
			t.Errorf("warm = %v, want starting", got)
		}
		if got := l.HookStatus("nope"); got != HookPending {
			t.Errorf("unknown hook = %v, want pending", got)
		}
		if got := l.Running(); !slices.Equal(got, []string{"hook:warm"}) {
			t.Errorf("Running = %q", got)
		}
		if got := l.Hooks(); !slices.Equal(got, []string{"db", "warm"}) {
			t.Errorf("Hooks = %q", got)
		}
		close(release)
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := l.HookStatus("warm"); got != HookDown {
			t.Errorf("after Stop warm = %v, want stopped", got)
		}
	})
}

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{PhaseStopping.String(), "stopping"},
		{Phase(99).String(), "Phase(99)"},
		{HookStopped.String(), "hook-stopped"},
		{EventKind(-1).String(), "EventKind(-1)"},
		{HookRunningStop.String(), "stopping"},
		{HookStatus(42).String(), "HookStatus(42)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

// An observer that panics (a metrics observer with a label mistake, say)
// must neither end the process from a hook's goroutine nor leave a Stop
// half done: every event is dropped, and the app starts and stops as it
// would without one. The panic is logged instead.
func TestPanickingObserverNeitherCrashesNorStopsHalfway(t *testing.T) {
	for _, concurrency := range []int{1, 2} {
		t.Run(fmt.Sprintf("concurrency %d", concurrency), func(t *testing.T) {
			var logged bytes.Buffer
			defer slog.SetDefault(slog.Default())
			slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
			j := &journal{}
			l := &App{Name: "api", Concurrency: concurrency, Observer: func(e Event) { panic("observer boom: " + e.Kind.String()) }}
			l.Append(recorded(j, "db", nil, nil), recorded(j, "cache", nil, nil))
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := l.Stop(t.Context()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if got := l.Phase(); got != PhaseStopped {
				t.Errorf("phase after Stop = %v, want stopped", got)
			}
			got := j.list()
			slices.Sort(got)
			if want := []string{"start cache", "start db", "stop cache", "stop db"}; !slices.Equal(got, want) {
				t.Errorf("hooks did %q, want %q", got, want)
			}
			if !strings.Contains(logged.String(), "observer boom: hook-started") {
				t.Errorf("the observer's panic was not logged; the log:\n%s", logged.String())
			}
		})
	}
}

// One observer's panic does not keep the event from the observers after
// it in Observers (serve puts its own RollbackStarting observer after the
// user's, to end the background checks before the rollback's stops); the
// panic is still logged.
func TestOnePanickingObserverDoesNotStarveTheOthers(t *testing.T) {
	var logged bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	var kinds []EventKind
	a := &App{Name: "api", Observer: Observers(
		func(Event) { panic("user observer bug") },
		func(e Event) { kinds = append(kinds, e.Kind) },
	)}
	a.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) { return nil, errors.New("refused") }})
	if err := a.Start(t.Context()); err == nil {
		t.Fatal("Start succeeded with a failing hook")
	}
	if !slices.Contains(kinds, RollbackStarting) || !slices.Contains(kinds, HookStarted) {
		t.Errorf("the second observer saw %v: the first one's panic kept events from it", kinds)
	}
	if !strings.Contains(logged.String(), "user observer bug") {
		t.Errorf("the observer's panic was not logged; the log:\n%s", logged.String())
	}
}

// Running names a hook while its start or stop function runs, also one the
// app stopped waiting for at its timeout (a stop or start that ignores its
// context): serve's second signal logs Running to say what was still
// running, which such a call usually is. It is gone once the call returns.
// HookStatus tells the same truth: a stop abandoned at its timeout is
// still stopping until it returns; a start past its timeout failed, and
// stays failed.
func TestRunningNamesCallsTheAppGaveUpOn(t *testing.T) {
	for _, tt := range []struct {
		name string
		hook func(block <-chan struct{}) Hook
		// run starts (and stops) the app, up to where the call runs on.
		run func(t *testing.T, a *App)
		// db's status while the call runs on, and once it returned.
		during, after HookStatus
	}{
		{"a stop abandoned at its timeout", func(block <-chan struct{}) Hook {
			return Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(context.Context) error { <-block; return nil }, nil
			}}
		}, func(t *testing.T, a *App) {
			if err := a.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			var te *TimeoutError
			if err := a.Stop(t.Context()); !errors.As(err, &te) {
				t.Fatalf("Stop = %v, want a stop TimeoutError", err)
			}
		}, HookRunningStop, HookDown},
		{"a start past its timeout, after Start returned", func(block <-chan struct{}) Hook {
			return Hook{Name: "db", StartTimeout: time.Second, Start: func(context.Context, *Scope) (StopFunc, error) {
				<-block
				return nil, nil
			}}
		}, func(t *testing.T, a *App) {
			var te *TimeoutError
			if err := a.Start(t.Context()); !errors.As(err, &te) {
				t.Fatalf("Start = %v, want a start TimeoutError", err)
			}
		}, HookFailed, HookFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				block := make(chan struct{})
				a := &App{Name: "api", StopTimeout: time.Second}
				a.Append(tt.hook(block))
				tt.run(t, a)
				if got := a.Running(); !slices.Equal(got, []string{"hook:db"}) {
					t.Errorf("Running = %q while db's call runs on; want [hook:db]", got)
				}
				if got := a.HookStatus("db"); got != tt.during {
					t.Errorf("db is %v while its call runs on; want %v", got, tt.during)
				}
				close(block)
				synctest.Wait()
				if got := a.Running(); len(got) != 0 {
					t.Errorf("Running = %q once db's call returned; want none", got)
				}
				if got := a.HookStatus("db"); got != tt.after {
					t.Errorf("db is %v once its call returned; want %v", got, tt.after)
				}
			})
		})
	}
}

// Running names hooks "whose start or stop function has not returned".
// Once Start has returned success, every start function has returned; once
// Stop has returned (no stop abandoned), every stop function has. Running
// must then name no hook: a call is counted out before its result is
// handed to the app. (A count taken out after would show in a few of these
// runs: the window is the time between two statements.)
func TestRunningIsEmptyOnceStartAndStopReturned(t *testing.T) {
	for i := range 20000 {
		a := &App{Name: "api"}
		a.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
			return func(context.Context) error { return nil }, nil
		}})
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := a.Running(); len(got) != 0 {
			t.Fatalf("run %d: Running = %q right after Start returned; db's start had returned", i, got)
		}
		if err := a.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := a.Running(); len(got) != 0 {
			t.Fatalf("run %d: Running = %q right after Stop returned; db's stop had returned", i, got)
		}
	}
}

// An observer that ends its goroutine with runtime.Goexit (t.Fatalf in a
// test's observer, on an event it did not expect) must not hang Start:
// the app handles a hook's Goexit, and an observer's panic, and the
// observer runs on a hook's goroutine, which Start waits for. Start must
// return, as it does when the observer panics.
func TestObserverGoexitDoesNotHangStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &App{Name: "api", Observer: func(e Event) {
			if e.Kind == HookStarted {
				runtime.Goexit() // as t.FailNow does
			}
		}}
		l.Append(Hook{Name: "db", Start: noop})
		returned := make(chan error, 1)
		go func() { returned <- l.Start(context.Background()) }()
		synctest.Wait()
		select {
		case <-returned:
		default:
			t.Fatal("Start never returned: the observer's Goexit ended the goroutine Start waits on")
		}
		_ = l.Stop(context.Background())
	})
}
