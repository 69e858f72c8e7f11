package lifespan

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
)

// LogObserver logs every event with log: hook starts and stops with their
// durations and phase changes at Info, the begin events at Debug, failures
// at Error with the panic stack when there is one. A task that ends with
// its context's cancellation at shutdown is not a failure. An error is
// logged once: a phase change (a failed startup, a stop with errors)
// carries only the errors that no hook or task event of its app logged
// already. Durations are logged as seconds, in a "duration_seconds"
// attribute. A nil logger uses slog.Default().
func LogObserver(log *slog.Logger) Observer {
	if log == nil {
		log = slog.Default()
	}
	var seen loggedErrors
	return func(e Event) {
		attrs := []slog.Attr{slog.String("app", e.App)}
		if e.Hook != "" {
			attrs = append(attrs, slog.String("hook", e.Hook))
		}
		attrs = append(attrs, slog.String("phase", e.Phase.String()))
		if e.Duration > 0 {
			attrs = append(attrs, slog.Float64("duration_seconds", e.Duration.Seconds()))
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
		err := e.Err
		if e.Kind == PhaseChanged {
			err = seen.fresh(e.App, err)
		}
		if e.Err != nil && !(e.Kind == TaskExited && errors.Is(e.Err, context.Canceled)) {
			level = slog.LevelError
			if e.Kind != PhaseChanged {
				seen.note(e.App, err)
			}
		}
		if err != nil && level == slog.LevelError {
			attrs = append(attrs, slog.String("error", err.Error()))
			var p *PanicError
			if errors.As(err, &p) {
				attrs = append(attrs, slog.String("stack", string(p.Stack)))
			}
		}
		log.LogAttrs(context.Background(), level, msg, attrs...)
	}
}

// loggedErrors remembers, per app, the errors its hook and task events
// logged since the app's last phase change, so the phase change that
// gathers them (errors.Join) does not log them again.
type loggedErrors struct {
	mu    sync.Mutex
	byApp map[string][]error
}

// note records a hook or task event's error as logged.
func (l *loggedErrors) note(app string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byApp == nil {
		l.byApp = map[string][]error{}
	}
	l.byApp[app] = append(l.byApp[app], err)
}

// fresh forgets app's logged errors and returns the parts of err (a phase
// change's, nil or not) that were not among them: nil when every part was.
func (l *loggedErrors) fresh(app string, err error) error {
	l.mu.Lock()
	logged := l.byApp[app]
	delete(l.byApp, app)
	l.mu.Unlock()
	if err == nil || len(logged) == 0 {
		return err
	}
	parts := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	}
	var fresh []error
	for _, p := range parts {
		if !slices.ContainsFunc(logged, func(done error) bool { return errors.Is(p, done) }) {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) == len(parts) {
		return err
	}
	return errors.Join(fresh...)
}
