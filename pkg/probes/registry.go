package probes

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Registry holds the checks behind the probes. Add checks, then Start it
// (which runs the background checks) and serve its Handler; Stop ends the
// background checks. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	checks  []*check
	byName  map[string]*check
	started bool
	stopped bool // Stop was called: Start runs nothing from then on

	cancel context.CancelFunc
	wg     sync.WaitGroup // the background checks' loops
	calls  inflight       // the CheckFuncs their runs and Refresh's called
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{byName: map[string]*check{}}
}

// Add registers c for the probes in kind. It panics on an invalid check, a
// name already used, or a background check added after Start or Stop:
// those are wiring mistakes.
func (r *Registry) Add(kind Kind, c Check) {
	ch := &check{Check: c, kind: kind}
	if err := ch.validate(); err != nil {
		panic("probes: " + err.Error())
	}
	ch.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byName[c.Name]; dup {
		panic(fmt.Sprintf("probes: check %q added twice", c.Name))
	}
	if r.started && c.Interval > 0 {
		panic(fmt.Sprintf("probes: background check %q added after Start", c.Name))
	}
	if r.stopped && c.Interval > 0 {
		panic(fmt.Sprintf("probes: background check %q added after Stop: it would never run", c.Name))
	}
	r.checks = append(r.checks, ch)
	r.byName[c.Name] = ch
}

// Start runs each background check at once and then every Interval until
// Stop or ctx ends. It returns at once. After Stop, or once ctx ends, the
// background checks no longer run and probes keep reading their last
// results: start the registry with a context that lasts as long as its
// probes are served. A second Start, or one after Stop, does nothing.
func (r *Registry) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	for _, c := range r.checks {
		if c.Interval <= 0 {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			ticker := time.NewTicker(c.Interval)
			defer ticker.Stop()
			for {
				c.run(ctx, &r.calls)
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
			}
		}()
	}
}

// Refresh runs the background checks named (every one, without names)
// now, concurrently, each under its timeout (and ctx), and waits for them;
// their next scheduled runs keep their pace. A scheduled run that started
// before the refresh and ends after it does not overwrite the refreshed
// result. Call it when what the checks watch has just changed, such as a
// database just opened or the end of startup, so the next probe reads a
// result from after the change rather than one up to an Interval old.
// Each check runs with a context for which [Refreshing] is true. Refresh
// panics on a name that is not a background check's, as a refresh that
// ran nothing would leave the probes reading the old result: that is a
// wiring mistake, like those Add panics on.
func (r *Registry) Refresh(ctx context.Context, names ...string) {
	ctx = context.WithValue(ctx, refreshingKey{}, true)
	checks, err := r.background(names)
	if err != nil {
		panic("probes: " + err.Error())
	}
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() { c.run(ctx, &r.calls) })
	}
	wg.Wait()
}

// background returns the background checks named, each once, or every
// one without names; a name that is not a background check's is an error
// that lists those there are.
func (r *Registry) background(names []string) ([]*check, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var all []*check
	var have []string
	for _, c := range r.checks {
		if c.Interval > 0 {
			all = append(all, c)
			have = append(have, c.Name)
		}
	}
	if len(names) == 0 {
		return all, nil
	}
	var named []*check
	for _, name := range names {
		c := r.byName[name]
		switch {
		case c == nil:
			return nil, fmt.Errorf("Refresh(%q): no check has that name; the background checks (those with an Interval) are %q", name, have)
		case c.Interval <= 0:
			return nil, fmt.Errorf("Refresh(%q): that check has no Interval, so it runs whenever a probe asks for it: there is no result to refresh; the background checks are %q", name, have)
		}
		if !slices.Contains(named, c) {
			named = append(named, c)
		}
	}
	return named, nil
}

type refreshingKey struct{}

// Refreshing reports whether ctx is that of a check run by
// [Registry.Refresh], which wants a result from after what changed: a
// CheckFunc that shares one call among the probes that overlap it (as
// probes/heptio's adapter does) must not answer a refresh from a call
// begun before it.
func Refreshing(ctx context.Context) bool {
	v, _ := ctx.Value(refreshingKey{}).(bool)
	return v
}

// Stop ends the background checks and waits for them: once it returns, no
// background run starts again, and each CheckFunc a background run or a
// Refresh called has returned, or is past that run's deadline (its
// Timeout from when it began: one that ignores its context is waited for
// no longer). So what the background checks use can be released after
// Stop. Inline checks, which probes run, are their callers' to wait for,
// as is a Refresh begun as Stop runs or after it (Refresh still runs its
// checks then).
func (r *Registry) Stop() {
	r.mu.Lock()
	cancel := r.cancel
	r.stopped = true
	r.mu.Unlock()
	if cancel != nil { // started
		cancel()
		r.wg.Wait() // no scheduled run begins after this: each loop has returned
	}
	<-r.calls.wait() // each call returned, or is past its deadline
}

