package lifespan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/logbuf"
)

func TestLogObserver(t *testing.T) {
	tests := []struct {
		name  string
		event Event
		want  []string
		not   []string
	}{
		{"hook started", Event{Kind: HookStarted, App: "api", Hook: "db", Phase: PhaseStarting, Duration: 1500 * time.Millisecond},
			[]string{"level=INFO", "msg=hook-started", "app=api", "hook=db", "phase=starting", "duration_seconds=1.5"}, []string{"error="}},
		{"failure with a panic stack", Event{Kind: HookStarted, App: "api", Hook: "db", Err: &PanicError{Value: "boom", Stack: []byte("goroutine 7 [running]:\nmain.start()")}},
			[]string{"level=ERROR", "msg=hook-start-failed", `error="panic: boom"`, "stack=", "main.start()"}, []string{"msg=hook-started"}},
		{"a start cut short is no failure of its own", Event{Kind: HookStarted, App: "api", Hook: "cache", CutShort: true, Err: fmt.Errorf("start: %w", context.Canceled)},
			[]string{"level=WARN", "msg=hook-start-cut-short", `error="start: context canceled"`}, []string{"ERROR", "hook-start-failed"}},
		{"phase failed", Event{Kind: PhaseChanged, App: "api", Phase: PhaseFailed, Err: errors.New("x")},
			[]string{"level=ERROR", `msg="lifespan failed"`}, nil},
		{"task cancelled at shutdown is not an error", Event{Kind: TaskExited, App: "api", Hook: "tick"},
			[]string{"level=INFO", "msg=task-exited"}, []string{"ERROR"}},
		{"a task's own cancellation is", Event{Kind: TaskExited, App: "api", Hook: "consumer", Err: fmt.Errorf("consume: %w", context.Canceled)},
			[]string{"level=ERROR", "msg=task-failed", `error="consume: context canceled"`}, nil},
		{"a late stop's failure", Event{Kind: HookStopped, App: "api", Hook: "db", Late: true, Err: errors.New("late stop: flush")},
			[]string{"level=ERROR", "msg=hook-stop-failed", "late=true", `error="late stop: flush"`}, nil},
		{"a start cut short that then failed by itself", Event{Kind: HookStarted, App: "api", Hook: "cache", Late: true, Err: errors.New("start, after the startup ended: cache file corrupt")},
			[]string{"level=ERROR", "msg=hook-start-failed", "late=true", "cache file corrupt"}, []string{"cut-short"}},
		{"begin events are debug", Event{Kind: HookStopping, App: "api", Hook: "db"}, []string{"level=DEBUG", "msg=hook-stopping"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			LogObserver(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))(tt.event)
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %q lacks %q", buf.String(), w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(buf.String(), n) {
					t.Errorf("log %q has %q", buf.String(), n)
				}
			}
		})
	}
}

func TestEventsCarryAppHookPhaseDurationError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []Event
		obs := func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
		l := &App{Name: "api", Observer: Observers(obs, nil)}
		l.Append(Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			time.Sleep(2 * time.Second)
			s.Go("refresh", func(ctx context.Context) error { <-ctx.Done(); time.Sleep(time.Second); return ctx.Err() })
			return func(context.Context) error { time.Sleep(time.Second); return errors.New("close") }, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		_ = l.Stop(t.Context())

		type row struct {
			Kind  EventKind
			Hook  string
			Phase Phase
			D     time.Duration
			Err   bool
		}
		var got []row
		for _, e := range events {
			if e.App != "api" || e.Time.IsZero() {
				t.Errorf("event %+v lacks app or time", e)
			}
			got = append(got, row{e.Kind, e.Hook, e.Phase, e.Duration, e.Err != nil})
		}
		want := []row{
			{PhaseChanged, "", PhaseStarting, 0, false},
			{HookStarting, "db", PhaseStarting, 0, false},
			{TaskStarted, "refresh", PhaseStarting, 0, false},
			{HookStarted, "db", PhaseStarting, 2 * time.Second, false},
			{PhaseChanged, "", PhaseReady, 2 * time.Second, false},
			{PhaseChanged, "", PhaseStopping, 0, false},
			{TaskExited, "refresh", PhaseStopping, 2 * time.Second, false}, // it returned the stop's cancellation: clean
			{HookStopping, "db", PhaseStopping, 0, false},
			{HookStopped, "db", PhaseStopping, time.Second, true},
			{PhaseChanged, "", PhaseStopped, 2 * time.Second, true}, // the task's second, then the hook's
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events:\n got %+v\nwant %+v", got, want)
		}
	})
}

