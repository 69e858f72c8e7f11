package lifespan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Start runs every hook's start in dependency order: registration order,
// with each hook moved after those its After names; with Concurrency above
// 1, several at once. It returns nil
// once all have started, and then the app's State is set and its phase is
// PhaseReady. If a start fails, panics, ends its goroutine without
// returning (runtime.Goexit, as t.FailNow does) or passes its timeout, or ctx ends
// first, every hook already started is stopped in reverse and Start returns
// the error, naming the app and the hook. Before that rollback, the starts
// still running (ones that ignore their context) are waited for, together,
// each up to its hook's stop timeout: one that succeeds by then is stopped
// first. The starts, that rollback's stops (bounded by the deadline of a
// Stop that abandoned the start, if one did) and the app's tasks get ctx's
// values (not its cancellation, for the stops and tasks). Start may be
// called once, and not after Stop.
func (a *App) Start(ctx context.Context) error { return a.start(ctx, false) }

// start is Start; inGroup says a Group starts the app in its turn, where a
// Stop that came first abandoned the group's start (Group.Stop reaches the
// apps not started yet first), which is no mistake of the caller's.
func (a *App) start(ctx context.Context, inGroup bool) error {
	a.mu.Lock()
	switch {
	case a.launched:
		a.mu.Unlock()
		return fmt.Errorf("lifespan %q: Start called twice", a.Name)
	case a.stopped && inGroup:
		a.mu.Unlock()
		return fmt.Errorf("lifespan %q: not started: Stop reached it before its turn came (the group's start was abandoned)", a.Name)
	case a.stopped:
		a.mu.Unlock()
		return fmt.Errorf("lifespan %q: Start called after Stop", a.Name)
	}
	a.launched = true
	a.status = make([]atomic.Int32, len(a.hooks))
	a.calls = make([]atomic.Int32, len(a.hooks))
	a.done = make(chan struct{})
	if a.lateGrace == 0 {
		a.lateGrace = lateStopGrace
	}
	hooks := a.hooks
	values := context.WithoutCancel(ctx)
	ctx, a.cancel = context.WithCancel(ctx)
	a.mu.Unlock()
	defer close(a.done)
	defer a.cancel()

	a.tasks.init(values)
	begin := time.Now()
	a.setPhase(PhaseStarting, 0, nil)
	err := a.checkSettings(hooks)
	var deps [][]int
	if err == nil {
		deps, err = a.dependencies(hooks)
	}
	if err == nil {
		err = a.schedule(ctx, hooks, deps)
	}
	if err != nil {
		// Said even with nothing of this app's to stop: in a Group, the
		// apps before it are stopped next.
		a.emit(Event{Kind: RollbackStarting})
		err = errors.Join(err, a.rollback(values))
		a.setPhase(PhaseFailed, time.Since(begin), err)
		return err
	}
	a.state.Store(a.building.freeze())
	a.setPhase(PhaseReady, time.Since(begin), nil)
	return nil
}

