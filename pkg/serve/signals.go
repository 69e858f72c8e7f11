package serve

import (
	"sync"
	"sync/atomic"
	"time"
)

// Signal is one named moment in a server's life. It is signalled once, and
// remembers when; readiness, the request gate, the logs, the metrics and the
// shutdown report all read the same signals, so the state of a shutdown
// lives in one place.
type Signal struct {
	name string
	once sync.Once
	done chan struct{}
	// at is when it was signalled, nil until then: time.Now's reading,
	// monotonic clock included, so deadlines built from At do not move when
	// the wall clock steps (an NTP step, a VM resumed). A pointer, which
	// keeps a Signal within 64 bytes (the gate reads two per request).
	at  atomic.Pointer[time.Time]
	seq atomic.Uint64 // its place among all signals signalled; 0 until signalled
}

// signalled counts the signals signalled, for Latest: two signals may share
// a clock reading, never a count.
var signalled atomic.Uint64

func newSignal(name string) *Signal { return &Signal{name: name, done: make(chan struct{})} }

// Name is the signal's name, as in [Signals] ("ShutdownInitiated").
func (s *Signal) Name() string { return s.name }

// Done returns a channel closed when the signal is signalled.
func (s *Signal) Done() <-chan struct{} { return s.done }

// Signalled reports whether the signal has been signalled. It is one atomic
// load: the request gate asks it on every request.
func (s *Signal) Signalled() bool { return s.at.Load() != nil }

// At is when the signal was signalled, with the monotonic clock's reading
// (so durations and deadlines from it ignore wall-clock steps); the zero
// Time until then.
func (s *Signal) At() time.Time {
	if t := s.at.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// signal signals s and reports whether this call did it.
func (s *Signal) signal() bool {
	fired := false
	s.once.Do(func() {
		now := time.Now()
		s.at.Store(&now) // before seq: Latest never returns a signal without its time
		s.seq.Store(signalled.Add(1))
		close(s.done)
		fired = true
	})
	return fired
}

// Signals are a server's lifecycle signals, in timeline order: the order in
// which a server whose shutdown begins after its startup signals them.
// Together they are the shutdown timeline:
//
//	Listening          both listeners are bound; probes answer, the API
//	                   answers 503 with Retry-After
//	StartupComplete    every hook of every app has started and the
//	                   background checks have run once since; the API
//	                   serves, /startupz passes and /readyz may
//	ShutdownInitiated  T0: a signal of Config.ShutdownOn (SIGTERM, SIGINT,
//	                   SIGHUP), Server.Shutdown, the Run context ending or
//	                   a server failing (during startup: the startup is
//	                   abandoned and rolled back)
//	ReadinessFailing   /readyz fails from here on; /livez stays 200; API
//	                   responses to requests that arrive from here on
//	                   carry "Connection: close" (one in flight at T0 keeps
//	                   its connection: the client's next request on it is
//	                   answered with the header, or DrainStarted closes it
//	                   if idle); requests are still accepted and served
//	DrainStarted       T1: the drain delay (or quiet period) is over; the
//	                   API listener is closed and in-flight requests are
//	                   waited for, bounded by the drain timeout
//	InFlightDrained    T2: every request has finished, or was cut off at
//	                   the drain timeout
//	TasksStopped       requests cut off at T2 were given up to a tenth of
//	                   the stop timeout to return, and the apps' background
//	                   tasks were cancelled and have returned (or were
//	                   abandoned at the stop timeout)
//	HooksStopped       T3: every stop hook has run, in reverse order of start
//	ShutdownComplete   the report is made and logged; after the signal,
//	                   OnShutdown gets it, classic sidecars are told to
//	                   quit (when configured), the admin server (probes,
//	                   metrics) stops last, and Run returns
//
// A startup that fails stops after Listening; one abandoned by a signal
// stops after ShutdownInitiated. A shutdown that begins before Run (a
// Shutdown call, a context already done) signals ShutdownInitiated before
// Listening, and Run then starts no app.
type Signals struct {
	Listening         *Signal
	StartupComplete   *Signal
	ShutdownInitiated *Signal
	ReadinessFailing  *Signal
	DrainStarted      *Signal
	InFlightDrained   *Signal
	TasksStopped      *Signal
	HooksStopped      *Signal
	ShutdownComplete  *Signal
}

func newSignals() *Signals {
	return &Signals{
		Listening:         newSignal("Listening"),
		StartupComplete:   newSignal("StartupComplete"),
		ShutdownInitiated: newSignal("ShutdownInitiated"),
		ReadinessFailing:  newSignal("ReadinessFailing"),
		DrainStarted:      newSignal("DrainStarted"),
		InFlightDrained:   newSignal("InFlightDrained"),
		TasksStopped:      newSignal("TasksStopped"),
		HooksStopped:      newSignal("HooksStopped"),
		ShutdownComplete:  newSignal("ShutdownComplete"),
	}
}

// All returns the signals in timeline order.
func (s *Signals) All() []*Signal {
	return []*Signal{s.Listening, s.StartupComplete, s.ShutdownInitiated, s.ReadinessFailing,
		s.DrainStarted, s.InFlightDrained, s.TasksStopped, s.HooksStopped, s.ShutdownComplete}
}

// Latest returns the signal signalled last so far, nil before the first.
// It is the latest in time, which is not always the latest in timeline
// order: a shutdown that begins during startup can be followed by
// StartupComplete.
func (s *Signals) Latest() *Signal {
	var latest *Signal
	for _, sig := range s.All() {
		if sig.seq.Load() > 0 && (latest == nil || sig.seq.Load() > latest.seq.Load()) {
			latest = sig
		}
	}
	return latest
}
