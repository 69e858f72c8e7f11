package lifespan

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// ticker is a hook whose background task counts ticks until cancelled.
func ticker(j *journal) Hook {
	return Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		s.Go("ticker", func(ctx context.Context) error {
			ticks := 0
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					j.add("task ticker done after %d ticks", ticks)
					return ctx.Err()
				case <-tk.C:
					ticks++
				}
			}
		})
		return func(context.Context) error { j.add("stop jobs"); return nil }, nil
	}}
}

func TestTasksRunUntilStopThenEndBeforeStopHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := &App{Name: "api"}
		l.Append(ticker(j))
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3*time.Second + time.Millisecond)
		if got := l.Running(); !slices.Equal(got, []string{"task:ticker"}) {
			t.Errorf("Running while ready = %q", got)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"task ticker done after 3 ticks", "stop jobs"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Fatalf("journal = %q, want %q", got, want)
		}
	})
}

func TestStopTasksFirstThenStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := &App{Name: "api"}
		l.Append(ticker(j), Hook{Name: "failing", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("failer", func(ctx context.Context) error { <-ctx.Done(); return errors.New("lost lease") })
			return nil, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		g := Group{l}
		err := g.StopTasks(t.Context())
		if err == nil || !strings.Contains(err.Error(), `task "failer": lost lease`) {
			t.Fatalf("StopTasks = %v", err)
		}
		if l.Phase() != PhaseStopping {
			t.Fatalf("phase after StopTasks = %v, want stopping", l.Phase())
		}
		if got := j.list(); !slices.Equal(got, []string{"task ticker done after 0 ticks"}) {
			t.Fatalf("after StopTasks, journal = %q: tasks must end and no stop hook run", got)
		}
		if err := g.Stop(t.Context()); err != nil {
			t.Fatalf("Stop = %v, want nil: the task's error was StopTasks' to report", err)
		}
		if got := j.list(); !slices.Equal(got, []string{"task ticker done after 0 ticks", "stop jobs"}) {
			t.Fatalf("journal = %q", got)
		}
	})
}

func TestStopTasksBeforeReadyDoesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		entered := make(chan struct{})
		l := &App{Name: "api"}
		l.Append(ticker(j), Hook{Name: "warm", Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
		started := make(chan error, 1)
		go func() { started <- l.Start(context.Background()) }()
		<-entered
		if err := (Group{l}).StopTasks(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := l.Running(); !slices.Equal(got, []string{"hook:warm", "task:ticker"}) {
			t.Fatalf("Running = %q: StopTasks on a starting app must leave it alone", got)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := <-started; !errors.Is(err, context.Canceled) {
			t.Fatalf("Start = %v", err)
		}
	})
}

func TestConcurrentStopTasksAndStopKeepTheOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := &App{Name: "api"}
		release := make(chan struct{})
		l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("slow", func(ctx context.Context) error {
				<-ctx.Done()
				<-release // still finishing its last write
				j.add("task done")
				return nil
			})
			return func(context.Context) error { j.add("stop jobs"); return nil }, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		go func() { errs <- (Group{l}).StopTasks(t.Context()) }()
		go func() { errs <- l.Stop(t.Context()) }()
		synctest.Wait()
		close(release)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := j.list(); !slices.Equal(got, []string{"task done", "stop jobs"}) {
			t.Fatalf("journal = %q: a stop hook ran before the task ended", got)
		}
	})
}

func TestTaskFailuresReachStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &App{Name: "api", StopTimeout: time.Second}
		block := make(chan struct{})
		l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("crasher", func(context.Context) error { panic("bad tick") })
			s.Go("failer", func(context.Context) error { return errors.New("lost lease") })
			// A context.Canceled of the task's own, before the stop, is a
			// failure too: only the stop's cancellation is a clean exit.
			s.Go("consumer", func(context.Context) error { return fmt.Errorf("consume: %w", context.Canceled) })
			s.Go("deaf", func(context.Context) error { <-block; return nil })
			s.Go("ticker", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			return nil, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		err := l.Stop(t.Context())
		for _, s := range []string{`task "crasher": panic: bad tick`, `task "failer": lost lease`, `task "consumer": consume: context canceled`, `background tasks still running 1.1s after cancellation: [deaf]`} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("Stop = %v, want it to contain %q", err, s)
			}
		}
		if err != nil && strings.Contains(err.Error(), "ticker") {
			t.Errorf("Stop = %v; the ticker returned the stop's own cancellation, a clean exit", err)
		}
		close(block)
	})
}

