package lifespan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotReady is returned by operations that need a lifespan that started.
var ErrNotReady = errors.New("lifespan not ready")

// Lifespan is one app's ordered set of hooks. Register hooks with Append,
// then call Start once and Stop once; Stop may be called while Start is
// still running, in which case it abandons the startup, waits for its
// rollback and returns. The zero value is not usable: make one with New.
type Lifespan struct {
	name string
	opts options

	mu       sync.Mutex // guards hooks, index, started, startOnce state
	hooks    []Hook
	status   []atomic.Int32 // HookStatus per hook, sized at Start
	index    map[string]int
	started  []startedHook // in the order their starts completed
	launched bool
	stopped  bool // Stop ran before Start: Start must refuse

	phase       atomic.Int32
	building    stateBuilder
	state       atomic.Pointer[State]
	tasks       tasks
	ready       chan struct{}
	draining    chan struct{}
	drainOnce   sync.Once
	startCancel context.CancelFunc
	startDone   chan struct{}
	stopOnce    sync.Once
	stopErr     error
	drainBegan  atomic.Int64 // unix nanos of BeginDrain, 0 if none
}

type startedHook struct {
	idx  int
	stop StopFunc
}

// New returns an empty lifespan for the app called name.
func New(name string, opts ...Option) *Lifespan {
	if name == "" {
		panic("lifespan: New needs an app name")
	}
	return &Lifespan{
		name:      name,
		opts:      buildOptions(opts),
		index:     map[string]int{},
		ready:     make(chan struct{}),
		draining:  make(chan struct{}),
		startDone: make(chan struct{}),
	}
}

// Name returns the app's name.
func (l *Lifespan) Name() string { return l.name }

// Append registers hooks. It panics on a hook without a name or start
// function, on a name already registered, and after Start: those are
// mistakes in the program, not conditions to handle.
func (l *Lifespan) Append(hooks ...Hook) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hooks {
		switch {
		case l.launched:
			panic(fmt.Sprintf("lifespan %q: hook %q appended after Start", l.name, h.Name))
		case h.Name == "":
			panic(fmt.Sprintf("lifespan %q: hook without a name", l.name))
		case h.Start == nil:
			panic(fmt.Sprintf("lifespan %q: hook %q has no Start function", l.name, h.Name))
		}
		if _, dup := l.index[h.Name]; dup {
			panic(fmt.Sprintf("lifespan %q: hook %q registered twice", l.name, h.Name))
		}
		l.index[h.Name] = len(l.hooks)
		l.hooks = append(l.hooks, h)
	}
}

// Hooks returns the registered hooks' names in registration order.
func (l *Lifespan) Hooks() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, len(l.hooks))
	for i, h := range l.hooks {
		names[i] = h.Name
	}
	return names
}

// HookStatus returns the named hook's status (HookPending for an unknown
// name or before Start).
func (l *Lifespan) HookStatus(name string) HookStatus {
	l.mu.Lock()
	i, ok := l.index[name]
	launched := l.launched
	l.mu.Unlock()
	if !ok || !launched {
		return HookPending
	}
	return HookStatus(l.status[i].Load())
}

// Phase returns the current phase.
func (l *Lifespan) Phase() Phase { return Phase(l.phase.Load()) }

// Ready returns a channel closed once every hook has started.
func (l *Lifespan) Ready() <-chan struct{} { return l.ready }

// Draining returns a channel closed by BeginDrain.
func (l *Lifespan) Draining() <-chan struct{} { return l.draining }

// State returns the state hooks set, read-only; nil (an empty State) before
// the lifespan is ready.
func (l *Lifespan) State() *State { return l.state.Load() }

// Running names what is running now: hooks starting or stopping and
// background tasks, as "hook:NAME" and "task:NAME".
func (l *Lifespan) Running() []string {
	l.mu.Lock()
	var out []string
	if l.launched {
		for i, h := range l.hooks {
			if s := HookStatus(l.status[i].Load()); s == HookRunningStart || s == HookRunningStop {
				out = append(out, "hook:"+h.Name)
			}
		}
	}
	l.mu.Unlock()
	for _, t := range l.tasks.names() {
		out = append(out, "task:"+t)
	}
	return out
}

