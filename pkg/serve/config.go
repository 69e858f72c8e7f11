package serve

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// The defaults of the shutdown timeline. They are the one table of these
// values: the reference service's configuration starts from them and its
// Helm chart's values equal them (a chart test proves it).
const (
	DefaultDrainDelay   = 5 * time.Second
	DefaultDrainTimeout = 20 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultMargin       = 2 * time.Second
	// MinMargin is the shortest Margin New accepts: the margin also
	// absorbs what Budget does not count, the lifespan's late-stop grace
	// (100ms past the stop timeout, and 10ms more for each stop or task
	// that ignores its context), the wait for the background checks' calls
	// in flight when the stop budget is already spent (up to 50ms), the
	// admin server's close (up to half the margin) and the process exit.
	MinMargin          = 500 * time.Millisecond
	DefaultQuitTimeout = 5 * time.Second
	DefaultRetryAfter  = time.Second
	// DefaultOnShutdownTimeout bounds Config.OnShutdown (a push of the
	// final figures, say).
	DefaultOnShutdownTimeout = 2 * time.Second
)

// Config is what a Server needs. API is required; every other field has a
// default. Durations follow net/http's convention: zero means the default,
// and DrainDelay may be negative to mean none.
type Config struct {
	// Apps are started in order before the API serves, and stopped in
	// reverse after the drain (see lifespan.Group). Each needs a Name
	// of its own: each of its hooks is the readiness check
	// hook/NAME/HOOK, and NAME and HOOK must fit a check's name
	// (probes.CheckName). New reads each app's hooks: append them all
	// before New, as Run refuses an app given hooks after it. Run adds an
	// observer of its own to each app's Observer (yours still gets every
	// event): it ends the background checks when a failed startup is about
	// to roll back, before the hooks release what the checks read.
	Apps lifespan.Group
	// API is the application's handler (a *gin.Engine, say).
	API http.Handler

	// APIAddr and AdminAddr are listen addresses (defaults ":8080" and
	// ":9090"). With SingleListener, probes and /metrics are served on the
	// API listener and AdminAddr is unused; failure reasons are then
	// withheld, and the probes stop answering at T1 with the API, so the
	// kubelet sees a failing liveness probe only if the drain outlasts its
	// threshold. Separate listeners are the default for that reason.
	APIAddr        string
	AdminAddr      string
	SingleListener bool
	// Limits bound what clients can hold of the API server (zero fields
	// take the defaults; see Limits). The admin server has fixed, small
	// limits and a listener of its own, so probes answer while the API is
	// saturated.
	Limits Limits

	// Probes receives the lifespan's checks; pass one to add checks of your
	// own (dependencies, sidecars). Nil makes a new registry. Each Server
	// needs its own: New refuses one another New has filled.
	Probes *probes.Registry
	// Metrics is served at /metrics on the admin listener when set.
	Metrics http.Handler

	// DrainDelay is T0..T1: how long the API keeps accepting and serving
	// after readiness fails, while kube-proxy, load balancers and meshes
	// learn that the pod is going (0: DefaultDrainDelay; negative: none, for
	// a pod with a preStop sleep or a process behind no Service).
	DrainDelay time.Duration
	// DrainQuiet, when positive, ends the drain delay early: once no request
	// has arrived for DrainQuiet (counted from T0 at the earliest), traffic
	// has moved elsewhere and the drain starts. It must be shorter than the
	// drain delay, which still bounds the wait.
	DrainQuiet time.Duration
	// DrainTimeout bounds T1..T2, the wait for in-flight requests
	// (0: DefaultDrainTimeout); requests still running then are cut off.
	DrainTimeout time.Duration
	// StopTimeout bounds T2..T3, the background tasks and every stop hook
	// together (0: DefaultStopTimeout).
	StopTimeout time.Duration
	// GracePeriod is the pod's terminationGracePeriodSeconds; when set, New
	// refuses settings whose shutdown (see Budget) cannot fit in it.
	GracePeriod time.Duration
	// PreStopDelay is the length of the pod's preStop sleep, which the
	// grace period also covers. Put the propagation delay in the preStop or
	// in DrainDelay, not both: New refuses a positive PreStopDelay with a
	// drain delay.
	PreStopDelay time.Duration
	// Margin is left over for the kubelet and the process exit, the admin
	// server's close included (up to half the margin, at most 1s)
	// (0: DefaultMargin; at least MinMargin).
	Margin time.Duration

	// QuitSidecars, when set, runs at the end of a shutdown, after the stop
	// hooks and OnShutdown (whose push may need the sidecar's network),
	// bounded by QuitTimeout (0: DefaultQuitTimeout): the place to call a
	// classic sidecar's quit endpoint once the app no longer needs the
	// network. Its error is logged and ends the run unclean. It does not
	// run after a failed startup, whose container a Deployment restarts
	// beside the sidecar, except after one an OS signal abandoned when
	// QuitSidecarsAfterFailedStartup is set (see there; its error then
	// leaves the startup's as the run's).
	QuitSidecars func(ctx context.Context) error
	QuitTimeout  time.Duration
	// QuitSidecarsAfterFailedStartup, when set, runs after a failed
	// startup (once OnShutdown has run), and after a Run that cannot open
	// a listener, bounded by QuitTimeout. After a startup abandoned for an
	// OS signal (the pod, its sidecars with it, is being stopped),
	// QuitSidecars runs instead when it is set, as a refusal then means a
	// sidecar gone; a startup abandoned otherwise (Shutdown, ctx, a
	// failing server) counts as failed. So leave SIGTERM to ShutdownOn,
	// not to a context of signal.NotifyContext, which would read as ctx.
	// A shutdown after a completed startup runs QuitSidecars, reading a
	// refusal as a sidecar gone: a Job should wait for its sidecar at
	// startup (sidecar.Waiter), so that it listens by then. The retry of
	// a sidecar not started yet lasts QuitTimeout, which must then also
	// cover the sidecar's start (its image pull, say). Set it where the
	// container is not restarted in its pod (a Job's pod with
	// restartPolicy Never): there a classic sidecar left running would
	// hold the pod, and the Job, open for good. Not where the container
	// restarts in its pod (a Deployment, restartPolicy OnFailure): it
	// would wait for a sidecar that has quit. It may run before the
	// sidecar listens (the app can fail within moments of the pod's
	// start), so it must not read a refused connection as a sidecar gone:
	// sidecar.Quit with Options.RetryRefused does not. Its error is
	// logged; Run still returns the startup's (or the listener's).
	QuitSidecarsAfterFailedStartup func(ctx context.Context) error

	// RetryAfter is the Retry-After given by API routes before startup
	// completes (0: DefaultRetryAfter; sent in whole seconds, at least 1).
	RetryAfter time.Duration

	// Logger receives the server's logs (nil: slog.Default()).
	Logger *slog.Logger
	// OnShutdown, when set, runs once the shutdown is complete, before
	// QuitSidecars and the admin server's stop, bounded by OnShutdownTimeout (0:
	// DefaultOnShutdownTimeout), which the budget counts: the place to push
	// the final figures somewhere that outlives the process (see
	// metrics.Push). It also runs when the startup fails or is abandoned,
	// once the hooks that started have stopped, with a report of no drain
	// whose Err is the *StartupError. Its error, or its running past the
	// timeout, is logged; it does not make the shutdown unclean, and Run
	// does not wait for it past the timeout. Its ctx (as QuitSidecars')
	// ends a sliver before the timeout (a tenth of it, at most 50ms), so
	// that a function that gives up as ctx ends is heard with its own
	// error rather than read as one that ignored it.
	OnShutdown        func(ctx context.Context, r ShutdownReport) error
	OnShutdownTimeout time.Duration
	// ShutdownOn are the OS signals that start the shutdown (nil: SIGTERM,
	// SIGINT and SIGHUP, so a hung-up terminal or a process manager's HUP
	// drains like a SIGTERM instead of killing the process; SIGINT and
	// SIGHUP are left out when the process started with them ignored, as
	// under nohup or as a shell's background job, so that they stay
	// ignored; an empty, non-nil slice handles none). Another one, more than a second after the
	// first, forces an exit through Exit (nil: os.Exit) with ExitForced.
	// SIGQUIT, unless listed here, keeps Go's meaning: the goroutines'
	// stacks are printed and the process exits with code 2, without a
	// drain. SIGKILL and SIGSTOP, which no process can catch, are refused.
	ShutdownOn []os.Signal
	Exit       func(code int)
}

