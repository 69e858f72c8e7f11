package lifespan

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
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
			[]string{"level=ERROR", `error="panic: boom"`, "stack=", "main.start()"}, nil},
		{"phase failed", Event{Kind: PhaseChanged, App: "api", Phase: PhaseFailed, Err: errors.New("x")},
			[]string{"level=ERROR", `msg="lifespan failed"`}, nil},
		{"task cancelled at shutdown is not an error", Event{Kind: TaskExited, App: "api", Hook: "tick", Err: context.Canceled},
			[]string{"level=INFO", "msg=task-exited"}, []string{"ERROR"}},
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
			{TaskExited, "refresh", PhaseStopping, 2 * time.Second, true}, // context.Canceled, which observers count as clean
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

// TestLoggedErrorsForgetAtEachPhaseChange: the errors an app's events
// logged hide only the phase change that follows them, so the observer
// holds no error past it.
func TestLoggedErrorsForgetAtEachPhaseChange(t *testing.T) {
	var l loggedErrors
	refused := errors.New("refused")
	l.note("api", refused)
	if got := l.fresh("api", errors.Join(refused)); got != nil {
		t.Fatalf("fresh after note = %v, want nil", got)
	}
	l.note("api", refused)
	_ = l.fresh("api", nil) // a phase change without an error
	if got := l.fresh("api", refused); got != refused {
		t.Fatalf("fresh after the phase change = %v, want %v", got, refused)
	}
	if len(l.byApp) != 0 {
		t.Fatalf("errors held after the phase changes: %v", l.byApp)
	}
}
