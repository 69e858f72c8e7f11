package lifespan

import (
	"context"
	"errors"
	"fmt"
)

// Group is several apps in one process, each with its own lifespan: Start
// starts them in the order given and Stop stops them in reverse, the way
// Django-Bolt runs the lifespans of several APIs.
type Group struct {
	apps []*Lifespan
}

// NewGroup returns a group of apps. It panics on a nil app or two apps with
// one name.
func NewGroup(apps ...*Lifespan) *Group {
	seen := map[string]bool{}
	for i, a := range apps {
		if a == nil {
			panic(fmt.Sprintf("lifespan: NewGroup: app %d is nil", i))
		}
		if seen[a.name] {
			panic(fmt.Sprintf("lifespan: NewGroup: two apps named %q", a.name))
		}
		seen[a.name] = true
	}
	return &Group{apps: apps}
}

// Apps returns the group's apps in start order.
func (g *Group) Apps() []*Lifespan { return append([]*Lifespan(nil), g.apps...) }

// Start starts each app in order. If one fails, the apps already started
// are stopped in reverse and the errors are joined.
func (g *Group) Start(ctx context.Context) error {
	for i, a := range g.apps {
		if err := a.Start(ctx); err != nil {
			errs := []error{err}
			for j := i - 1; j >= 0; j-- {
				errs = append(errs, g.apps[j].Stop(context.WithoutCancel(ctx)))
			}
			return errors.Join(errs...)
		}
	}
	return nil
}

// Stop stops every app in reverse order, best effort, and joins the errors.
// Apps after the deadline are still stopped; see Lifespan.Stop.
func (g *Group) Stop(ctx context.Context) error {
	errs := make([]error, 0, len(g.apps))
	for i := len(g.apps) - 1; i >= 0; i-- {
		errs = append(errs, g.apps[i].Stop(ctx))
	}
	return errors.Join(errs...)
}

// BeginDrain marks every app as draining.
func (g *Group) BeginDrain() {
	for _, a := range g.apps {
		a.BeginDrain()
	}
}

// Ready reports whether every app has started and none is draining.
func (g *Group) Ready() bool {
	for _, a := range g.apps {
		if a.Phase() != PhaseReady {
			return false
		}
	}
	return true
}

// Running names what is still running in every app, as "APP/hook:NAME" and
// "APP/task:NAME".
func (g *Group) Running() []string {
	var out []string
	for _, a := range g.apps {
		for _, r := range a.Running() {
			out = append(out, a.name+"/"+r)
		}
	}
	return out
}