func (l *Lifespan) emit(e Event) {
	e.App = l.name
	e.Phase = l.Phase()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.opts.observer.OnEvent(e)
}

func (l *Lifespan) setPhase(p Phase, d time.Duration, err error) {
	l.phase.Store(int32(p))
	l.emit(Event{Kind: PhaseChanged, Duration: d, Err: err})
}

// Start runs every hook's start, in registration order or, with
// WithConcurrency, in dependency order. It returns once all have started,
// the first one failed (after rolling back those already started), or ctx
// ended (likewise). It is an error to call Start twice.
func (l *Lifespan) Start(ctx context.Context) error {
	l.mu.Lock()
	switch {
	case l.launched:
		l.mu.Unlock()
		return fmt.Errorf("lifespan %q: Start called twice", l.name)
	case l.stopped:
		l.mu.Unlock()
		return fmt.Errorf("lifespan %q: Start called after Stop", l.name)
	}
	l.launched = true
	l.status = make([]atomic.Int32, len(l.hooks))
	hooks := l.hooks
	ctx, l.startCancel = context.WithCancel(ctx)
	l.mu.Unlock()
	defer close(l.startDone)
	defer l.startCancel()

	l.tasks.init()
	begin := time.Now()
	l.setPhase(PhaseStarting, 0, nil)
	deps, err := l.dependencies(hooks)
	if err == nil {
		err = l.schedule(ctx, hooks, deps)
	}
	if err != nil {
		err = errors.Join(err, l.stopAll(context.Background()))
		l.setPhase(PhaseFailed, time.Since(begin), err)
		return err
	}
	l.state.Store(l.building.freeze())
	l.setPhase(PhaseReady, time.Since(begin), nil)
	close(l.ready)
	return nil
}

