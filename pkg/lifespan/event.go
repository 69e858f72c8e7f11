package lifespan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Phase is where a lifespan is in its life.
type Phase int32

// The phases, in the order a lifespan passes through them. PhaseFailed ends a
// lifespan whose startup failed (after its rollback).
const (
	PhaseNew Phase = iota
	PhaseStarting
	PhaseReady
	PhaseDraining
	PhaseStopping
	PhaseStopped
	PhaseFailed
)

// Phases lists every phase, for metrics that export one series each.
var Phases = []Phase{PhaseNew, PhaseStarting, PhaseReady, PhaseDraining, PhaseStopping, PhaseStopped, PhaseFailed}

var phaseNames = [...]string{"new", "starting", "ready", "draining", "stopping", "stopped", "failed"}

func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int32(p))
	}
	return phaseNames[p]
}

// EventKind says what an [Event] reports.
type EventKind int

// The kinds of event. A HookStarting is always followed by a HookStarted
// (with Err set when it failed), and a HookStopping by a HookStopped.
const (
	// PhaseChanged: the app entered Event.Phase. Entering PhaseReady or
	// PhaseFailed carries the whole startup's duration; entering PhaseStopped
	// carries the whole shutdown's (from the start of the drain, if any).
	PhaseChanged EventKind = iota
	HookStarting
	HookStarted
	HookStopping
	HookStopped
	TaskStarted
	TaskExited
)

var kindNames = [...]string{"phase", "hook-starting", "hook-started", "hook-stopping", "hook-stopped", "task-started", "task-exited"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return kindNames[k]
}

// Event is one thing that happened in a lifespan.
type Event struct {
	Kind EventKind
	App  string
	// Hook is the hook's name, or the task's for task events; empty for
	// phase changes.
	Hook string
	// Phase is the app's phase when the event happened.
	Phase Phase
	// Duration is how long the hook's start or stop, the task, or the whole
	// startup or shutdown took; zero for events that begin something.
	Duration time.Duration
	Err      error
	Time     time.Time
}

// Observer receives a lifespan's events. OnEvent is called synchronously,
// never while the lifespan holds a lock, possibly from several goroutines at
// once when hooks start in parallel; it must be quick and safe for
// concurrent use.
type Observer interface {
	OnEvent(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// OnEvent calls f(e).
func (f ObserverFunc) OnEvent(e Event) { f(e) }

// Observers returns an observer that hands each event to every non-nil
// observer in turn.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) OnEvent(e Event) {
	for _, o := range m {
		o.OnEvent(e)
	}
}

// PanicError is the error a hook's or task's panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

func recovered(v any) error {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// TimeoutError reports a start or stop that had not returned by its
// deadline. The hook's function may still be running; when it returns, its
// outcome is reported as a late event (and, for a start, the stop it
// returned is called).
type TimeoutError struct {
	Op      string // "start" or "stop"
	Timeout time.Duration
}

func (t *TimeoutError) Error() string {
	return fmt.Sprintf("%s did not return within %v", t.Op, t.Timeout)
}

// Is makes a TimeoutError match context.DeadlineExceeded.
func (t *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// NewLogObserver logs every event with log: progress at Info (hook starts
// and stops with their durations, phase changes), failures at Error with the
// panic stack when there is one. A nil logger uses slog.Default().
func NewLogObserver(log *slog.Logger) Observer {
	if log == nil {
		log = slog.Default()
	}
	return ObserverFunc(func(e Event) {
		attrs := []slog.Attr{slog.String("app", e.App)}
		if e.Hook != "" {
			attrs = append(attrs, slog.String("hook", e.Hook))
		}
		attrs = append(attrs, slog.String("phase", e.Phase.String()))
		if e.Duration > 0 {
			attrs = append(attrs, slog.Duration("duration", e.Duration))
		}
		level, msg := slog.LevelInfo, ""
		switch e.Kind {
		case PhaseChanged:
			msg = "lifespan " + e.Phase.String()
			if e.Phase == PhaseFailed {
				level = slog.LevelError
			}
		case HookStarting, HookStopping, TaskStarted:
			level, msg = slog.LevelDebug, e.Kind.String()
		default:
			msg = e.Kind.String()
		}
		if e.Err != nil && !(e.Kind == TaskExited && errors.Is(e.Err, context.Canceled)) {
			level = slog.LevelError
			attrs = append(attrs, slog.String("error", e.Err.Error()))
			var p *PanicError
			if errors.As(e.Err, &p) {
				attrs = append(attrs, slog.String("stack", string(p.Stack)))
			}
		}
		log.LogAttrs(context.Background(), level, msg, attrs...)
	})
}
