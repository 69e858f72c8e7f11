package lifespan

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLogObserver(t *testing.T) {
	tests := []struct {
		name  string
		event Event
		want  []string
		not   []string
	}{
		{"hook started", Event{Kind: HookStarted, App: "api", Hook: "db", Phase: PhaseStarting, Duration: 1500000},
			[]string{"level=INFO", "msg=hook-started", "app=api", "hook=db", "phase=starting", "duration=1.5ms"}, []string{"error="}},
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
			NewLogObserver(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).OnEvent(tt.event)
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
