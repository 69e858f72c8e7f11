package probes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckFunc reports a dependency's health: nil when healthy. It must return
// promptly once ctx is done.
type CheckFunc func(ctx context.Context) error

// Kind says which probes a check belongs to; combine with |.
type Kind uint8

// The probe kinds.
const (
	Liveness Kind = 1 << iota
	Readiness
	Startup
)

var kindPaths = []struct {
	kind Kind
	path string
}{{Liveness, "livez"}, {Readiness, "readyz"}, {Startup, "startupz"}}

func (k Kind) String() string {
	var parts []string
	for _, kp := range kindPaths {
		if k&kp.kind != 0 {
			parts = append(parts, kp.path)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Check is one named health check.
type Check struct {
	// Name appears in ?verbose output, metrics and the check's sub-path; it
	// may contain '/' (e.g. "hook/api/db") between names, but no
	// whitespace nor any of ? # % + & ; = ([CheckName] says what it
	// refuses, and why).
	Name string
	Run  CheckFunc
	// Timeout bounds each run (default 1s); a run past it fails. An
	// Instant check has none (Add refuses one).
	Timeout time.Duration
	// Interval, when set, runs the check in the background every Interval
	// (starting at once when the registry starts); probes read the cached
	// result and report the check failing until its first run passes.
	// Without it the check runs inline on every probe, for as long as
	// the probes are served: package serve ends background checks before
	// the hooks release what they read, but serves probes, and so runs
	// inline checks, until its last step. A check that reads what a hook
	// opens (a database pool) belongs in the background, or must answer
	// with an error, not a panic or a wait, once that is closed.
	Interval time.Duration
	// Instant marks a check that only reads memory (a flag, a signal, a
	// status) and never blocks: it runs in the probe's own goroutine, with
	// no timeout and no goroutine of its own, so a probe stays cheap when
	// the process is busy. A check that can block must not set it. A probe
	// starts its other inline checks first, then runs its instant checks
	// one after another. Its panic fails it, as any check's; but a
	// runtime.Goexit (t.FailNow in a test) ends the probe's goroutine, and
	// the probe goes unanswered, where another check's Goexit fails it.
	Instant bool
	// FailureThreshold is how many consecutive failures turn a passing check
	// failing (default 1); SuccessThreshold how many consecutive successes
	// turn a failing check passing again (default 1). A check's first result
	// counts at once.
	FailureThreshold int
	SuccessThreshold int
}

// DefaultTimeout bounds a check run when Check.Timeout is zero.
const DefaultTimeout = time.Second

// Result is a check's state as of its last run.
type Result struct {
	Name string
	Kind Kind
	// Passing is the thresholded verdict the probes report.
	Passing bool
	// Ran is false until the check's first run completed.
	Ran bool
	// Err is the last run's error (nil if it passed).
	Err                  error
	LastRun              time.Time
	Duration             time.Duration
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	// Runs and Failures count the check's runs and the failed ones, a run
	// overtaken by a later one (which does not change the verdict)
	// included; a run whose caller gave up first (Evaluate's ctx ended, the
	// registry stopping) is not recorded at all. A probe over HTTP lets
	// its checks finish even if its client leaves.
	Runs, Failures int64
}

// ErrNotRun is the reason a background check gives before its first run.
var ErrNotRun = errors.New("not run yet")

type check struct {
	Check
	kind Kind

	// began numbers the runs as they start; recorded is the number of the
	// run whose outcome the result holds. A run that started earlier than
	// that one is stale when it ends. (Numbers, not start times: two runs
	// can start on the same clock reading.)
	began atomic.Uint64

	mu       sync.Mutex
	result   Result
	recorded uint64
}

// CheckName refuses what cannot name a check. A check's name is a URL
// path (/readyz/NAME), a value of ?exclude= and a metric's label: it must
// be UTF-8, not empty, without whitespace or any of ? # % + & ; = (each
// ends the path, starts an escape, or reads as something else in a query,
// so the name could not be written as it is in its sub-path or its
// exclude), and each of its '/'-separated segments must be a name, not
// empty, "." or ".." (an HTTP mux cleans those away, so the check's
// sub-path would reach another name).
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("check without a name")
	case !utf8.ValidString(name):
		// A metric's label must be UTF-8: one such name would fail every
		// scrape of the registry that reports the check.
		return fmt.Errorf("check %q: name is not valid UTF-8", name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(notInNames, r) }):
		return fmt.Errorf("check %q: name must not contain whitespace or any of %s (its sub-path /readyz/NAME and ?exclude=NAME must read as written); want e.g. db or hook/api/cache", name, notInNames)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("check %q: every part between '/'s must be a name, not empty, '.' or '..' (its sub-path /readyz/%s would reach another name); want e.g. db or hook/api/cache", name, name)
		}
	}
	return nil
}