// names returns the names of kind's checks, sorted.
func (r *Registry) names(kind Kind) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, c := range r.checks {
		if c.kind&kind != 0 {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Results returns every check's last result, sorted by name, without
// running any check.
func (r *Registry) Results() []Result {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Result, 0, len(r.checks))
	for _, c := range r.checks {
		out = append(out, c.cached())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// startInline starts each of selected's inline checks that is not
// instant in a goroutine of its own, which puts its result in results at
// the check's index, and returns what to wait on for them; with detach,
// the checks run under ctx's values but not its cancellation. (A function
// of its own, so that a probe without such checks, which only reads
// memory, does not move the probe's variables to the heap for goroutines
// it never starts.)
func startInline(ctx context.Context, detach bool, selected []*check, results []Result) *sync.WaitGroup {
	if detach {
		ctx = context.WithoutCancel(ctx)
	}
	var wg sync.WaitGroup
	for i, c := range selected {
		if c.Interval <= 0 && !c.Instant {
			wg.Go(func() { results[i] = c.run(ctx, nil) })
		}
	}
	return &wg
}

// Report is the outcome of one probe.
type Report struct {
	Kind     Kind
	Passing  bool
	Checks   []Result
	Excluded []string // names given to exclude that name no check of the probe (an empty one aside)
}

// Evaluate reports the probe of kind: instant checks run now in the
// caller's goroutine, other inline checks run now concurrently, each under
// its timeout, and background checks give their cached result. An inline
// check still running when ctx ends is reported failing, with ctx's
// error, and its run is not recorded.
// Checks named in exclude are left out. With only set, just that check is
// reported; ok is false if it is not a check of kind, or exclude names it.
func (r *Registry) Evaluate(ctx context.Context, kind Kind, only string, exclude []string) (rep Report, ok bool) {
	return r.evaluate(ctx, false, kind, only, exclude, nil)
}

// evaluate is Evaluate; with detach, inline checks run under ctx's values
// but not its cancellation (a probe whose client gives up still records
// what the check found, within the check's own timeout); instant checks,
// which never block, run under ctx as it is. The report's Checks use
// buf's array when it has room.
func (r *Registry) evaluate(ctx context.Context, detach bool, kind Kind, only string, exclude []string, buf []Result) (rep Report, ok bool) {
	// Small fixed buffers: a probe of up to 16 checks with up to 8 excludes
	// (the chart's probe has one) selects without allocating.
	var selectedBuf [16]*check
	selected := selectedBuf[:0]
	var usedBuf [8]bool // used[i]: exclude[i] matched a check
	used := usedBuf[:]
	if len(exclude) > len(usedBuf) {
		used = make([]bool, len(exclude))
	}
	used = used[:len(exclude)]
	r.mu.RLock()
	for _, c := range r.checks {
		if c.kind&kind == 0 {
			continue
		}
		excluded := false
		for i, e := range exclude {
			if e == c.Name {
				used[i], excluded = true, true
			}
		}
		if !excluded && (only == "" || c.Name == only) {
			selected = append(selected, c)
		}
	}
	r.mu.RUnlock()
	if only != "" && len(selected) == 0 {
		return Report{}, false
	}
	results := buf[:0]
	if buf == nil || cap(buf) < len(selected) { // Evaluate's, or a small buffer
		results = make([]Result, len(selected)) // never nil: a report of no check lists none, []
	}
	results = results[:len(selected)]
	instant, inline := false, false
	for i, c := range selected {
		switch {
		case c.Interval > 0:
			results[i] = c.cached()
		case c.Instant:
			instant = true
		default:
			inline = true
		}
	}
	var running *sync.WaitGroup
	if inline {
		running = startInline(ctx, detach, selected, results)
	}
	if instant { // back to back, timed from one reading (see runInstant)
		epoch, mark := time.Now(), time.Duration(0)
		for i, c := range selected {
			if c.Instant {
				mark = c.runInstant(ctx, epoch, mark, &results[i])
			}
		}
	}
	if running != nil {
		running.Wait()
	}
	rep = Report{Kind: kind, Passing: true, Checks: results}
	for _, res := range rep.Checks {
		rep.Passing = rep.Passing && res.Passing
	}
	for i, name := range exclude {
		// An empty name (a bare ?exclude=) excludes nothing and is no
		// mistake to warn about: no check can have it.
		if name != "" && !used[i] && !slices.Contains(rep.Excluded, name) {
			rep.Excluded = append(rep.Excluded, name)
		}
	}
	sort.Strings(rep.Excluded)
	return rep, true
}
