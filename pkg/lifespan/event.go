package lifespan

import (
	"fmt"
	"time"
)

// Phase is where an app is in its life.
type Phase int32

// The phases, in the order an app passes through them. PhaseFailed ends an
// app whose startup failed (after its rollback). The draining of requests
// before the stop is not a phase of the app: package serve names those
// moments with its lifecycle signals.
const (
	PhaseNew Phase = iota
	PhaseStarting
	PhaseReady
	PhaseStopping
	PhaseStopped
	PhaseFailed
)

var phaseNames = [...]string{"new", "starting", "ready", "stopping", "stopped", "failed"}

func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int32(p))
	}
	return phaseNames[p]
}

// EventKind says what an [Event] reports.
type EventKind int

// The kinds of event. A HookStarting is always followed by a HookStarted
// (with Err set when it failed), and a HookStopping by a HookStopped. A
// stop reported as timed out may send one more HookStopped, and a start
// cut short that then failed by itself one more HookStarted, with Late
// set, when it finally returns. A start reported as timed out or cut
// short that succeeds after all is stopped, and that stop is reported as
// any other, HookStopping then HookStopped, possibly after the app's phase
// changed to stopped or failed.
const (
	// PhaseChanged: the app entered Event.Phase. Entering PhaseReady or
	// PhaseFailed carries the whole startup's duration (a failed one's
	// rollback included); entering
	// PhaseStopped carries the whole stop's (background tasks and hooks).
	PhaseChanged EventKind = iota
	HookStarting
	HookStarted
	HookStopping
	HookStopped
	TaskStarted
	TaskExited
	// RollbackStarting: the startup failed or was abandoned, and what
	// started is about to be stopped: the app's tasks, then its hooks in
	// reverse, and, in a Group, the apps started before it. It is sent
	// even when nothing started. Observers see it before the first of
	// those stops, and the rollback waits for them: one may end what reads
	// the app's resources (package serve ends its background checks
	// here), but briefly.
	RollbackStarting
)

var kindNames = [...]string{"phase", "hook-starting", "hook-started", "hook-stopping", "hook-stopped", "task-started", "task-exited", "rollback-starting"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
	return kindNames[k]
}

// Event is one thing that happened in an app.
type Event struct {
	Kind EventKind
	App  string
	// Hook is the hook's name, or the task's for task events; empty for
	// phase changes.
	Hook string
	// Phase is the app's phase when the event happened.
	Phase Phase
	// Duration is how long the hook's start or stop, the task, or the whole
	// startup or stop took; zero for events that begin something.
	Duration time.Duration
	// Err is what failed; nil for success. A task that returns its
	// context's cancellation once the app's tasks are stopping exits
	// cleanly (Err nil); one that returns context.Canceled at any other
	// time failed, like any other error.
	Err error
	// CutShort marks a hook's start that the startup's end interrupted
	// (the startup abandoned, or another hook's start failed) rather than
	// one that failed by itself; Err says what ended it.
	CutShort bool
	// Late marks the outcome of a start or stop already reported as timed
	// out or cut short: on a HookStopped, the error a stop that timed out
	// returned in the end (its timeout's event counted that failure); on a
	// HookStarted, the failure of its own of a start first reported cut
	// short (which was not counted as its failure then).
	Late bool
	Time time.Time
}

// Observer receives an app's events. It is called synchronously (the app
// waits for it, on a goroutine of the call's own), never while the app
// holds a lock, and possibly for several events at once (hooks starting in
// parallel, tasks ending): it must be quick and safe for concurrent use,
// and must not call the app's Start or Stop (a hook those wait for waits
// for it, so Stop would wait for good). An observer that panics, or ends
// its goroutine with runtime.Goexit (t.Fatalf, in a test), does not stop
// the app: it is logged through slog.Default and that event is dropped for
// it (in [Observers], the others still get it after a panic, but not
// after a Goexit, which ends the goroutine that hands it on).
type Observer func(Event)

// Observers returns an observer that hands each event to every non-nil
// observer in turn. One that panics does not keep the event from those
// after it: once all have had it, the first panic is raised again, and
// the app logs it as any observer's.
func Observers(obs ...Observer) Observer {
	var list []Observer
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return func(e Event) {
		var first any
		for _, o := range list {
			if v := observe(o, e); v != nil && first == nil {
				first = v
			}
		}
		if first != nil {
			panic(first)
		}
	}
}

// observe hands e to o and returns what o panicked with, if it did.
func observe(o Observer, e Event) (panicked any) {
	defer func() { panicked = recover() }()
	o(e)
	return nil
}
