package lifespan

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stop shuts the lifespan down: it cancels the background tasks and waits
// for them (bounded by the stop timeout), then calls the stop function of
// every hook that started, in the reverse of the order they started.
//
// Stop is best effort. Each stop gets a context whose deadline is the
// earlier of the hook's stop timeout and ctx's deadline; a stop that fails,
// panics or passes its deadline is recorded and the next one still runs.
// Once ctx's deadline has passed the remaining stops are still called, with
// a context that is already done, and each is waited for the late-stop grace
// (see WithLateStopGrace) so ordering holds for stops that finish at once.
// The errors are joined, each naming app, hook and step.
//
// If Start is still running, Stop abandons it and returns once its rollback
// is done. Calling Stop again returns the first call's result. Stop on a
// lifespan that never started returns nil.
func (l *Lifespan) Stop(ctx context.Context) error {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		launched, cancel := l.launched, l.startCancel
		l.stopped = !launched
		l.mu.Unlock()
		if !launched {
			l.setPhase(PhaseStopped, 0, nil)
			return
		}
		cancel()
		<-l.startDone
		if l.Phase() == PhaseFailed {
			return // Start rolled back and reported
		}
		begin := time.Now()
		if t := l.drainBegan.Load(); t != 0 {
			begin = time.Unix(0, t)
		}
		l.setPhase(PhaseStopping, 0, nil)
		l.stopErr = l.stopAll(ctx)
		l.setPhase(PhaseStopped, time.Since(begin), l.stopErr)
	})
	return l.stopErr
}

// stopAll stops the background tasks and then every started hook in reverse.
func (l *Lifespan) stopAll(ctx context.Context) error {
	wait := l.opts.stopTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	errs := []error{l.tasks.stop(l.name, max(wait, l.opts.lateGrace))}

	l.mu.Lock()
	started := l.started
	l.started = nil
	l.mu.Unlock()
	for i := len(started) - 1; i >= 0; i-- {
		errs = append(errs, l.stopHook(ctx, started[i]))
	}
	return errors.Join(errs...)
}

func (l *Lifespan) stopHook(parent context.Context, s startedHook) error {
	h := l.hooks[s.idx]
	timeout := l.opts.stopTimeoutOf(h)
	l.status[s.idx].Store(int32(HookRunningStop))
	l.emit(Event{Kind: HookStopping, Hook: h.Name})
	begin := time.Now()
	deadline := begin.Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		deadline = pd
	}
	var err error
	if s.stop != nil {
		ctx, cancel := context.WithDeadline(context.WithoutCancel(parent), deadline)
		done := make(chan error, 1)
		go func() { done <- callStop(ctx, s.stop) }()
		wait := time.NewTimer(max(time.Until(deadline), 0) + l.opts.lateGrace)
		select {
		case err = <-done:
		case <-wait.C:
			err = &TimeoutError{Op: "stop", Timeout: deadline.Sub(begin)}
			go func() {
				if late := <-done; late != nil {
					l.emit(Event{Kind: HookStopped, Hook: h.Name, Err: fmt.Errorf("lifespan %q: hook %q: late stop: %w", l.name, h.Name, late)})
				}
			}()
		}
		wait.Stop()
		cancel()
	}
	d := time.Since(begin)
	if err != nil {
		err = fmt.Errorf("lifespan %q: hook %q: stop: %w", l.name, h.Name, err)
	}
	l.status[s.idx].Store(int32(HookDown))
	l.emit(Event{Kind: HookStopped, Hook: h.Name, Duration: d, Err: err})
	return err
}
