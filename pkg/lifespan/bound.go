package lifespan

import (
	"context"
	"sync"
	"time"
)

// A stop is bounded by the deadline of the ctx given to Stop. Every Stop
// called on the app binds it (bindStop), so the earliest deadline of all
// bounds what is left of the stop, the step under way included: a Stop
// that comes during a failed start's rollback (which runs under the stop
// timeouts alone until then), or during another Stop with a later
// deadline (Group.Start's rollback of the apps before the one that failed,
// say), brings its deadline forward.

// bindStop makes ctx's deadline a bound of the app's stopping, if no Stop
// gave an earlier one.
func (a *App) bindStop(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bound != nil {
		dl, ok := ctx.Deadline()
		cur, bounded := a.bound.Deadline()
		if !ok || (bounded && !dl.Before(cur)) {
			return
		}
	}
	a.bound = ctx
	if a.tightened != nil {
		close(a.tightened)
	}
	a.tightened = make(chan struct{})
}

// stopBound returns the ctx of the Stop with the earliest deadline (nil
// before any Stop), and a channel closed when a Stop binds another.
func (a *App) stopBound() (context.Context, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tightened == nil {
		a.tightened = make(chan struct{})
	}
	return a.bound, a.tightened
}

// rollbackContext bounds the rollback of the app's failed start: values
// (the values of Start's ctx, without its cancellation) with the deadline
// of the Stop that abandoned it (or came since), if any.
func (a *App) rollbackContext(values context.Context) (context.Context, context.CancelFunc) {
	if bound, _ := a.stopBound(); bound != nil {
		if dl, ok := bound.Deadline(); ok {
			return context.WithDeadline(values, dl)
		}
	}
	return values, func() {}
}

// stopDeadline is a stop's deadline: the earlier of timeout from now and
// ctx's deadline.
func stopDeadline(ctx context.Context, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl
	}
	return deadline
}

// awaitStep waits for ch, a step of the app's stop (its tasks, a late
// start, a hook's stop), until deadline plus grace, and at least a tenth
// of grace: a step that needs a moment past its deadline has it, and n
// steps run after the deadline overrun it by the grace and n tenths of it,
// not by n graces. A Stop that binds an earlier deadline meanwhile brings
// deadline forward, and moved is told the new one. What ch already holds
// is taken, even past the end: a step that has finished is never left to
// chance between two ready cases of a select. A nil a (a step no Stop
// bounds) waits for deadline as it is.
func awaitStep[T any](a *App, ch <-chan T, deadline time.Time, grace time.Duration, moved func(time.Time)) (v T, ok bool) {
	select {
	case v = <-ch:
		return v, true
	default:
	}
	floor := time.Now().Add(grace / 10)
	end := func() time.Duration {
		if e := deadline.Add(grace); e.After(floor) {
			return time.Until(e)
		}
		return time.Until(floor)
	}
	timer := time.NewTimer(end())
	defer timer.Stop()
	var tightened <-chan struct{} // nil, and never ready, for a nil a
	follow := func() {            // the bound now, and when it changes next
		if a == nil {
			return
		}
		var bound context.Context
		bound, tightened = a.stopBound()
		if bound == nil {
			return
		}
		if dl, ok := bound.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
			timer.Reset(end())
			if moved != nil {
				moved(dl)
			}
		}
	}
	follow() // a Stop may have come since the caller read the deadline
	for {
		select {
		case v = <-ch:
			return v, true
		case <-timer.C:
			return v, false
		case <-tightened:
			follow()
		}
	}
}

// stopContext is the context a hook's stop gets: done at its deadline,
// which a Stop that comes with an earlier one brings forward (bindStop),
// or when the app stops waiting for the stop. Its values are its parent's;
// its parent's cancellation does not reach it (only deadlines bound a
// stop).
type stopContext struct {
	context.Context // the parent, without its cancellation
	done            chan struct{}

	mu       sync.Mutex
	timer    *time.Timer // nil when made done
	deadline time.Time
	err      error
}

// newStopContext returns a stop's context with deadline: done already if
// that has passed, as a stop called late must see.
func newStopContext(parent context.Context, deadline time.Time) *stopContext {
	c := &stopContext{Context: context.WithoutCancel(parent), done: make(chan struct{}), deadline: deadline}
	c.mu.Lock() // the timer may fire before AfterFunc returns
	defer c.mu.Unlock()
	if !time.Now().Before(deadline) {
		c.endLocked(context.DeadlineExceeded)
		return c
	}
	c.timer = time.AfterFunc(time.Until(deadline), func() { c.end(context.DeadlineExceeded) })
	return c
}

func (c *stopContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, true
}

func (c *stopContext) Done() <-chan struct{} { return c.done }

func (c *stopContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// bringForward moves the deadline to d, if that is earlier.
func (c *stopContext) bringForward(d time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || !d.Before(c.deadline) {
		return
	}
	c.deadline = d
	if time.Now().Before(d) {
		c.timer.Reset(time.Until(d))
		return
	}
	c.endLocked(context.DeadlineExceeded)
}

// end makes the context done with err, unless it is already.
func (c *stopContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *stopContext) endLocked(err error) {
	if c.err == nil {
		c.err = err
		if c.timer != nil { // none when made done
			c.timer.Stop()
		}
		close(c.done)
	}
}
