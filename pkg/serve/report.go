package serve

import (
	"log/slog"
	"time"
)

// ShutdownReport is what a shutdown did, read off the lifecycle signals and
// the request gate, for logs and metrics.
type ShutdownReport struct {
	// Reason is what started the shutdown: the OS signal's name
	// ("terminated", "interrupt", "hangup"), "shutdown called", "context
	// done", or "api server failed" / "admin server failed" (a listener's
	// Serve returned an error); or "startup failed", in the report
	// OnShutdown gets after a startup that failed by itself.
	Reason string
	// ServedDuringDelay counts requests that arrived between
	// ReadinessFailing and DrainStarted; InFlightAtDrainStart those still
	// running at DrainStarted; CutOff those whose handlers still ran when
	// the drain timeout ended the wait (a request net/http dropped before
	// its handler began is not counted: see the README's shutdown timeline).
	ServedDuringDelay    int64
	InFlightAtDrainStart int64
	CutOff               int64
	// Delay is T0..T1 (ShutdownInitiated to DrainStarted), Drain T1..T2
	// (to InFlightDrained), Tasks and Hooks the stop of the background
	// tasks and of the hooks, and Total the whole shutdown,
	// ShutdownInitiated to ShutdownComplete.
	Delay, Drain, Tasks, Hooks, Total time.Duration
	// Err is the shutdown's joined error; nil for a clean one. After a
	// failed or abandoned startup, it is the *StartupError. The classic
	// sidecars' quit comes after the report (OnShutdown's push may need
	// their network), so neither its error nor its time is here: it is
	// logged, and Run returns its error joined with Err. Total ends at
	// ShutdownComplete, before OnShutdown and the quit, each bounded by
	// its timeout, which the budget counts.
	Err error
}

func between(from, to *Signal) time.Duration {
	if !from.Signalled() || !to.Signalled() {
		return 0
	}
	return to.At().Sub(from.At())
}

// logAttrs are the report's figures for a log line; durations in seconds.
func (r ShutdownReport) logAttrs() []any {
	return []any{"reason", r.Reason,
		"served_during_delay", r.ServedDuringDelay, "in_flight_at_drain_start", r.InFlightAtDrainStart, "cut_off", r.CutOff,
		slog.Float64("delay_seconds", r.Delay.Seconds()), slog.Float64("drain_seconds", r.Drain.Seconds()),
		slog.Float64("tasks_seconds", r.Tasks.Seconds()), slog.Float64("hooks_seconds", r.Hooks.Seconds()),
		slog.Float64("total_seconds", r.Total.Seconds())}
}
