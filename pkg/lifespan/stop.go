package lifespan

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stop shuts the app down: it cancels the background tasks and waits for
// them (unless [Group.StopTasks] already did), then calls the stop function
// of every hook that started, in the reverse of the order their starts
// completed.
//
// Stop is best effort. Each stop gets a context whose deadline is the
// earlier of the hook's stop timeout and ctx's deadline; a stop that fails,
// panics or passes its deadline is recorded and the next one still runs.
// Once ctx's deadline has passed the remaining stops are still called, with
// a context that is already done, and are waited for so that the order
// holds for stops that finish at once: together for 100ms past the
// deadline, and each for at least a tenth of that, so a stop that ignores
// its context delays the next by no more. The wait for the background
// tasks shares that window. The errors are joined, each naming app, hook
// and step.
//
// Only ctx's deadline bounds Stop: cancelling a ctx that has none does not
// cut the stop short, as every started hook must still be stopped. To bound
// a stop, give ctx a deadline.
//
// If Start is still running, Stop abandons it and returns once its rollback
// is done; the rollback stops what started within ctx's deadline, as Stop
// would (with the values of Start's context, not ctx's), and its errors
// are Start's to report, so Stop then returns nil. A start that
// failed by itself rolls back under the stop timeouts alone until a Stop
// comes; from then on ctx's deadline bounds what is left of it, the stop
// under way included (its context ends at that deadline). Stop on an app
// that never started returns nil and makes a later Start fail. Calling
// Stop again waits for the first call and returns its result; a deadline
// earlier than the first call's bounds what is left of its stop, as a Stop
// during a rollback does.
func (a *App) Stop(ctx context.Context) error {
	a.bindStop(ctx) // also when a stop or rollback is under way: its deadline bounds the rest
	a.stopOnce.Do(func() {
		a.mu.Lock()
		launched, cancel, done := a.launched, a.cancel, a.done
		a.stopped = !launched
		a.mu.Unlock()
		if !launched {
			a.setPhase(PhaseStopped, 0, nil)
			return
		}
		cancel()
		<-done
		if a.Phase() == PhaseFailed {
			return // Start rolled back and reported
		}
		err := a.stopTasks(ctx)
		a.stopErr = errors.Join(err, a.stopHooks(ctx))
		var took time.Duration
		if began := a.stopBegan.Load(); began != nil {
			took = time.Since(*began) // monotonic: a clock step mid-stop does not skew it
		}
		a.setPhase(PhaseStopped, took, a.stopErr)
	})
	return a.stopErr
}

// stopTasks moves a ready app to PhaseStopping, cancels its background tasks
// and waits for them, bounded by the stop timeout and ctx. The first call
// returns the errors the tasks ended with; a later or concurrent one waits
// for the first and returns nil. For an app that is not ready (still
// starting, failed, stopped) it does nothing.
func (a *App) stopTasks(ctx context.Context) error {
	switch {
	case a.phase.CompareAndSwap(int32(PhaseReady), int32(PhaseStopping)):
		now := time.Now()
		a.stopBegan.Store(&now)
		a.emit(Event{Kind: PhaseChanged})
	case a.Phase() != PhaseStopping:
		return nil
	}
	return a.tasks.stop(a.Name, a.taskWait(ctx))
}

// taskWait waits for the tasks (done closes when they have all returned)
// by the rule each hook's stop follows (awaitStep): until the stop
// timeout, cut to ctx's deadline (and any Stop's), and the late-stop grace
// past it, a window every late wait shares; never less than a tenth of the
// grace. A task that needs a moment to wind down after its cancellation
// so has the same allowance just before the deadline as just after it,
// and the apps of a Group whose tasks all ignore their context overrun
// the deadline by one grace and a tenth of it per app, not by a grace per
// app.
func (a *App) taskWait(ctx context.Context) func(done <-chan struct{}) bool {
	deadline := a.stepDeadline(ctx, a.stopTimeoutOf(Hook{}))
	return func(done <-chan struct{}) bool {
		_, ok := awaitStep(a, done, deadline, a.lateGrace, nil)
		return ok
	}
}