// A task without a name or a function is a programmer's error: Go panics,
// and the start it was called in fails with a message naming the hook,
// before any task runs.
func TestGoRefusesTasksItCouldNotReport(t *testing.T) {
	tests := []struct {
		name, task string
		fn         func(context.Context) error
		want       string
	}{
		{"no name", "", func(context.Context) error { return nil }, `lifespan "api": hook "jobs": task without a name`},
		{"no function", "ticker", nil, `lifespan "api": hook "jobs": task "ticker" has no function`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &App{Name: "api"}
			l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
				s.Go(tt.task, tt.fn)
				return nil, nil
			}})
			err := l.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want it to contain %q", err, tt.want)
			}
			if got := l.Running(); len(got) != 0 {
				t.Errorf("Running = %q after the refused task's start failed", got)
			}
		})
	}
}

// A task may start after its hook's start returned (from a goroutine the
// start began, say): it runs as any task, and the tasks' stop ends it.
// Once that stop began, a task is refused, and does not run.
func TestTaskStartedAfterItsStartReturned(t *testing.T) {
	var scope *Scope
	l := &App{Name: "api"}
	l.Append(Hook{Name: "late", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		scope = s
		return nil, nil
	}})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	scope.Go("later", func(ctx context.Context) error {
		defer close(ended)
		<-ctx.Done()
		return ctx.Err()
	})
	if got := l.Running(); !slices.Equal(got, []string{"task:later"}) {
		t.Errorf("Running = %q, want the task started after its start returned", got)
	}
	if err := (Group{l}).StopTasks(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("StopTasks returned with the task still running")
	}
	ran := false
	scope.Go("too-late", func(context.Context) error { ran = true; return nil })
	if ran {
		t.Fatal("a task started after the tasks were stopped ran")
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop = %v; the refused task was recorded after StopTasks reported", err)
	}
}

// Running may be called while Start runs (serve calls it on a forced
// exit): the task table Start sets up was written beside its read.
func TestRunningDuringStart(t *testing.T) {
	l := &App{Name: "api"}
	l.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) { return nil, nil }})
	read := make(chan []string)
	go func() { read <- l.Running() }()
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-read
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A start, stop or task that ends its goroutine with runtime.Goexit (as
// t.FailNow does, from a hook in a test) returned nothing: it is reported
// as a failure saying so, not a start that succeeded, a stop that timed
// out or a task that runs forever.
func TestGoexitIsAFailureNotASuccess(t *testing.T) {
	t.Run("start", func(t *testing.T) {
		l := &App{Name: "api"}
		l.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
			runtime.Goexit()
			return nil, nil
		}})
		if err := l.Start(t.Context()); !errors.Is(err, errGoexit) || !strings.Contains(err.Error(), `hook "db"`) {
			t.Fatalf("Start = %v, want the hook's Goexit", err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &App{Name: "api", StopTimeout: time.Hour}
			l.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
				return func(context.Context) error { runtime.Goexit(); return nil }, nil
			}})
			if err := l.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			err := l.Stop(t.Context())
			if !errors.Is(err, errGoexit) || !strings.Contains(err.Error(), `hook "db"`) {
				t.Fatalf("Stop = %v, want the stop's Goexit", err)
			}
			if waited := time.Since(begin); waited > 0 {
				t.Errorf("Stop waited %v for a stop that had ended", waited)
			}
		})
	})
	t.Run("task", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &App{Name: "api"}
			var exited []Event
			l.Observer = func(e Event) {
				if e.Kind == TaskExited {
					exited = append(exited, e)
				}
			}
			l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
				s.Go("ticker", func(context.Context) error { runtime.Goexit(); return nil })
				return nil, nil
			}})
			if err := l.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if got := l.Running(); len(got) != 0 {
				t.Errorf("Running = %q after the task's goroutine ended", got)
			}
			if len(exited) != 1 || !errors.Is(exited[0].Err, errGoexit) {
				t.Errorf("TaskExited events %+v, want one with the task's Goexit", exited)
			}
			if err := l.Stop(t.Context()); !errors.Is(err, errGoexit) || !strings.Contains(err.Error(), `task "ticker"`) {
				t.Errorf("Stop = %v, want the task's Goexit", err)
			}
		})
	})
}