// ConfigError is a configuration New refuses, or a listener Run cannot
// open. Each problem names the field and what would be valid.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "serve: invalid configuration: " + strings.Join(e.Problems, "; ")
}

// defaultDurations replaces zero durations with their defaults.
func (c *Config) defaultDurations() {
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{{&c.DrainDelay, DefaultDrainDelay}, {&c.DrainTimeout, DefaultDrainTimeout}, {&c.StopTimeout, DefaultStopTimeout},
		{&c.Margin, DefaultMargin}, {&c.QuitTimeout, DefaultQuitTimeout}, {&c.RetryAfter, DefaultRetryAfter},
		{&c.OnShutdownTimeout, DefaultOnShutdownTimeout}} {
		if *d.field == 0 {
			*d.field = d.def
		}
	}
}

func (c *Config) setDefaults() {
	c.defaultDurations()
	if c.APIAddr == "" {
		c.APIAddr = ":8080"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = ":9090"
	}
	c.Limits = c.Limits.orDefaults(DefaultLimits)
	if c.Probes == nil {
		c.Probes = probes.New()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ShutdownOn == nil {
		c.ShutdownOn = defaultSignals(signal.Ignored)
	}
	if c.Exit == nil {
		c.Exit = os.Exit
	}
}

// defaultSignals are SIGTERM, and SIGINT and SIGHUP unless ignored reports
// the process started with them ignored: signal.Notify would undo that.
func defaultSignals(ignored func(os.Signal) bool) []os.Signal {
	sigs := []os.Signal{syscall.SIGTERM}
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGHUP} {
		if !ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// delay is the drain delay in effect: 0 when none.
func (c *Config) delay() time.Duration { return max(c.DrainDelay, 0) }

// With a preStop sleep and no drain delay, the keep-alive connections still
// in use are closed gracefully after SIGTERM: responses carry "Connection:
// close" until no request has come for preStopQuiet, for at most
// preStopCloseWindow (which the budget counts).
const (
	preStopCloseWindow = time.Second
	preStopQuiet       = 250 * time.Millisecond
)

// closeWindow is the time the budget counts for closing keep-alive
// connections after a preStop sleep.
func (c *Config) closeWindow() time.Duration {
	if c.delay() <= 0 && c.PreStopDelay > 0 {
		return preStopCloseWindow
	}
	return 0
}

// Budget is the longest a shutdown can take with these settings, from the
// kubelet's first action (the preStop sleep, or SIGTERM) to the process
// exit: preStop + drain delay (or, after a preStop sleep, 1s to close
// keep-alive connections) + drain timeout + stop timeout (+ sidecar quit
// timeout, when either quit is set) (+ OnShutdown's timeout) + margin. The sum saturates instead of
// overflowing. Zero fields count as their defaults, negative ones (which
// New refuses) as 0. The margin must also absorb the lifespan's late-stop
// grace, which Budget does not count: a stop or background task that
// ignores its context is waited for up to 100ms past the stop timeout,
// shared by all of them, and each at least 10ms (see
// lifespan.App.StopTimeout); New refuses a Margin shorter than MinMargin.
func (c Config) Budget() time.Duration {
	c.defaultDurations()
	parts := []time.Duration{max(c.PreStopDelay, 0), c.delay(), c.closeWindow(), c.DrainTimeout, c.StopTimeout, c.Margin}
	if c.QuitSidecars != nil || c.QuitSidecarsAfterFailedStartup != nil {
		parts = append(parts, c.QuitTimeout) // one of them runs, once
	}
	if c.OnShutdown != nil {
		parts = append(parts, c.OnShutdownTimeout)
	}
	var b time.Duration
	for _, p := range parts {
		p = max(p, 0)
		if b > math.MaxInt64-p {
			return math.MaxInt64
		}
		b += p
	}
	return b
}

func (c *Config) validate() error {
	var problems []string
	if c.API == nil {
		problems = append(problems, "API handler is nil; set API to the application's handler (a *gin.Engine, say)")
	} else if nilHandler(c.API) {
		problems = append(problems, fmt.Sprintf("API handler is nil (a nil %T, which would panic on every request); set API to the application's handler (a *gin.Engine, say)", c.API))
	}
	for i, sig := range c.ShutdownOn {
		if sig == nil {
			problems = append(problems, fmt.Sprintf("ShutdownOn[%d] is nil; list signals such as syscall.SIGTERM, or leave ShutdownOn nil for the defaults", i))
		} else if name, ok := uncatchable[sig]; ok {
			problems = append(problems, fmt.Sprintf("ShutdownOn[%d] is %s, which no process can catch, so it would start no shutdown; list signals such as syscall.SIGTERM", i, name))
		}
	}
	if c.Metrics != nil && nilHandler(c.Metrics) {
		problems = append(problems, fmt.Sprintf("Metrics handler is a nil %T, which would panic on every scrape; set it (metrics.Handler, say), or leave Metrics nil to serve no /metrics", c.Metrics))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DrainQuiet", c.DrainQuiet}, {"DrainTimeout", c.DrainTimeout}, {"StopTimeout", c.StopTimeout},
		{"GracePeriod", c.GracePeriod}, {"PreStopDelay", c.PreStopDelay}, {"Margin", c.Margin},
		{"QuitTimeout", c.QuitTimeout}, {"RetryAfter", c.RetryAfter}, {"OnShutdownTimeout", c.OnShutdownTimeout}} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("%s is %v; it must be 0 (the default) or more", d.name, d.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Limits.ReadHeaderTimeout", c.Limits.ReadHeaderTimeout}, {"Limits.ReadTimeout", c.Limits.ReadTimeout},
		{"Limits.WriteTimeout", c.Limits.WriteTimeout}, {"Limits.IdleTimeout", c.Limits.IdleTimeout}} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("%s is %v; it must be 0 (the default) or more", d.name, d.v))
		}
	}
	if c.Margin > 0 && c.Margin < MinMargin {
		problems = append(problems, fmt.Sprintf("Margin is %v; it must be at least %v (or 0, the default %v): it also absorbs the stop hooks' late grace, the admin server's close (half the margin) and the exit, which a shorter margin lets run past GracePeriod", c.Margin, MinMargin, DefaultMargin))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"Limits.MaxHeaderBytes", c.Limits.MaxHeaderBytes}, {"Limits.MaxConnections", c.Limits.MaxConnections}} {
		if n.v < 0 {
			problems = append(problems, fmt.Sprintf("%s is %d; it must be 0 (the default) or more", n.name, n.v))
		}
	}
	problems = append(problems, c.appProblems()...)
	if c.delay() > 0 && c.PreStopDelay > 0 {
		problems = append(problems, fmt.Sprintf("both a drain delay (%v) and a preStop delay (%v) are set; the propagation delay belongs in one place: set DrainDelay negative (none) when the pod has a preStop sleep, or drop the preStop", c.DrainDelay, c.PreStopDelay))
	}
	switch {
	case c.DrainQuiet > 0 && c.delay() == 0 && c.PreStopDelay > 0:
		problems = append(problems, fmt.Sprintf("DrainQuiet %v needs a drain delay to end early, and the delay here is the pod's preStop sleep (%v), which the process cannot shorten: move the delay into DrainDelay (and drop the preStop) to use a quiet period", c.DrainQuiet, c.PreStopDelay))
	case c.DrainQuiet > 0 && c.delay() == 0:
		problems = append(problems, fmt.Sprintf("DrainQuiet %v needs a drain delay to end early, and DrainDelay is none: set a DrainDelay longer than DrainQuiet", c.DrainQuiet))
	case c.DrainQuiet > 0 && c.DrainQuiet >= c.delay():
		problems = append(problems, fmt.Sprintf("DrainQuiet %v must be shorter than the drain delay (%v): the quiet period ends the delay early once no request has arrived for that long", c.DrainQuiet, c.delay()))
	}
	if _, port, _ := net.SplitHostPort(c.APIAddr); !c.SingleListener && c.APIAddr == c.AdminAddr && port != "0" {
		problems = append(problems, fmt.Sprintf("APIAddr and AdminAddr are both %q; give them different ports or set SingleListener", c.APIAddr))
	}
	if b := c.Budget(); c.GracePeriod > 0 && b > c.GracePeriod {
		quit := ""
		shorten := []string{"DrainTimeout", "StopTimeout"}
		if c.QuitSidecars != nil || c.QuitSidecarsAfterFailedStartup != nil {
			quit = fmt.Sprintf(" + sidecar quit %v", c.QuitTimeout)
			shorten = append(shorten, "QuitTimeout")
		}
		if c.OnShutdown != nil {
			quit += fmt.Sprintf(" + final report %v", c.OnShutdownTimeout)
			shorten = append(shorten, "OnShutdownTimeout")
		}
		delay := fmt.Sprintf("drain delay %v", c.delay())
		if w := c.closeWindow(); w > 0 {
			delay = fmt.Sprintf("keep-alive close %v", w)
		}
		if c.delay() > 0 {
			shorten = append([]string{"DrainDelay"}, shorten...)
		}
		if c.PreStopDelay > 0 {
			shorten = append([]string{"PreStopDelay"}, shorten...)
		}
		shorten = append(shorten, "Margin")
		problems = append(problems, fmt.Sprintf(
			"shutdown needs up to %v (preStop %v + %s + drain timeout %v + stop timeout %v%s + margin %v) but GracePeriod is %v; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least %ds, or shorten %s",
			b, max(c.PreStopDelay, 0), delay, c.DrainTimeout, c.StopTimeout, quit, c.Margin, c.GracePeriod, ceilSeconds(b), orList(shorten)))
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}