// notInNames are the characters a check's name must not hold: '?' and '#'
// end a URL's path, '%' starts an escape, and in a query '+' reads as a
// space and '&', ';' and '=' split it.
const notInNames = "?#%+&;="

func (c *check) validate() error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	switch {
	case c.Run == nil:
		return fmt.Errorf("check %q: no Run function", c.Name)
	case c.kind&(Liveness|Readiness|Startup) == 0:
		return fmt.Errorf("check %q: no probe kind (use Liveness, Readiness and/or Startup)", c.Name)
	case c.Timeout < 0:
		return fmt.Errorf("check %q: Timeout is %v; want 0 (DefaultTimeout) or more", c.Name, c.Timeout)
	case c.Interval < 0:
		return fmt.Errorf("check %q: Interval is %v; want 0 (run in the probe) or more", c.Name, c.Interval)
	case c.FailureThreshold < 0:
		return fmt.Errorf("check %q: FailureThreshold is %d; want 0 (1) or more", c.Name, c.FailureThreshold)
	case c.SuccessThreshold < 0:
		return fmt.Errorf("check %q: SuccessThreshold is %d; want 0 (1) or more", c.Name, c.SuccessThreshold)
	case c.Instant && c.Interval > 0:
		return fmt.Errorf("check %q: Instant and Interval exclude each other: an instant check only reads memory and runs in the probe; a background check runs on its own schedule, under its timeout", c.Name)
	case c.Instant && c.Timeout > 0:
		return fmt.Errorf("check %q: Instant and Timeout exclude each other: an instant check runs in the probe's goroutine, unbounded, as it only reads memory; drop Instant to bound it by Timeout", c.Name)
	}
	return nil
}

func (c *check) init() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.FailureThreshold = max(c.FailureThreshold, 1)
	c.SuccessThreshold = max(c.SuccessThreshold, 1)
	c.result = Result{Name: c.Name, Kind: c.kind, Err: ErrNotRun}
}

// run runs the check once under its timeout and folds the outcome into the
// thresholded result. A run whose caller gave up first (Evaluate's ctx
// ended, the registry stopping) says nothing about the dependency: it is
// not recorded, and the last result stands; the result returned for it is
// failing, with the caller's error, as the caller cannot be told the
// check passes (the last pass may be from before the dependency hung).
// With calls, the CheckFunc is counted in it while it runs (see call).
func (c *check) run(ctx context.Context, calls *inflight) Result {
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	n := c.began.Add(1) // numbered first: a later number never carries an earlier start
	begin := time.Now()
	err := c.call(ctx, calls)
	if caller.Err() != nil {
		r := c.cached()
		r.Passing, r.Err = false, fmt.Errorf("not run to the end: its caller gave up: %w", context.Cause(caller))
		return r
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err() // finished, but too late to count
	}
	return c.record(err, n, begin, time.Since(begin))
}

