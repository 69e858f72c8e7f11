package lifespan

import (
	"context"
	"errors"
	"log/slog"
)

// LogObserver logs every event with log: hook starts and stops with their
// durations and phase changes at Info, the begin events at Debug, failures
// at Error with the panic stack when there is one. A task that ends with
// its context's cancellation at shutdown is not a failure. Durations are
// logged as seconds, in a "duration_seconds" attribute. A nil logger uses
// slog.Default().
func LogObserver(log *slog.Logger) Observer {
	if log == nil {
		log = slog.Default()
	}
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
		if e.Err != nil && !(e.Kind == TaskExited && errors.Is(e.Err, context.Canceled)) {
			level = slog.LevelError
			attrs = append(attrs, slog.String("error", e.Err.Error()))
			var p *PanicError
			if errors.As(e.Err, &p) {
				attrs = append(attrs, slog.String("stack", string(p.Stack)))
			}
		}
		log.LogAttrs(context.Background(), level, msg, attrs...)
	}
}