// TestLogObserverLogsEachErrorOnce runs apps whose startups fail and
// counts, in the log, each error's text and the panic stack: a failed
// start, its rollback's failed stop and a panic are each logged once, by
// the event where they happened, and the phase change gathers only what no
// event logged (a setting error), even when two apps share the observer.
func TestLogObserverLogsEachErrorOnce(t *testing.T) {
	failing := func(name string) *App {
		a := &App{Name: name}
		a.Append(Hook{Name: "cache", Start: func(context.Context, *Scope) (StopFunc, error) {
			return func(context.Context) error { return errors.New("flush refused") }, nil
		}})
		a.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
			return nil, errors.New("connection refused")
		}})
		return a
	}
	panicking := &App{Name: "panicking"}
	panicking.Append(Hook{Name: "boom", Start: func(context.Context, *Scope) (StopFunc, error) { panic("kaboom") }})
	badSetting := &App{Name: "bad", StopTimeout: -time.Second}
	badSetting.Append(Hook{Name: "noop", Start: func(context.Context, *Scope) (StopFunc, error) { return nil, nil }})

	var buf bytes.Buffer
	obs := LogObserver(slog.New(slog.NewTextHandler(&buf, nil)))
	for _, a := range []*App{failing("one"), failing("two"), panicking, badSetting} {
		a.Observer = obs
		if err := a.Start(t.Context()); err == nil {
			t.Fatalf("app %s started", a.Name)
		}
	}
	log := buf.String()
	for _, tt := range []struct {
		text string
		want int
	}{
		{"connection refused", 2},    // one per app
		{"flush refused", 2},         // the rollback's, one per app
		{"kaboom", 1},                // the panic
		{"[running]", 1},             // its stack
		{"StopTimeout is -1s", 1},    // no event logged it before the phase change
		{`msg="lifespan failed"`, 4}, // every failure is still reported
	} {
		if got := strings.Count(log, tt.text); got != tt.want {
			t.Errorf("%q logged %d times, want %d:\n%s", tt.text, got, tt.want, log)
		}
	}
}

// TestLogObserverLogsAStopsErrorsOnce stops an app directly (no
// StopTasks first): a task that failed while the app was starting, one
// that failed while it was ready, a task still running past the stop
// timeout and a failed stop hook are each logged once, and "lifespan
// stopped" carries the one no event logged. The stuck task's late error,
// after the stop, is logged and not remembered.
func TestLogObserverLogsAStopsErrorsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		obs, seen := logObserver(slog.New(slog.NewTextHandler(&buf, nil)))
		a := &App{Name: "api", StopTimeout: time.Second, Observer: obs}
		stuckEnded := make(chan struct{})
		a.Append(Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("early", func(context.Context) error { return errors.New("early broke") })
			s.Go("flaky", func(context.Context) error { time.Sleep(2 * time.Second); return errors.New("flaky broke") })
			s.Go("stuck", func(ctx context.Context) error {
				defer close(stuckEnded)
				<-ctx.Done()
				time.Sleep(time.Minute)
				return errors.New("stuck gave up")
			})
			time.Sleep(time.Second) // early fails while the app starts
			return func(context.Context) error { return errors.New("close refused") }, nil
		}})
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // flaky fails while the app is ready
		if err := a.Stop(t.Context()); err == nil {
			t.Fatal("Stop = nil, want the tasks' and the hook's errors")
		}
		<-stuckEnded
		synctest.Wait() // its exit is logged too
		log := buf.String()
		for text, want := range map[string]int{"early broke": 1, "flaky broke": 1, "close refused": 1, "still running": 1, "stuck gave up": 1} {
			if got := strings.Count(log, text); got != want {
				t.Errorf("%q logged %d times, want %d:\n%s", text, got, want, log)
			}
		}
		if !regexp.MustCompile(`msg="lifespan stopped".*still running`).MatchString(log) {
			t.Errorf("the stop's own error is not on its line:\n%s", log)
		}
		if len(seen.byApp) != 0 {
			t.Errorf("errors remembered after the app stopped: %v", seen.byApp)
		}
	})
}

// TestLogObserverFromConcurrentHooks: hooks that start at once report
// their failures at once, each logged once (a hook whose failure lost the
// race to the startup's cancellation reports that instead); run with -race.
func TestLogObserverFromConcurrentHooks(t *testing.T) {
	var buf logbuf.Buffer
	a := &App{Name: "api", Concurrency: 4, Observer: LogObserver(slog.New(slog.NewTextHandler(&buf, nil)))}
	var started sync.WaitGroup
	started.Add(4)
	for i := range 4 {
		a.Append(Hook{Name: fmt.Sprint("h", i), Start: func(context.Context, *Scope) (StopFunc, error) {
			started.Done()
			started.Wait() // all four are running: they fail together
			return nil, fmt.Errorf("refused %d", i)
		}})
	}
	if err := a.Start(t.Context()); err == nil {
		t.Fatal("Start = nil")
	}
	log, total := buf.String(), 0
	for i := range 4 {
		n := strings.Count(log, fmt.Sprint("refused ", i))
		if n > 1 {
			t.Errorf("refused %d logged %d times, want at most 1:\n%s", i, n, log)
		}
		total += n
	}
	if total == 0 || !strings.Contains(log, `msg="lifespan failed"`) {
		t.Errorf("no failure logged:\n%s", log)
	}
}

// TestLoggedErrorsForgetWhenTheAppEnds: the errors an app's events logged
// hide themselves within the phase change that gathers them, at any depth
// of errors.Join, and are forgotten once the app failed or stopped.
func TestLoggedErrorsForgetWhenTheAppEnds(t *testing.T) {
	var l loggedErrors
	refused, stuck := errors.New("refused"), errors.New("stuck")
	l.note("api", refused)
	if got := l.fresh("api", PhaseStopping, nil); got != nil {
		t.Fatalf("fresh(stopping) = %v", got)
	}
	if got := l.fresh("api", PhaseStopped, errors.Join(errors.Join(refused, stuck), nil)); got == nil || got.Error() != "stuck" {
		t.Fatalf("fresh(stopped) = %v, want only stuck", got)
	}
	if got := l.fresh("api", PhaseStopped, refused); got != refused {
		t.Fatalf("fresh after the app stopped = %v, want %v", got, refused)
	}
	if len(l.byApp) != 0 {
		t.Fatalf("errors held after the app stopped: %v", l.byApp)
	}
}
