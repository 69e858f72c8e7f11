package lifespan

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// StopFunc undoes what a start did. It gets a context whose deadline is the
// earlier of the hook's stop timeout and the deadline of the context given
// to Stop (a Stop called while the stop runs, with an earlier deadline,
// brings it forward); once that has passed the context is already done,
// and the stop should release what it can at once.
type StopFunc func(ctx context.Context) error

// StartFunc starts a hook and returns the function that stops it (nil when
// there is nothing to stop). Its context ends when the hook's start timeout
// passes, when the startup is abandoned, and when the start returns, even
// successfully: bind nothing that outlives the start to it (a command, a
// loop, a client that keeps its dial context), and use [Scope.Go] for work
// that must. The scope publishes state and starts background tasks.
type StartFunc func(ctx context.Context, scope *Scope) (StopFunc, error)

// Hook is one named step of startup and its matching step of shutdown.
type Hook struct {
	// Name identifies the hook in errors, events, metrics and probe checks;
	// unique within its app.
	Name  string
	Start StartFunc
	// After names hooks of the same app that must have started before this
	// one starts (and so stop after it), whatever the app's Concurrency.
	// Without After, hooks start in registration order.
	After []string
	// StartTimeout and StopTimeout override the app's StartTimeout and
	// StopTimeout for this hook; 0 keeps the app's.
	StartTimeout time.Duration
	StopTimeout  time.Duration
}

// HookStatus is where one hook is.
type HookStatus int32

// The statuses of a hook, in the order a hook passes through them.
// HookFailed ends a hook whose start failed, panicked or timed out (a
// start that runs on past its timeout stays failed). HookRunningStop lasts
// until the stop function returns: a stop abandoned at its timeout is
// still stopping after Stop returned, as [App.Running] says too.
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

// Scope is what a start function gets to publish state (with [Key.Set])
// and start background tasks (with [Scope.Go]). Reading a [Key] from it
// sees what its own hook set, and what hooks that started earlier, and
// succeeded, set: a hook starting beside it (Concurrency) publishes its
// state only once its start has succeeded. It is valid only until the
// start function returns, but for Go, which a goroutine the start began
// may call later, until the app's tasks are stopped.
type Scope struct {
	app  *App
	hook string

	mu     sync.Mutex
	closed bool         // the start returned: Set is a programming error
	late   bool         // the start passed its timeout: its writes are dropped
	own    stateBuilder // what this start set, published if it succeeds
}

func (s *Scope) lookup(id *keyID) (any, bool) {
	if v, ok := s.own.lookup(id); ok {
		return v, true
	}
	return s.app.building.lookup(id)
}

func (s *Scope) each(fn func(id *keyID)) {
	s.own.each(fn)
	s.app.building.each(func(id *keyID) {
		if _, mine := s.own.lookup(id); !mine {
			fn(id)
		}
	})
}

func (s *Scope) set(id *keyID, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.late:
		return
	case s.closed:
		panic(fmt.Sprintf("lifespan %q: hook %q: state %q set after its start returned; state is read-only once ready", s.app.Name, s.hook, id.name))
	}
	s.own.set(id, v)
}

// publish adds what the start set to the app's state, once it succeeded.
func (s *Scope) publish() {
	s.own.each(func(id *keyID) {
		v, _ := s.own.lookup(id)
		s.app.building.set(id, v)
	})
}

func (s *Scope) close(late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.late = s.late || late
}

// Go runs fn as a background task of the app, also when called after the
// start function returned; once the tasks' stop has begun it is refused,
// reported as a TaskExited with an error, and fn does not run. Its context
// carries the values of the ctx given to [App.Start] and is cancelled when
// the app's tasks are stopped (by [Group.StopTasks] or,
// at the latest, by [App.Stop]) and the stop waits for fn to return,
// before any stop hook runs. A task that returns an error, panics or ends
// with runtime.Goexit is reported as a TaskExited
// event and in the stop's error; returning its context's cancellation
// once the stop cancelled it is a clean exit, and returning
// context.Canceled at any other time is not.
//
// Go panics when name is empty or fn is nil: inside a start function that
// panic fails the start, as any other, and the message names the hook.
func (s *Scope) Go(name string, fn func(ctx context.Context) error) {
	switch {
	case name == "":
		panic(fmt.Sprintf("lifespan %q: hook %q: task without a name", s.app.Name, s.hook))
	case fn == nil:
		panic(fmt.Sprintf("lifespan %q: hook %q: task %q has no function", s.app.Name, s.hook, name))
	}
	s.app.tasks.start(s.app, name, fn)
}
