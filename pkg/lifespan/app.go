package lifespan

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStopTimeout bounds each hook's stop, and the wait for background
// tasks, when neither the app nor the hook sets a StopTimeout.
const DefaultStopTimeout = 5 * time.Second

// lateStopGrace is how long a stop is waited for past its context's
// deadline before the next one runs, so that a stop called after the
// overall deadline, with an already-done context, can still finish closing
// a file before the hook it depends on is stopped. A start past its
// timeout is waited for as long, for the error it returns as its context
// ends (see TimeoutError).
const lateStopGrace = 100 * time.Millisecond

// App is one app's lifespan: hooks started once, in order, and stopped once,
// in reverse. Set its fields, [App.Append] hooks, call [App.Start], and
// [App.Stop] when done. The zero value is an app with default settings.
// Set the fields before Start and leave them alone afterwards: they are
// read as they are needed (the stop timeout when Stop runs, the observer
// at each event), so a change made while the app runs is a data race. An
// App must not be copied after first use.
type App struct {
	// Name identifies the app in errors, events, metrics and probe checks.
	Name string
	// Observer receives every event of the app; nil drops them.
	Observer Observer
	// StartTimeout bounds each hook's start unless the hook sets its own;
	// 0 leaves it bounded only by the context given to Start.
	StartTimeout time.Duration
	// StopTimeout bounds each hook's stop, and the wait for the background
	// tasks, unless the hook sets its own; 0 means DefaultStopTimeout. A
	// stop still running at its bound is waited for up to 100ms more, so
	// that the reverse order holds for one just finishing (past Stop's
	// deadline, every late stop and task wait shares one such window,
	// each at least 10ms).
	StopTimeout time.Duration
	// Concurrency is how many hooks may start at once, each as soon as the
	// hooks it names in After have started; 0 or 1 starts them one by one.
	Concurrency int

	mu        sync.Mutex // guards the fields below up to phase
	hooks     []Hook
	index     map[string]int
	status    []atomic.Int32 // a HookStatus per hook, sized at Start
	started   []startedHook  // in the order their starts completed
	launched  bool
	stopped   bool // Stop ran before Start: Start must refuse
	cancel    context.CancelFunc
	done      chan struct{}   // closed when Start returns
	bound     context.Context // the ctx of the Stop with the earliest deadline (bindStop)
	tightened chan struct{}   // closed, and replaced, when bound changes
	calls     []atomic.Int32  // per hook, its start or stop functions running now
	late      []lateStart     // starts the startup's end left running, for the rollback

	lateGrace time.Duration // lateStopGrace, shortened by tests
	phase     atomic.Int32
	building  stateBuilder
	state     atomic.Pointer[State]
	tasks     tasks
	stopBegan atomic.Pointer[time.Time] // when the app entered PhaseStopping, with its monotonic reading
	stopOnce  sync.Once
	stopErr   error
}

type startedHook struct {
	idx  int
	stop StopFunc
}

// Append registers hooks. It panics on a hook without a name or start
// function, on a name already registered, and after Start: those are
// mistakes in the program, not conditions to handle.
func (a *App) Append(hooks ...Hook) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.index == nil {
		a.index = map[string]int{}
	}
	for _, h := range hooks {
		switch {
		case a.launched:
			panic(fmt.Sprintf("lifespan %q: hook %q appended after Start", a.Name, h.Name))
		case h.Name == "":
			panic(fmt.Sprintf("lifespan %q: hook without a name", a.Name))
		case h.Start == nil:
			panic(fmt.Sprintf("lifespan %q: hook %q has no Start function", a.Name, h.Name))
		}
		if _, dup := a.index[h.Name]; dup {
			panic(fmt.Sprintf("lifespan %q: hook %q registered twice", a.Name, h.Name))
		}
		a.index[h.Name] = len(a.hooks)
		a.hooks = append(a.hooks, h)
	}
}

// Hooks returns the registered hooks' names in registration order.
func (a *App) Hooks() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, len(a.hooks))
	for i, h := range a.hooks {
		names[i] = h.Name
	}
	return names
}

