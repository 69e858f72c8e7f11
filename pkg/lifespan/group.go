package lifespan

import (
	"context"
	"errors"
	"fmt"
)

// Group is several apps in one process, each with its own hooks: Start
// starts them in the order listed and Stop stops them in reverse, the way
// Django-Bolt runs the lifespans of several APIs. A nil or empty Group
// starts and stops nothing.
//
// A Group is also [Values]: a [Key] reads from each app's state in the
// Group's order, the first app that set it winning. serve puts its Group in
// every API request's context under [StateContextKey].
type Group []*App

// lookup reads the key from each app's state in order: the first app that
// set it wins. It makes a Group a [Values].
func (g Group) lookup(id *keyID) (any, bool) {
	for _, a := range g {
		if a == nil {
			continue
		}
		if v, ok := a.State().lookup(id); ok {
			return v, true
		}
	}
	return nil, false
}

func (g Group) each(fn func(id *keyID)) {
	for _, a := range g {
		if a != nil {
			a.State().each(fn)
		}
	}
}

// check refuses a nil app, two apps with one name, and an app started or
// stopped already.
func (g Group) check() error {
	seen := map[string]bool{}
	for i, a := range g {
		if a == nil {
			return fmt.Errorf("lifespan: group: app %d is nil", i)
		}
		if seen[a.Name] {
			return fmt.Errorf("lifespan: group: two apps named %q; give each app its own Name", a.Name)
		}
		seen[a.Name] = true
		// An app started or stopped before the group's start is the
		// caller's mistake, refused before any app starts; a Stop that
		// reaches an app after this, before its turn, abandoned the
		// group's start (App.start's inGroup).
		a.mu.Lock()
		launched, stopped := a.launched, a.stopped
		a.mu.Unlock()
		switch {
		case launched:
			return fmt.Errorf("lifespan %q: Start called twice", a.Name)
		case stopped:
			return fmt.Errorf("lifespan %q: Start called after Stop", a.Name)
		}
	}
	return nil
}

// Start starts each app in order. If one fails, or a Stop (Group.Stop
// abandoning the start) reaches an app before its turn comes, the apps
// already started are stopped in reverse and the errors are joined.
func (g Group) Start(ctx context.Context) error {
	if err := g.check(); err != nil {
		return err
	}
	for i, a := range g {
		if err := a.start(ctx, true); err != nil {
			// The apps started before it are stopped by Stop's deadline when
			// Stop abandoned this start (as Group.Stop would stop them),
			// else by their stop timeouts alone, with ctx's values.
			rollback, cancel := a.rollbackContext(context.WithoutCancel(ctx))
			errs := []error{err}
			for j := i - 1; j >= 0; j-- {
				errs = append(errs, g[j].Stop(rollback))
			}
			cancel()
			return errors.Join(errs...)
		}
	}
	return nil
}

// StopTasks cancels the background tasks of every ready app, in reverse
// order, and waits for them, before any stop hook runs; the errors are
// joined. Package serve calls it after the HTTP drain, so that tasks end
// while every resource they use is still open. Stop does the same for apps
// whose tasks are still running, so calling StopTasks is optional.
func (g Group) StopTasks(ctx context.Context) error {
	var errs []error
	for i := len(g) - 1; i >= 0; i-- {
		if g[i] != nil {
			errs = append(errs, g[i].stopTasks(ctx))
		}
	}
	return errors.Join(errs...)
}

// Stop stops every app in reverse order, best effort (see [App.Stop]), and
// joins the errors.
func (g Group) Stop(ctx context.Context) error {
	var errs []error
	for i := len(g) - 1; i >= 0; i-- {
		if g[i] != nil {
			errs = append(errs, g[i].Stop(ctx))
		}
	}
	return errors.Join(errs...)
}

// Running names what is still running in every app, as "APP/hook:NAME" and
// "APP/task:NAME".
func (g Group) Running() []string {
	var out []string
	for _, a := range g {
		if a == nil {
			continue
		}
		for _, r := range a.Running() {
			out = append(out, a.Name+"/"+r)
		}
	}
	return out
}