// dependencies resolves After names to indices and rejects unknown names and
// cycles.
func (a *App) dependencies(hooks []Hook) ([][]int, error) {
	deps := make([][]int, len(hooks))
	indegree := make([]int, len(hooks))
	dependents := make([][]int, len(hooks))
	for i, h := range hooks {
		for _, d := range h.After {
			j, ok := a.index[d]
			if !ok || j == i {
				known := make([]string, 0, len(hooks))
				for _, k := range hooks {
					if k.Name != h.Name {
						known = append(known, k.Name)
					}
				}
				return nil, fmt.Errorf("lifespan %q: hook %q: After names %q, which is not another hook of this app (hooks: %s)", a.Name, h.Name, d, strings.Join(known, ", "))
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
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range dependents[i] {
			if indegree[j]--; indegree[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	for i, n := range indegree {
		if n > 0 {
			return nil, a.cycleError(hooks, deps, indegree, i)
		}
	}
	return deps, nil
}

// cycleError names one cycle among the hooks the ordering could not place
// (indegree above 0), found from hook i: the hooks in it, and the After
// names that close it, one of which must go. The hooks that only wait
// for the cycle are left out: they need no change.
func (a *App) cycleError(hooks []Hook, deps [][]int, indegree []int, i int) error {
	// Each hook left has a dependency left: follow them until one repeats.
	seen := map[int]int{} // hook: its place in path
	var path []int
	for {
		if at, ok := seen[i]; ok {
			path = path[at:]
			break
		}
		seen[i] = len(path)
		path = append(path, i)
		for _, j := range deps[i] {
			if indegree[j] > 0 {
				i = j
				break
			}
		}
	}
	members := slices.Clone(path)
	slices.Sort(members) // in the order registered
	names := make([]string, len(members))
	for k, m := range members {
		names[k] = hooks[m].Name
	}
	chain := make([]string, 0, len(path)+1)
	for _, m := range path {
		chain = append(chain, fmt.Sprintf("%q", hooks[m].Name))
	}
	chain = append(chain, fmt.Sprintf("%q", hooks[path[0]].Name))
	return fmt.Errorf("lifespan %q: hooks %s depend on each other in a cycle (%s, each After the next): remove one of these After names", a.Name, strings.Join(names, ", "), strings.Join(chain, " -> "))
}

type startResult struct {
	idx      int
	stop     StopFunc
	err      error
	cutShort bool      // the startup's end, not the hook, made it fail
	at       time.Time // when the start returned
}

// schedule starts each hook once its dependencies have started, at most
// Concurrency at a time, preferring registration order. One at a time, this
// is registration order adjusted for After.
func (a *App) schedule(ctx context.Context, hooks []Hook, deps [][]int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := max(a.Concurrency, 1)
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
	failed := false // a hook failed by itself
	for {
		for len(ready) > 0 && running < limit && failures == nil && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			running++
			go func() { results <- a.startHook(ctx, i, hooks[i]) }()
		}
		if running == 0 {
			break
		}
		r := <-results
		running--
		if r.err != nil {
			// The starts a failure cut short say only that they were
			// cancelled (their events say so): the startup's error is the
			// failure, which errors.Is(err, context.Canceled) must not
			// read as an abandoned startup.
			if !r.cutShort || !failed {
				failures = append(failures, r.err)
			}
			failed = failed || !r.cutShort
			cancel()
			continue
		}
		a.mu.Lock()
		a.started = append(a.started, startedHook{idx: r.idx, stop: r.stop})
		a.mu.Unlock()
		for _, j := range dependents[r.idx] {
			if waiting[j]--; waiting[j] == 0 {
				ready = insertSorted(ready, j)
			}
		}
	}
	if failures == nil && ctx.Err() != nil {
		failures = append(failures, fmt.Errorf("lifespan %q: startup abandoned: %w", a.Name, context.Cause(ctx)))
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
// timeout is waited for a moment more (the app's late grace), for the error
// it returns as its context ends; one that returns nothing even then is
// left running, and when it returns, the stop it returns is called so
// nothing it opened is left open.
func (a *App) startHook(ctx context.Context, i int, h Hook) startResult {
	timeout := a.startTimeoutOf(h)
	// The observer hears of the start before its timeout begins: the
	// timeout is the start's own, counted from its call, as a stop's is.
	a.status[i].Store(int32(HookRunningStart))
	a.emit(Event{Kind: HookStarting, Hook: h.Name})
	// The start's own context, which ends when it returns (StartFunc's
	// doc), with or without a timeout.
	var hctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		hctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	scope := &Scope{app: a, hook: h.Name}
	begin := time.Now()
	done := make(chan startResult, 1)
	returned := a.calling(h)
	go func() {
		r := startResult{err: errGoexit} // unless Start returns
		defer func() {
			if v := recover(); v != nil {
				r = startResult{err: recovered(v)}
			}
			r.at = time.Now()
			returned() // before anyone can learn it returned
			done <- r
		}()
		r.stop, r.err = h.Start(hctx, scope)
	}()

	var r startResult
	running := false // the start goes on after this returns
	select {
	case r = <-done:
		scope.close(false)
	case <-hctx.Done():
		scope.close(true)
		running = true
		if timeout > 0 && errors.Is(hctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			timedOut := &TimeoutError{Op: "start", Timeout: timeout}
			grace := time.NewTimer(a.lateGrace)
			select {
			case late := <-done:
				if late.err != nil { // it failed as its context ended: say why
					timedOut.Err, running = late.err, false
				} else { // it succeeded past its timeout: the rollback stops it
					again := make(chan startResult, 1)
					again <- late
					done = again
				}
			case <-grace.C:
			}
			grace.Stop()
			r.err = timedOut
		} else {
			r.err = context.Cause(ctx)
		}
	}
	d := time.Since(begin)
	if r.err != nil {
		a.status[i].Store(int32(HookFailed))
		err := fmt.Errorf("lifespan %q: hook %q: start: %w", a.Name, h.Name, r.err)
		var own *TimeoutError
		cutShort := ctx.Err() != nil && !errors.As(r.err, &own) // the startup ended first
		if running {
			// The startup fails now; its rollback waits a while for this
			// start, so that, should it succeed, its stop runs first.
			a.mu.Lock()
			a.late = append(a.late, lateStart{h: h, done: done, cutShort: cutShort})
			a.mu.Unlock()
		}
		a.emit(Event{Kind: HookStarted, Hook: h.Name, Duration: d, Err: err, CutShort: cutShort})
		return startResult{idx: i, err: err, cutShort: cutShort}
	}
	scope.publish() // before any hook that waits for this one can start
	a.status[i].Store(int32(HookUp))
	a.emit(Event{Kind: HookStarted, Hook: h.Name, Duration: d})
	return startResult{idx: i, stop: r.stop}
}

// lateStart is a start still running when its startup ended (it passed its
// timeout, or the startup failed or was abandoned under it).
type lateStart struct {
	h        Hook
	done     <-chan startResult
	cutShort bool // the startup's end, not its own timeout, interrupted it
}

// stopLateStarts waits for the starts the startup's end left running, each
// until its hook's stop timeout or ctx's deadline, and stops those that
// succeeded after all in the reverse of the order they completed, as
// hooks stop (none of them depends on another: each was running while the
// others were). It returns their stops' errors, which are the rollback's.
// A start still running then is left to stop itself when it returns
// (reapLateStart), out of that order, its errors reported as events only.
func (a *App) stopLateStarts(ctx context.Context) error {
	a.mu.Lock()
	late := a.late
	a.late = nil
	a.mu.Unlock()
	type succeeded struct {
		h    Hook
		stop StopFunc
		at   time.Time
	}
	// Each is waited for from now, all at once: n starts stuck together
	// hold the rollback one stop timeout, not n.
	deadlines := make([]time.Time, len(late))
	for i, l := range late {
		deadlines[i] = a.stepDeadline(ctx, a.stopTimeoutOf(l.h))
	}
	var done []succeeded
	for i, l := range late {
		r, ok := awaitStep(a, l.done, deadlines[i], 0, nil)
		if !ok {
			go a.reapLateStart(l, context.WithoutCancel(ctx))
			continue
		}
		if r.err == nil && r.stop != nil {
			done = append(done, succeeded{l.h, r.stop, r.at})
		}
		a.lateFailure(l, r.err)
	}
	slices.SortStableFunc(done, func(x, y succeeded) int { return x.at.Compare(y.at) })
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		errs = append(errs, a.stopLate(ctx, done[i].h, done[i].stop))
	}
	return errors.Join(errs...)
}

// reapLateStart waits for a start that outlived its startup and, if it
// eventually succeeds, stops it again, with values (the rollback's or
// Stop's context's values, without its deadline).
func (a *App) reapLateStart(l lateStart, values context.Context) {
	r := <-l.done
	if r.err == nil && r.stop != nil {
		// Reported as its events: Start has returned. Its stop has its own
		// timeout, whenever it comes: the deadline of a Stop that has
		// returned bounds nothing now.
		_ = a.runStop(values, l.h, r.stop, "stop after late start", func() {}, false)
	}
	a.lateFailure(l, r.err)
}

// lateFailure reports a start cut short by the startup's end that then
// failed by itself, not for its cancellation: its HookStarted said only
// what cut it short, and this failure of its own would go unseen. (A start
// that passed its timeout was reported as failed then.)
func (a *App) lateFailure(l lateStart, err error) {
	if !l.cutShort || err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	a.emit(Event{Kind: HookStarted, Hook: l.h.Name, Late: true, Err: fmt.Errorf("lifespan %q: hook %q: start, after the startup ended: %w", a.Name, l.h.Name, err)})
}

// stopLate calls the stop of a start that succeeded after its startup
// ended, bounded as any stop is (its stop timeout and ctx's deadline), and
// reports it as any stop is reported, a HookStopping and a HookStopped
// with its duration: no event reported this stop before, so its failure
// is a failure of its own. (The hook's status stays failed: its start
// was reported as failed.)
func (a *App) stopLate(parent context.Context, h Hook, stop StopFunc) error {
	return a.runStop(parent, h, stop, "stop after late start", func() {}, true)
}
