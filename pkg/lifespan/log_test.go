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