// HookStatus returns the named hook's status: HookPending before Start and
// for a name that is not a hook of the app.
func (a *App) HookStatus(name string) HookStatus {
	a.mu.Lock()
	i, ok := a.index[name]
	launched := a.launched
	a.mu.Unlock()
	if !ok || !launched {
		return HookPending
	}
	return HookStatus(a.status[i].Load())
}

// Phase returns the app's current phase.
func (a *App) Phase() Phase { return Phase(a.phase.Load()) }

// State returns the state the hooks set, read-only; nil (an empty State)
// until every hook has started.
func (a *App) State() *State { return a.state.Load() }

// Running names what is running now: hooks whose start or stop function
// has not returned as "hook:NAME" (also one the app stopped waiting for,
// past its timeout, which runs on), and background tasks as "task:NAME".
func (a *App) Running() []string {
	var out []string
	a.mu.Lock()
	if a.launched {
		for i, h := range a.hooks {
			if a.calls[i].Load() > 0 {
				out = append(out, "hook:"+h.Name)
			}
		}
	}
	a.mu.Unlock()
	for _, t := range a.tasks.names() {
		out = append(out, "task:"+t)
	}
	return out
}

// calling counts a call of h's start or stop function as running, until
// the function it returns is called, as the call returns.
func (a *App) calling(h Hook) (returned func()) {
	c := &a.calls[a.index[h.Name]] // index and calls do not change once started
	c.Add(1)
	return func() { c.Add(-1) }
}

func (a *App) emit(e Event) {
	if a.Observer == nil {
		return
	}
	e.App = a.Name
	e.Phase = a.Phase()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// The observer runs on a goroutine of its own, waited for, so that its
	// runtime.Goexit (t.Fatalf, in a test's observer) ends that goroutine
	// and not the hook's or the caller's, which Start and Stop wait on.
	done := make(chan struct{})
	go func() {
		defer close(done)
		returned := false
		defer func() {
			// An observer's panic is logged and the event dropped for it: it
			// must not end the process, nor leave a Stop half done (its
			// stopOnce spent, the hooks after the event unstopped).
			if v := recover(); v != nil {
				slog.Error("lifespan: observer panicked on an event", "app", a.Name,
					"event", e.Kind.String(), "hook", e.Hook, "panic", fmt.Sprint(v))
			} else if !returned {
				slog.Error("lifespan: observer exited by runtime.Goexit on an event", "app", a.Name,
					"event", e.Kind.String(), "hook", e.Hook)
			}
		}()
		a.Observer(e)
		returned = true
	}()
	<-done
}

func (a *App) setPhase(p Phase, d time.Duration, err error) {
	a.phase.Store(int32(p))
	a.emit(Event{Kind: PhaseChanged, Duration: d, Err: err})
}

// stopTimeoutOf is h's stop timeout: its own, else the app's, else the
// default.
func (a *App) stopTimeoutOf(h Hook) time.Duration {
	switch {
	case h.StopTimeout != 0:
		return h.StopTimeout
	case a.StopTimeout != 0:
		return a.StopTimeout
	}
	return DefaultStopTimeout
}

// startTimeoutOf is h's start timeout: its own, else the app's (0 for none).
func (a *App) startTimeoutOf(h Hook) time.Duration {
	if h.StartTimeout != 0 {
		return h.StartTimeout
	}
	return a.StartTimeout
}

// checkSettings reports settings that cannot work, naming the field and what
// would be valid.
func (a *App) checkSettings(hooks []Hook) error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"StartTimeout", a.StartTimeout}, {"StopTimeout", a.StopTimeout}} {
		if f.v < 0 {
			return fmt.Errorf("lifespan %q: %s is %v; want 0 (the default) or more", a.Name, f.name, f.v)
		}
	}
	if a.Concurrency < 0 {
		return fmt.Errorf("lifespan %q: Concurrency is %d; want 0 or 1 (one at a time) or more", a.Name, a.Concurrency)
	}
	for _, h := range hooks {
		if h.StartTimeout < 0 || h.StopTimeout < 0 {
			return fmt.Errorf("lifespan %q: hook %q: StartTimeout %v, StopTimeout %v; want 0 (the app's) or more", a.Name, h.Name, h.StartTimeout, h.StopTimeout)
		}
	}
	return nil
}