// runInstant runs an instant check in the caller's goroutine, starting
// begin after epoch, puts its result in into and returns when it ended,
// after epoch.
// A probe reads the clock once (epoch) and runs its instant checks back to
// back, each from the end of the one before: one read of the monotonic
// clock a check, where timing each alone would take three (time.Now and
// time.Since), the larger part of a cheap probe's cost. Each duration then
// also holds the time the previous result took to record (tens of
// nanoseconds, more when concurrent probes contend for that check's lock).
func (c *check) runInstant(ctx context.Context, epoch time.Time, begin time.Duration, into *Result) time.Duration {
	n := c.began.Add(1)
	err := c.callInstant(ctx)
	end := time.Since(epoch)
	c.recordInto(into, err, n, epoch.Add(begin), end-begin)
	return end
}

// errGoexit is the failure of a check that ended its goroutine with
// runtime.Goexit (t.FailNow, in a test) rather than returning: it said
// nothing of its dependency, so it does not pass.
var errGoexit = errors.New("check exited by runtime.Goexit without returning (t.FailNow or t.SkipNow, in a test)")

// callInstant runs an instant check in the caller's goroutine.
func (c *check) callInstant(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("check panicked: %v", v)
		}
	}()
	return c.Run(ctx)
}

// call runs the check in its own goroutine so that a check ignoring its
// context still cannot hold the probe past the timeout; calls, if not
// nil, counts the function until it returns or ctx's deadline passes,
// whichever comes first (one that ignores its context is not waited for
// past its run's deadline).
func (c *check) call(ctx context.Context, calls *inflight) error {
	done := make(chan error, 1)
	release := func() {}
	if calls != nil {
		calls.add()
		var once sync.Once
		deadline, _ := ctx.Deadline() // run sets one: the check's Timeout
		timer := time.AfterFunc(time.Until(deadline), func() { once.Do(calls.done) })
		release = func() {
			timer.Stop()
			once.Do(calls.done)
		}
	}
	go func() {
		defer release()
		err := errGoexit // unless Run returns
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("check panicked: %v", v)
			}
			done <- err
		}()
		err = c.Run(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out after %v: %w", c.Timeout, ctx.Err())
	}
}

// record counts the outcome of run n, begun at and lasting d, and makes it
// the result unless a run begun after it is already recorded; it returns
// the result then.
func (c *check) record(err error, n uint64, at time.Time, d time.Duration) (r Result) {
	c.recordInto(&r, err, n, at, d)
	return r
}

// recordInto is record, with the result copied into into (one copy, under
// the check's lock, where returning it would take two).
func (c *check) recordInto(into *Result, err error, n uint64, at time.Time, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.result
	r.Runs++
	if err != nil {
		r.Failures++
	}
	// A run that started later (a Refresh overtaking a slow scheduled run,
	// say) may be recorded already: this older outcome is then stale. It is
	// counted, but it does not change the verdict.
	if n >= c.recorded {
		first := !r.Ran
		c.recorded = n
		r.Ran, r.Err, r.LastRun, r.Duration = true, err, at, d
		if err == nil {
			r.ConsecutiveSuccesses++
			r.ConsecutiveFailures = 0
			if first || r.ConsecutiveSuccesses >= c.SuccessThreshold {
				r.Passing = true
			}
		} else {
			r.ConsecutiveFailures++
			r.ConsecutiveSuccesses = 0
			if r.ConsecutiveFailures >= c.FailureThreshold { // a check not yet passing is failing already
				r.Passing = false
			}
		}
	}
	*into = *r
}

func (c *check) cached() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result
}

// inflight counts the CheckFuncs running, for Registry.Stop to wait on. A
// WaitGroup would not do: a Refresh may add a call while Stop waits.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0; nil while n is 0
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 {
		close(f.idle)
		f.idle = nil
	}
}

// wait returns a channel closed once the calls running now have ended
// (calls added later may keep the count up; the channel does not wait for
// those beyond the moment the count first falls to 0).
func (f *inflight) wait() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return closedChan
	}
	return f.idle
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