// stepDeadline is the deadline of a step of the app's stop: the earliest
// of timeout from now, ctx's deadline and that of every Stop called.
func (a *App) stepDeadline(ctx context.Context, timeout time.Duration) time.Time {
	d := stopDeadline(ctx, timeout)
	if bound, _ := a.stopBound(); bound != nil {
		if dl, ok := bound.Deadline(); ok && dl.Before(d) {
			return dl
		}
	}
	return d
}

// rollback stops what a failed Start started: tasks, then every started
// hook, bounded by Stop's deadline when Stop abandoned the start, or by the
// stop timeouts alone when it failed on its own, until a Stop comes; the
// stops then get values, the values of Start's ctx.
func (a *App) rollback(values context.Context) error {
	ctx, cancel := a.rollbackContext(values)
	defer cancel()
	err := a.tasks.stop(a.Name, a.taskWait(ctx))
	lateErr := a.stopLateStarts(ctx)
	return errors.Join(err, lateErr, a.stopHooks(ctx))
}

// stopHooks calls every started hook's stop, in reverse.
func (a *App) stopHooks(ctx context.Context) error {
	a.mu.Lock()
	started := a.started
	a.started = nil
	a.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		errs = append(errs, a.stopHook(ctx, started[i]))
	}
	return errors.Join(errs...)
}

func (a *App) stopHook(parent context.Context, s startedHook) error {
	a.status[s.idx].Store(int32(HookRunningStop))
	return a.runStop(parent, a.hooks[s.idx], s.stop, "stop", func() { a.status[s.idx].Store(int32(HookDown)) }, true)
}

// runStop calls h's stop function, bounded by h's stop timeout and
// parent's deadline, and reports it: HookStopping, then HookStopped with
// its duration and error (what names the call in the error), after
// stopped has run. A stop that ignores its context is abandoned after the
// late grace as a TimeoutError, and its own error, should it return one
// later, is a late HookStopped; stopped runs when it returns. With bounded, the app's Stops bound it too
// (see bindStop); a stop that comes after they returned is not theirs.
func (a *App) runStop(parent context.Context, h Hook, stop StopFunc, what string, stopped func(), bounded bool) error {
	a.emit(Event{Kind: HookStopping, Hook: h.Name})
	begin := time.Now()
	var err error
	if stop != nil {
		deadline, by := stopDeadline(parent, a.stopTimeoutOf(h)), (*App)(nil)
		if bounded {
			deadline, by = a.stepDeadline(parent, a.stopTimeoutOf(h)), a
		}
		ctx := newStopContext(parent, deadline)
		done := make(chan error, 1)
		returned := a.calling(h)
		go func() {
			err := errGoexit // unless callStop returns
			defer func() {
				returned() // before anyone can learn it returned
				done <- err
			}()
			err = callStop(ctx, stop)
		}()
		// Stops called after ctx's deadline share one grace window past
		// it, each with a floor: n stops that ignore their context
		// overrun the deadline by the window and n floors, not n windows.
		var ok bool
		if err, ok = awaitStep(by, done, deadline, a.lateGrace, ctx.bringForward); !ok {
			dl, _ := ctx.Deadline()
			err = &TimeoutError{Op: "stop", Timeout: max(dl.Sub(begin), 0)}
			// The stop still runs: it has stopped when it returns.
			whenStopped := stopped
			stopped = func() {}
			go func() {
				late := <-done
				whenStopped()
				if late != nil {
					a.emit(Event{Kind: HookStopped, Hook: h.Name, Late: true, Err: fmt.Errorf("lifespan %q: hook %q: late %s: %w", a.Name, h.Name, what, late)})
				}
			}()
		}
		ctx.end(context.Canceled)
	}
	d := time.Since(begin)
	if err != nil {
		err = fmt.Errorf("lifespan %q: hook %q: %s: %w", a.Name, h.Name, what, err)
	}
	stopped()
	a.emit(Event{Kind: HookStopped, Hook: h.Name, Duration: d, Err: err})
	return err
}

func callStop(ctx context.Context, stop StopFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return stop(ctx)
}
