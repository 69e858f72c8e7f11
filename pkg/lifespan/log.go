package lifespan

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
)

// LogObserver logs every event with log: a hook or task event with its
// kind as the message ("hook-started"), a phase change as "lifespan " and
// the phase ("lifespan ready"). Hook starts and stops, with their
// durations, and phase changes are logged at Info, the begin events at
// Debug, failures at Error with the panic stack when there is one, as
// "hook-start-failed", "hook-stop-failed" and "task-failed"; a start the
// startup's end cut short (Event.CutShort) is logged at Warn, as
// "hook-start-cut-short", with what ended it, and a rollback about to
// begin (RollbackStarting) as "lifespan rolling back". A late event
// (Event.Late) carries late=true. An error is logged once: a phase
// change that gathers errors (a failed startup, a
// stop with errors) is logged at Error with only the errors no hook or
// task event of its app logged already, and with no error attribute when
// they all were. Apps are told apart by name, so apps sharing an observer
// need names of their own. Durations are logged as seconds, in a
// "duration_seconds" attribute. A nil logger uses slog.Default().
func LogObserver(log *slog.Logger) Observer {
	obs, _ := logObserver(log)
	return obs
}

// logObserver is LogObserver, and the errors it remembers.
func logObserver(log *slog.Logger) (Observer, *loggedErrors) {
	if log == nil {
		log = slog.Default()
	}
	seen := &loggedErrors{}
	return func(e Event) {
		attrs := []slog.Attr{slog.String("app", e.App)}
		if e.Hook != "" {
			attrs = append(attrs, slog.String("hook", e.Hook))
		}
		attrs = append(attrs, slog.String("phase", e.Phase.String()))
		if e.Duration > 0 {
			attrs = append(attrs, slog.Float64("duration_seconds", e.Duration.Seconds()))
		}
		if e.Late {
			attrs = append(attrs, slog.Bool("late", true))
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
		case RollbackStarting:
			level, msg = slog.LevelWarn, "lifespan rolling back" // why is the failed hook's line, just before
		default:
			msg = e.Kind.String()
		}
		err := e.Err
		if e.Kind == PhaseChanged {
			err = seen.fresh(e.App, e.Phase, err)
		}
		if e.Err != nil {
			level = slog.LevelError
			switch {
			case e.Kind == HookStarted && e.CutShort:
				level, msg = slog.LevelWarn, "hook-start-cut-short" // not this hook's failure
			case e.Kind == HookStarted:
				msg = "hook-start-failed"
			case e.Kind == HookStopped:
				msg = "hook-stop-failed"
			case e.Kind == TaskExited:
				msg = "task-failed"
			}
			// After the app stopped or failed no phase change will gather
			// an error (a late stop's, say): it need not be remembered.
			if e.Kind != PhaseChanged && e.Phase != PhaseStopped && e.Phase != PhaseFailed {
				seen.note(e.App, err)
			}
		}
		if err != nil && level >= slog.LevelWarn {
			attrs = append(attrs, slog.String("error", err.Error()))
			var p *PanicError
			if errors.As(err, &p) {
				attrs = append(attrs, slog.String("stack", string(p.Stack)))
			}
		}
		log.LogAttrs(context.Background(), level, msg, attrs...)
	}, seen
}

// loggedErrors remembers, per app, the errors its hook and task events
// logged, until the phase change that gathers them (Failed or Stopped; a
// task's error, from any time in the app's life, is gathered at its stop),
// so that one does not log them again.
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

// fresh returns the errors within err, a phase change's (nil or not),
// that were not logged: err itself when none was, nil when all were.
// PhaseFailed and PhaseStopped, after which nothing gathers errors, forget
// app's logged errors.
func (l *loggedErrors) fresh(app string, phase Phase, err error) error {
	l.mu.Lock()
	logged := l.byApp[app]
	if phase == PhaseFailed || phase == PhaseStopped {
		delete(l.byApp, app)
	}
	l.mu.Unlock()
	if err == nil || len(logged) == 0 {
		return err
	}
	all := leaves(err)
	var fresh []error
	for _, e := range all {
		if !slices.ContainsFunc(logged, func(done error) bool { return errors.Is(e, done) }) {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == len(all) {
		return err
	}
	return errors.Join(fresh...)
}

// leaves flattens the errors errors.Join gathered, at every depth.
func leaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}