// dependencies resolves After names to indices and rejects unknown names and
// cycles.
func (l *Lifespan) dependencies(hooks []Hook) ([][]int, error) {
	deps := make([][]int, len(hooks))
	indegree := make([]int, len(hooks))
	dependents := make([][]int, len(hooks))
	for i, h := range hooks {
		for _, d := range h.After {
			j, ok := l.index[d]
			if !ok || j == i {
				known := make([]string, 0, len(hooks))
				for _, k := range hooks {
					if k.Name != h.Name {
						known = append(known, k.Name)
					}
				}
				return nil, fmt.Errorf("lifespan %q: hook %q: After names %q, which is not another hook of this app (hooks: %s)", l.name, h.Name, d, strings.Join(known, ", "))
			}
			deps[i] = append(deps[i], j)
			dependents[j] = append(dependents[j], i)
			indegree[i]++
		}
	}
	var queue []int
	for i := range hooks {
		if indegree[i] == 0 {
			queue = append(queue, i)
		}
	}
	for seen := 0; len(queue) > 0; seen++ {
		i := queue[0]
		queue = queue[1:]
		for _, j := range dependents[i] {
			if indegree[j]--; indegree[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	var cycle []string
	for i, n := range indegree {
		if n > 0 {
			cycle = append(cycle, hooks[i].Name)
		}
	}
	if len(cycle) > 0 {
		return nil, fmt.Errorf("lifespan %q: hooks %s depend on each other in a cycle", l.name, strings.Join(cycle, ", "))
	}
	return deps, nil
}

type startResult struct {
	idx  int
	stop StopFunc
	err  error
}

// schedule starts each hook once its dependencies have started, at most
// l.opts.concurrency at a time, preferring registration order. With
// concurrency 1 this is registration order adjusted for After.
func (l *Lifespan) schedule(ctx context.Context, hooks []Hook, deps [][]int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waiting := make([]int, len(hooks))
	dependents := make([][]int, len(hooks))
	var ready []int
	for i := range hooks {
		waiting[i] = len(deps[i])
		for _, d := range deps[i] {
			dependents[d] = append(dependents[d], i)
		}
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	results := make(chan startResult)
	running := 0
	var failures []error
	for {
		for len(ready) > 0 && running < l.opts.concurrency && failures == nil && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			running++
			go func() {
				stop, err := l.startHook(ctx, i, hooks[i])
				results <- startResult{idx: i, stop: stop, err: err}
			}()
		}
		if running == 0 {
			break
		}
		r := <-results
		running--
		if r.err != nil {
			failures = append(failures, r.err)
			cancel()
			continue
		}
		l.mu.Lock()
		l.started = append(l.started, startedHook{idx: r.idx, stop: r.stop})
		l.mu.Unlock()
		for _, j := range dependents[r.idx] {
			if waiting[j]--; waiting[j] == 0 {
				ready = insertSorted(ready, j)
			}
		}
	}
	if failures == nil && ctx.Err() != nil {
		failures = append(failures, fmt.Errorf("lifespan %q: startup abandoned: %w", l.name, context.Cause(ctx)))
	}
	return errors.Join(failures...)
}

func insertSorted(s []int, v int) []int {
	i := sort.SearchInts(s, v)
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// startHook runs one start under its timeout. A start that outlives its
// timeout is left running; when it returns, the stop it returns is called so
// nothing it opened is left open.
func (l *Lifespan) startHook(ctx context.Context, i int, h Hook) (StopFunc, error) {
	timeout := l.opts.startTimeoutOf(h)
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	l.status[i].Store(int32(HookRunningStart))
	l.emit(Event{Kind: HookStarting, Hook: h.Name})
	scope := &Scope{l: l, hook: h.Name}
	begin := time.Now()
	done := make(chan startResult, 1)
	go func() {
		var r startResult
		defer func() {
			if v := recover(); v != nil {
				r = startResult{err: recovered(v)}
			}
			done <- r
		}()
		r.stop, r.err = h.Start(hctx, scope)
	}()

	var r startResult
	select {
	case r = <-done:
		scope.close(false)
	case <-hctx.Done():
		scope.close(true)
		if timeout > 0 && errors.Is(hctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			r.err = &TimeoutError{Op: "start", Timeout: timeout}
		} else {
			r.err = context.Cause(ctx)
		}
		go l.reapLateStart(h, done)
	}
	d := time.Since(begin)
	if r.err != nil {
		l.status[i].Store(int32(HookFailed))
		err := fmt.Errorf("lifespan %q: hook %q: start: %w", l.name, h.Name, r.err)
		l.emit(Event{Kind: HookStarted, Hook: h.Name, Duration: d, Err: err})
		return nil, err
	}
	l.status[i].Store(int32(HookUp))
	l.emit(Event{Kind: HookStarted, Hook: h.Name, Duration: d})
	return r.stop, nil
}

// reapLateStart waits for a start that passed its timeout and, if it
// eventually succeeds, stops it again.
func (l *Lifespan) reapLateStart(h Hook, done <-chan startResult) {
	r := <-done
	if r.err != nil || r.stop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.stopTimeoutOf(h))
	defer cancel()
	err := callStop(ctx, r.stop)
	if err != nil {
		err = fmt.Errorf("lifespan %q: hook %q: stop after late start: %w", l.name, h.Name, err)
	}
	l.emit(Event{Kind: HookStopped, Hook: h.Name, Err: err})
}

func callStop(ctx context.Context, stop StopFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return stop(ctx)
}

// BeginDrain marks a ready lifespan as draining: readiness fails from now
// on, while requests are still served. Package serve calls it at the first
// signal. It does nothing in any other phase, and only once.
func (l *Lifespan) BeginDrain() {
	l.drainOnce.Do(func() {
		l.drainBegan.Store(time.Now().UnixNano())
		close(l.draining)
		if l.phase.CompareAndSwap(int32(PhaseReady), int32(PhaseDraining)) {
			l.emit(Event{Kind: PhaseChanged})
		}
	})
}
