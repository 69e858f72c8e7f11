package lifespan

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// StopFunc undoes what a start did. It gets a context whose deadline is the
// earlier of the hook's stop timeout and the whole shutdown's deadline; once
// that has passed the context is already done, and the stop should release
// what it can at once.
type StopFunc func(ctx context.Context) error

// StartFunc starts a hook and returns the function that stops it (nil when
// there is nothing to stop). The context ends when the hook's start timeout
// passes or the startup is abandoned. scope publishes state and starts
// background tasks.
type StartFunc func(ctx context.Context, scope *Scope) (StopFunc, error)

// Hook is one named step of startup and its matching step of shutdown.
type Hook struct {
	// Name identifies the hook in errors, events, metrics and probe checks;
	// unique within its lifespan.
	Name  string
	Start StartFunc
	// After names hooks that must have started before this one starts (and
	// so stop after it). Without After, hooks start in registration order.
	After []string
	// StartTimeout and StopTimeout override the lifespan's defaults
	// ([WithStartTimeout], [WithStopTimeout]) for this hook.
	StartTimeout time.Duration
	StopTimeout  time.Duration
}

// startTimeoutOf is h's start timeout: its own, else the lifespan's default.
func (o *options) startTimeoutOf(h Hook) time.Duration {
	if h.StartTimeout != 0 {
		return h.StartTimeout
	}
	return o.startTimeout
}

// stopTimeoutOf is h's stop timeout: its own, else the lifespan's default.
func (o *options) stopTimeoutOf(h Hook) time.Duration {
	if h.StopTimeout != 0 {
		return h.StopTimeout
	}
	return o.stopTimeout
}

// HookStatus is where one hook is.
type HookStatus int32

// The statuses of a hook.
const (
	HookPending HookStatus = iota
	HookRunningStart
	HookUp
	HookFailed
	HookRunningStop
	HookDown
)

var hookStatusNames = [...]string{"pending", "starting", "started", "failed", "stopping", "stopped"}

func (s HookStatus) String() string {
	if s < 0 || int(s) >= len(hookStatusNames) {
		return fmt.Sprintf("HookStatus(%d)", int32(s))
	}
	return hookStatusNames[s]
}

// Scope is what a start function gets to publish state and start background
// tasks. It is valid only until the start function returns.
type Scope struct {
	l    *Lifespan
	hook string

	mu     sync.Mutex
	closed bool // the start returned: Set is a programming error
	late   bool // the start passed its timeout: its writes are dropped
}

// App returns the lifespan's name.
func (s *Scope) App() string { return s.l.name }

// Hook returns the name of the hook being started.
func (s *Scope) Hook() string { return s.hook }

func (s *Scope) lookup(id *keyID) (any, bool) { return s.l.building.lookup(id) }

func (s *Scope) set(id *keyID, v any) {
	s.mu.Lock()
	closed, late := s.closed, s.late
	s.mu.Unlock()
	switch {
	case late:
		return
	case closed:
		panic(fmt.Sprintf("lifespan %q: hook %q: state %q set after its start returned; state is read-only once ready", s.l.name, s.hook, id.name))
	}
	s.l.building.set(id, v)
}

func (s *Scope) close(late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.late = s.late || late
}

// Go runs fn as a background task of the lifespan. Its context is cancelled
// after the HTTP drain and before any stop hook runs, and Stop waits for fn
// to return. A task that returns an error other than the context's, or
// panics, is reported as a TaskExited event and makes Stop's error.
func (s *Scope) Go(name string, fn func(ctx context.Context) error) {
	s.l.tasks.start(s.l, name, fn)
}

type options struct {
	observer     Observer
	startTimeout time.Duration
	stopTimeout  time.Duration
	concurrency  int
	lateGrace    time.Duration
}

// Option configures a Lifespan.
type Option func(*options)

// WithObserver sends every event to o.
func WithObserver(o Observer) Option { return func(opt *options) { opt.observer = o } }

// WithStartTimeout bounds each hook's start (default: no bound but the
// context given to Start).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// WithStopTimeout bounds each hook's stop and the wait for background tasks
// (default 5s).
func WithStopTimeout(d time.Duration) Option {
	return func(o *options) { o.stopTimeout = d }
}

// WithConcurrency starts up to n hooks at once, each as soon as the hooks it
// names in After have started. The default, 1, starts them one by one in
// registration order.
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithLateStopGrace is how long Stop waits for a stop function past its
// context's deadline before moving on (default 100ms). It is what lets a
// stop called after the overall deadline, with an already-done context,
// still finish closing a file before the next hook's stop runs.
func WithLateStopGrace(d time.Duration) Option { return func(o *options) { o.lateGrace = d } }

// DefaultStopTimeout is each hook's stop timeout unless configured.
const DefaultStopTimeout = 5 * time.Second

func buildOptions(opts []Option) options {
	o := options{stopTimeout: DefaultStopTimeout, concurrency: 1, lateGrace: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if o.concurrency < 1 {
		panic(fmt.Sprintf("lifespan: WithConcurrency(%d): need at least 1", o.concurrency))
	}
	if o.startTimeout < 0 || o.stopTimeout < 0 || o.lateGrace < 0 {
		panic("lifespan: timeouts must not be negative")
	}
	if o.observer == nil {
		o.observer = Observers()
	}
	return o
}