// appProblems refuses what would stop the server from naming its probe
// checks: a nil app, an app without a name, two apps of one name, and app or hook names that a
// check name cannot hold (probes.CheckName): each hook becomes the
// readiness check "hook/APP/HOOK". It refuses, too, a check already
// in Probes under one of the names the server gives its own checks, and
// a Registry another serve.New has filled.
func (c *Config) appProblems() []string {
	var problems []string
	own := map[string]bool{"ping": true, "shutdown": true, "lifespan": true}
	apps := map[string]bool{}
	for i, app := range c.Apps {
		if app == nil {
			problems = append(problems, fmt.Sprintf("Apps[%d] is nil; give each entry of Apps an *lifespan.App, or leave it out", i))
			continue
		}
		if app.Name == "" {
			problems = append(problems, fmt.Sprintf("Apps[%d] has no Name; the server names each hook's readiness check hook/APP/HOOK by it: set Name", i))
			continue
		}
		if apps[app.Name] {
			problems = append(problems, fmt.Sprintf("two apps are named %q; give each app its own Name", app.Name))
			continue
		}
		apps[app.Name] = true
		for _, hook := range app.Hooks() {
			name := "hook/" + app.Name + "/" + hook
			switch err := probes.CheckName(name); {
			case err != nil:
				problems = append(problems, fmt.Sprintf("app %q, hook %q: its readiness check would be named %q: %v", app.Name, hook, name, err))
			case own[name]:
				problems = append(problems, fmt.Sprintf("app %q, hook %q: its readiness check %q has the name of another app's hook's; a '/' in an app or hook name can do that: rename one", app.Name, hook, name))
			}
			own[name] = true
		}
	}
	var taken []string
	for _, r := range c.Probes.Results() {
		if own[r.Name] {
			taken = append(taken, r.Name)
		}
	}
	if slices.Contains(taken, "ping") && slices.Contains(taken, "shutdown") && slices.Contains(taken, "lifespan") {
		// Every check a server adds: this Registry is another Server's.
		return append(problems, "Probes already holds the checks a server adds (ping, shutdown, lifespan): it was given to another serve.New; give each Server a Registry of its own (probes.New())")
	}
	for _, name := range taken {
		problems = append(problems, fmt.Sprintf("Probes already has a check named %q, a name the server gives a check of its own (ping, shutdown, lifespan, hook/APP/HOOK); rename that check", name))
	}
	return problems
}

// orList joins names as "A, B or C".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// adminCloseWait bounds the admin server's graceful close, the last step:
// a scrape or probe in flight may finish, within half the margin the
// budget leaves for the exit, and never more than a second.
func (c Config) adminCloseWait() time.Duration { return min(time.Second, c.Margin/2) }

// nilHandler reports whether h, not nil itself, holds a nil pointer or
// function (a *gin.Engine or *http.ServeMux never made, a nil
// http.HandlerFunc): a handler that panics on the first request. A nil
// pointer is refused even of a type whose ServeHTTP would not dereference
// it, as one never made is far likelier; a nil map or slice (a router of
// routes, a chain) may serve, and is left alone.
func nilHandler(h http.Handler) bool {
	switch v := reflect.ValueOf(h); v.Kind() {
	case reflect.Pointer, reflect.Func:
		return v.IsNil()
	}
	return false
}
