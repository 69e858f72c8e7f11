package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// Config is what a Server needs. Group and API are required; every other
// field has a default.
type Config struct {
	Group *lifespan.Group
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

	// Probes receives the lifespan's checks; pass one to add checks of your
	// own (dependencies, sidecars). Nil makes a new registry.
	Probes *probes.Registry
	// Metrics is served at /metrics on the admin listener when set.
	Metrics http.Handler

	// DrainDelay is T0..T1 (default 5s; 0 disables it, for a preStop sleep
	// or a process not behind a Service). DrainTimeout bounds T1..T2
	// (default 20s). StopTimeout bounds T2..T3: background tasks and every
	// stop hook together (default 10s).
	DrainDelay   time.Duration
	DrainTimeout time.Duration
	StopTimeout  time.Duration
	// GracePeriod is the pod's terminationGracePeriodSeconds; when set, New
	// checks that the whole shutdown fits in it. PreStopDelay is the
	// preStop sleep before SIGTERM, which the grace period also covers; use
	// it or DrainDelay, not both. Margin is left over for the kubelet and
	// the process exit (0 means the default, 2s).
	GracePeriod  time.Duration
	PreStopDelay time.Duration
	Margin       time.Duration

	// QuitSidecars, when set, runs after the stop hooks, bounded by
	// QuitTimeout (default 5s): the place to call a classic sidecar's quit
	// endpoint once the app no longer needs the network.
	QuitSidecars func(ctx context.Context) error
	QuitTimeout  time.Duration

	// RetryAfter is the Retry-After given by API routes before startup
	// completes (default 1s, sent in whole seconds).
	RetryAfter time.Duration

	Logger *slog.Logger
	// Observer receives the shutdown's figures (package metrics has one).
	Observer DrainObserver
	// Signals start the shutdown (nil means SIGTERM and SIGINT; an empty,
	// non-nil slice handles none); a second one forces an exit through Exit
	// (default os.Exit) with ExitForced.
	Signals []os.Signal
	Exit    func(code int)
}

// ConfigError is a configuration New refuses.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "serve: invalid configuration: " + strings.Join(e.Problems, "; ")
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.APIAddr == "" {
		c.APIAddr = ":8080"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = ":9090"
	}
	def(&c.DrainTimeout, 20*time.Second)
	def(&c.StopTimeout, 10*time.Second)
	def(&c.Margin, 2*time.Second)
	def(&c.QuitTimeout, 5*time.Second)
	def(&c.RetryAfter, time.Second)
	if c.Probes == nil {
		c.Probes = probes.New()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Signals == nil {
		c.Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	if c.Exit == nil {
		c.Exit = os.Exit
	}
}

// Budget is the longest a shutdown can take with these settings, from the
// kubelet's first action (preStop, or SIGTERM) to the process exit.
func (c *Config) Budget() time.Duration {
	b := c.PreStopDelay + c.DrainDelay + c.DrainTimeout + c.StopTimeout + c.Margin
	if c.QuitSidecars != nil {
		b += c.QuitTimeout
	}
	return b
}

func (c *Config) validate() error {
	var problems []string
	if c.Group == nil {
		problems = append(problems, "Group is nil")
	}
	if c.API == nil {
		problems = append(problems, "API handler is nil")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DrainDelay", c.DrainDelay}, {"DrainTimeout", c.DrainTimeout}, {"StopTimeout", c.StopTimeout},
		{"GracePeriod", c.GracePeriod}, {"PreStopDelay", c.PreStopDelay}, {"Margin", c.Margin}, {"QuitTimeout", c.QuitTimeout}} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("%s is %v; it must be 0 or more", d.name, d.v))
		}
	}
	if c.DrainDelay > 0 && c.PreStopDelay > 0 {
		problems = append(problems, fmt.Sprintf("both a drain delay (%v) and a preStop delay (%v) are set; the propagation delay belongs in one place: set DrainDelay to 0 when the pod has a preStop sleep, or drop the preStop", c.DrainDelay, c.PreStopDelay))
	}
	if _, port, _ := net.SplitHostPort(c.APIAddr); !c.SingleListener && c.APIAddr == c.AdminAddr && port != "0" {
		problems = append(problems, fmt.Sprintf("APIAddr and AdminAddr are both %q; give them different ports or set SingleListener", c.APIAddr))
	}
	if c.GracePeriod > 0 && c.Budget() > c.GracePeriod {
		quit := ""
		if c.QuitSidecars != nil {
			quit = fmt.Sprintf(" + sidecar quit %v", c.QuitTimeout)
		}
		problems = append(problems, fmt.Sprintf(
			"shutdown needs up to %v (preStop %v + drain delay %v + drain timeout %v + stop timeout %v%s + margin %v) but the grace period is %v; raise terminationGracePeriodSeconds to at least %d or shorten the delays",
			c.Budget(), c.PreStopDelay, c.DrainDelay, c.DrainTimeout, c.StopTimeout, quit, c.Margin, c.GracePeriod, int((c.Budget()+time.Second-1)/time.Second)))
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}

// Exit codes of a process run by serve (cmd/server uses them as they are).
const (
	ExitOK = 0
	// ExitStartup: a hook failed to start, or a signal abandoned the startup
	// (after the rollback either way).
	ExitStartup = 1
	// ExitConfig: the configuration was refused before anything started.
	ExitConfig = 2
	// ExitUnclean: the shutdown completed but something failed in it (a stop
	// hook, a background task, requests cut off by the drain timeout).
	ExitUnclean = 3
	// ExitForced: a second signal cut the shutdown short.
	ExitForced = 4
)

// StartupError wraps the error of a startup that failed.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return "startup failed: " + e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

// ExitCode maps Run's error to the process exit code.
func ExitCode(err error) int {
	var se *StartupError
	var ce *ConfigError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ce):
		return ExitConfig
	case errors.As(err, &se):
		return ExitStartup
	default:
		return ExitUnclean
	}
}
