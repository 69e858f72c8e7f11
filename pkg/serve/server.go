package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// forceDebounce is how long after the first OS signal another one is
// ignored instead of forcing an exit: a container runtime and a process
// manager that both forward one SIGTERM must not skip the drain.
const forceDebounce = time.Second

// Server runs a group of apps behind an API server and an admin server, and
// follows the shutdown timeline its [Signals] name.
type Server struct {
	cfg  Config
	sig  *Signals
	gate *gate
	// base is every API request's context: it holds the apps' state under
	// lifespan.StateContextKey.
	base context.Context
	// values is Run's context without its cancellation: the apps' hooks
	// (start and stop), OnShutdown, the sidecars' quit and the background
	// checks get its values (a logger, a tracer) beneath their own
	// deadlines. Written by Run before anything reads it.
	values context.Context

	// hooks is each app's hooks at New, which its readiness checks were
	// made for: Run refuses apps given hooks after it.
	hooks    [][]string
	ran      atomic.Bool
	fireOnce sync.Once
	markMu   sync.Mutex // mark's: signals in turn, each taking logMu before the next signals
	logMu    sync.Mutex // mark's: one signal's line written before the next signal's
	reason   string     // what fired ShutdownInitiated; read after it is signalled
	bySignal bool       // an OS signal fired it (the pod is being stopped); as reason

	apiLn, adminLn net.Listener
	// apiServed and adminServed are what the servers accept from: the
	// listeners above, each under its connection cap.
	apiServed, adminServed capped
	apiSrv, adminSrv       *http.Server
	serving                sync.WaitGroup
	stopProbes             context.CancelFunc
	checksStopped          atomic.Bool // the background checks were told to stop (endChecksWithin)
	serveMu                sync.Mutex
	serveErrs              []error // servers that failed (not closed by the shutdown)

	// The shutdown's figures, each written once by the step that knows it.
	drainOnce       sync.Once
	inFlightAtDrain atomic.Int64
	cutOff          int64
	errs            []error // the shutdown's failures, in timeline order
	report          atomic.Pointer[ShutdownReport]

	after func(time.Duration) <-chan time.Time // time.After; tests hold the drain delay
}

// New validates cfg and registers the server's probe checks (see
// registerChecks). It returns a *ConfigError listing every problem found.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sig := newSignals()
	s := &Server{cfg: cfg, sig: sig, gate: newGate(cfg.API, sig, cfg.RetryAfter), after: time.After, values: context.Background()}
	s.base = context.WithValue(context.Background(), lifespan.StateContextKey, lifespan.Values(s.cfg.Apps))
	s.registerChecks()
	return s, nil
}

// Signals returns the server's lifecycle signals.
func (s *Server) Signals() *Signals { return s.sig }

// APIAddr returns the API listener's address; nil before Listening.
func (s *Server) APIAddr() net.Addr {
	if !s.sig.Listening.Signalled() {
		return nil
	}
	return s.apiLn.Addr()
}

// AdminAddr returns the admin listener's address (the API's with
// SingleListener); nil before Listening.
func (s *Server) AdminAddr() net.Addr {
	if !s.sig.Listening.Signalled() {
		return nil
	}
	return s.adminLn.Addr()
}

// Budget is the longest this server's shutdown can take, defaults applied
// (see Config.Budget).
func (s *Server) Budget() time.Duration { return s.cfg.Budget() }

// GracePeriod is Config.GracePeriod: the pod's grace period, 0 when unknown.
func (s *Server) GracePeriod() time.Duration { return s.cfg.GracePeriod }

// PreStopDelay is Config.PreStopDelay: the pod's preStop sleep, which the
// grace period counts and the shutdown (from SIGTERM, after it) does not;
// 0 for none.
func (s *Server) PreStopDelay() time.Duration { return max(s.cfg.PreStopDelay, 0) }

// APIHandler returns the handler the API listener serves: Config.API behind
// the request gate (503 until StartupComplete, the drain's accounting).
// Use it to mount berth's API in another server, or to measure its cost.
// Handlers read the apps' state from the request's context, which the
// API listener gives every request: a server that mounts APIHandler takes
// BaseContext as its own (http.Server{Handler: s.APIHandler(),
// BaseContext: s.BaseContext}), or, when its BaseContext does more, adds
// the state to the context it makes (context.WithValue(ctx,
// lifespan.StateContextKey, lifespan.Values(apps))); else its handlers
// find no state.
func (s *Server) APIHandler() http.Handler { return s.gate }

// BaseContext is the context every request of the API listener starts
// from (http.Server.BaseContext): it holds the apps' state, a
// lifespan.Values reading each app of Config.Apps in order, under
// lifespan.StateContextKey. Handlers read it from the request's context at
// no cost per request (ginberth.Get does).
func (s *Server) BaseContext(net.Listener) context.Context { return s.base }

// InFlight is the number of API requests being served now.
func (s *Server) InFlight() int64 { return s.gate.inFlight.Load() }

// Report returns the shutdown's report once ShutdownComplete has been
// signalled; ok is false until then.
func (s *Server) Report() (r ShutdownReport, ok bool) {
	if !s.sig.ShutdownComplete.Signalled() {
		return ShutdownReport{}, false
	}
	r = *s.report.Load()
	r.Total = between(s.sig.ShutdownInitiated, s.sig.ShutdownComplete)
	return r, true
}

// ServedDuringDelay is the number of API requests that have arrived
// between ReadinessFailing and DrainStarted, so far: the figure the
// shutdown report gives at the end, readable while the delay runs.
func (s *Server) ServedDuringDelay() int64 { return s.gate.duringDelay.Load() }

// TurnedAway is the number of API requests answered 503 because startup
// had not completed.
func (s *Server) TurnedAway() int64 { return s.gate.turnedAway.Load() }

// Shutdown starts the graceful shutdown, as a signal would. It returns at
// once; Run returns when the shutdown is over.
func (s *Server) Shutdown() { s.fire("shutdown called", false) }

// fire signals ShutdownInitiated with its reason, once; bySignal says an
// OS signal fired it.
func (s *Server) fire(reason string, bySignal bool) {
	s.fireOnce.Do(func() {
		s.reason, s.bySignal = reason, bySignal
		s.mark(s.sig.ShutdownInitiated, "reason", reason)
	})
}

// mark signals sig and logs it, with the time since ShutdownInitiated once
// the shutdown has begun.
func (s *Server) mark(sig *Signal, attrs ...any) {
	// Signalling wakes whoever waits on the signal, who may mark the next
	// one at once: its line must wait for this one's, but not the signal,
	// which readiness and the gate read (a slow log sink must not keep
	// /readyz passing after T0). Hand over hand: the next signal comes
	// once this one holds logMu, and its line once this one's is written.
	s.markMu.Lock()
	if !sig.signal() {
		s.markMu.Unlock()
		return
	}
	s.logMu.Lock()
	s.markMu.Unlock()
	defer s.logMu.Unlock()
	if t0 := s.sig.ShutdownInitiated; t0.Signalled() {
		attrs = append(attrs, slog.Float64("since_shutdown_seconds", sig.At().Sub(t0.At()).Seconds()))
	}
	s.cfg.Logger.Info(sig.Name(), attrs...)
}

// Run binds the listeners, serves the probes at once and the API behind the
// request gate, starts the apps, and waits for an OS signal, Shutdown or
// ctx to end; then it follows the shutdown timeline (see [Signals]) and
// returns nil for a clean shutdown, a *StartupError when startup failed or
// was abandoned, a *ConfigError when a listener cannot be opened, or the
// shutdown's joined errors. ExitCode maps the result to an exit status. A
// Server runs once: a second Run returns a *ConfigError at once. The apps'
// hooks, their stops, OnShutdown, QuitSidecars (or
// QuitSidecarsAfterFailedStartup) and the background checks get contexts
// that carry ctx's values but not its cancellation: ctx ending begins the
// shutdown, whose steps then end each of them by its own deadline.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return &ConfigError{Problems: []string{"Run called a second time; a Server runs once (make another with New)"}}
	}
	if err := s.hooksUnchanged(); err != nil {
		return err
	}
	s.values = context.WithoutCancel(ctx)
	if err := s.listen(); err != nil {
		// Nothing started, but a Job's pod that is not restarted would
		// still wait on its sidecars: they are told to quit as after a
		// failed startup. The run's error stays the listener's, which the
		// caller reports once, in its own words; a warning names it first,
		// so that the log says why before the quit's lines.
		if s.cfg.QuitSidecarsAfterFailedStartup != nil {
			s.cfg.Logger.Warn("a listener cannot be opened; telling the sidecars to quit before exiting", "error", err.Error())
			_ = s.quitSidecars(s.cfg.QuitSidecarsAfterFailedStartup)
		}
		return err
	}
	defer s.watch(ctx)()
	if ctx.Err() != nil { // done already: begin the shutdown now, not when watch's goroutine runs
		s.fire("context done", false)
	}
	s.serve()
	if err := s.startup(); err != nil {
		s.startupFailed(err)
		return err
	}
	return s.shutdown()
}

// startupFailed ends a run whose startup failed or was abandoned: the
// hooks that started were stopped already; OnShutdown gets a report of no
// drain with the startup's error (its figures, such as the failed hook,
// would otherwise end with the process, before any scrape), classic
// sidecars are told to quit if QuitSidecarsAfterFailedStartup is set
// (with QuitSidecars, if set, when an OS signal abandoned the startup),
// and the servers stop. How the startup ended is read once, on entry: a
// shutdown asked for while OnShutdown runs changes neither the report's
// reason nor the quit.
func (s *Server) startupFailed(err error) {
	abandoned := s.sig.ShutdownInitiated.Signalled()
	reason := "startup failed"
	if abandoned {
		reason = s.reason
	}
	// Classic sidecars are not told to quit unless the config has a quit
	// for a failed startup (a Job's pod that is not restarted): in a
	// Deployment the container restarts in the same pod, and a sidecar
	// told to quit would restart beside it, and might not be ready when
	// the app waits for it again.
	quit := s.cfg.QuitSidecarsAfterFailedStartup
	if quit != nil && abandoned && s.bySignal && s.cfg.QuitSidecars != nil {
		// Abandoned for a signal: the pod is being stopped, its sidecars
		// with it, and one that refuses the connection is gone, not yet
		// to start, as the shutdown's own quit reads it.
		quit = s.cfg.QuitSidecars
	}
	s.onShutdown(ShutdownReport{Reason: reason, Err: err})
	_ = s.quitSidecars(quit) // nil: none; logged; the run's error stays the startup's
	s.stopServers()
}

// listenAdvice ends a listener's refusal: what would be valid.
const listenAdvice = "want an address this process may listen on: a port nothing else listens on, and not the other listener's (ports below 1024 need the right to bind them)"

// listen binds the API and admin listeners.
func (s *Server) listen() error {
	apiLn, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return &ConfigError{Problems: []string{fmt.Sprintf("APIAddr=%q: %v; %s", s.cfg.APIAddr, err, listenAdvice)}}
	}
	adminLn := apiLn
	if !s.cfg.SingleListener {
		if adminLn, err = net.Listen("tcp", s.cfg.AdminAddr); err != nil {
			apiLn.Close()
			return &ConfigError{Problems: []string{fmt.Sprintf("AdminAddr=%q: %v; %s", s.cfg.AdminAddr, err, listenAdvice)}}
		}
	}
	s.apiLn, s.adminLn = apiLn, adminLn
	return nil
}

// serve starts the admin and API servers and the background probe checks,
// and signals Listening.
func (s *Server) serve() {
	admin, apiHandler := s.handlers()
	errLog := slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)
	s.apiSrv = s.cfg.Limits.server(apiHandler)
	s.adminSrv = adminLimits.server(admin)
	s.apiSrv.ErrorLog, s.adminSrv.ErrorLog = errLog, errLog
	s.apiSrv.BaseContext = s.BaseContext
	// DrainStarted is signalled once http.Server.Shutdown has closed the
	// listener; the drain step signals it again (a no-op) in case this
	// callback has not run by the time Shutdown returns.
	s.apiSrv.RegisterOnShutdown(s.drainStarted)
	serveOn := func(name string, srv *http.Server, ln net.Listener) {
		s.serving.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.cfg.Logger.Error("server failed", "server", name, "error", err)
				s.serveMu.Lock()
				s.serveErrs = append(s.serveErrs, fmt.Errorf("%s server failed: %w", name, err))
				s.serveMu.Unlock()
				s.fire(name+" server failed", false)
			}
		})
	}
	if !s.cfg.SingleListener {
		s.adminServed = adminLimits.listener(s.adminLn, s.adminSrv)
		serveOn("admin", s.adminSrv, s.adminServed)
	}
	s.apiServed = s.cfg.Limits.listener(s.apiLn, s.apiSrv)
	serveOn("api", s.apiSrv, s.apiServed)
	var probeCtx context.Context
	probeCtx, s.stopProbes = context.WithCancel(s.values)
	s.cfg.Probes.Start(probeCtx)
	s.mark(s.sig.Listening, "api", s.apiLn.Addr().String(), "admin", s.adminLn.Addr().String(), "single_listener", s.cfg.SingleListener)
}

// handlers returns the admin server's handler (the probes and /metrics)
// and the API server's (the gate; with SingleListener, the admin handler
// with the gate at "/").
func (s *Server) handlers() (admin, api http.Handler) {
	mux := http.NewServeMux()
	probeHandler := s.cfg.Probes.Handler(probes.HandlerOptions{ShowReasons: !s.cfg.SingleListener})
	for _, p := range []string{"/livez", "/readyz", "/startupz"} {
		mux.Handle(p, probeHandler)
		mux.Handle(p+"/", probeHandler)
	}
	if s.cfg.Metrics != nil {
		mux.Handle("/metrics", s.cfg.Metrics)
	}
	admin = nosniff(mux)
	if !s.cfg.SingleListener {
		return admin, s.gate
	}
	mux.Handle("/", s.gate)
	return admin, admin
}

// watch turns OS signals and the end of ctx into ShutdownInitiated, and an
// OS signal more than forceDebounce after the first into a forced exit. It
// returns the function that stops watching.
func (s *Server) watch(ctx context.Context) (stop func()) {
	sigs := make(chan os.Signal, 2)
	if len(s.cfg.ShutdownOn) > 0 {
		signal.Notify(sigs, s.cfg.ShutdownOn...)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if first, watching := s.awaitShutdown(ctx, sigs, done); watching {
			s.awaitForce(first, sigs, done)
		}
	})
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}

// awaitShutdown waits for the first of an OS signal, the end of ctx and a
// shutdown begun otherwise, and begins the shutdown. first is when the OS
// signal came: zero for a shutdown begun otherwise (Shutdown, ctx, a failed
// server), so that the first signal only joins it and never forces an
// exit. watching is false when done closed first.
func (s *Server) awaitShutdown(ctx context.Context, sigs <-chan os.Signal, done <-chan struct{}) (first time.Time, watching bool) {
	select {
	case sig := <-sigs:
		first = time.Now()
		s.fire(sig.String(), true)
	case <-ctx.Done():
		s.fire("context done", false)
	case <-s.sig.ShutdownInitiated.Done():
	case <-done:
		return first, false
	}
	return first, true
}

// awaitForce forces an exit on an OS signal more than forceDebounce after
// the first (see awaitShutdown), until done closes.
func (s *Server) awaitForce(first time.Time, sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case sig := <-sigs:
			if first.IsZero() {
				first = time.Now()
				s.cfg.Logger.Info("signal received: the shutdown is under way already; another one forces an exit", "signal", sig.String())
				continue
			}
			if since := time.Since(first); since < forceDebounce {
				s.cfg.Logger.Warn("signal ignored: it came too soon after the first to force an exit", "signal", sig.String(), slog.Float64("since_first_signal_seconds", since.Seconds()))
				continue
			}
			s.force(sig)
			return
		case <-done:
			return
		}
	}
}

// force handles a second signal: log what is still running and exit.
func (s *Server) force(sig os.Signal) {
	latest := "none"
	if l := s.sig.Latest(); l != nil {
		latest = l.Name()
	}
	s.cfg.Logger.Error("second signal: exiting at once",
		"signal", sig.String(), "last_signal", latest,
		"in_flight_requests", s.gate.inFlight.Load(), "running", s.cfg.Apps.Running(),
		"exit_code", ExitForced)
	s.cfg.Exit(ExitForced)
}

// startup starts the apps and signals StartupComplete, unless a start fails
// or ShutdownInitiated comes first, which abandons it (after the rollback).
func (s *Server) startup() error {
	if s.sig.ShutdownInitiated.Signalled() {
		s.cfg.Logger.Warn("shutdown requested before startup; starting no app", "reason", s.reason)
		return s.startupError(fmt.Errorf("the shutdown (%s) began before the startup; no app was started", s.reason))
	}
	s.observeRollbacks()
	ctx, abort := context.WithCancel(s.values)
	defer abort()
	started := make(chan error, 1)
	go func() { started <- s.cfg.Apps.Start(ctx) }()
	var err error
	select {
	case err = <-started:
	case <-s.sig.ShutdownInitiated.Done():
		s.cfg.Logger.Warn("shutdown requested during startup; abandoning it", "reason", s.reason)
		// Stop abandons each app's start and rolls back what started,
		// within the stop timeout from T0 (the budget has no drain to
		// count here); the rollback's errors come back from Start.
		// The background checks end first, as in a shutdown, before the
		// rollback releases what they check.
		s.endChecksWithin(s.cfg.StopTimeout/10, "the startup's rollback")
		stopCtx, cancel := context.WithDeadline(s.values, s.sig.ShutdownInitiated.At().Add(s.cfg.StopTimeout))
		stopErr := s.cfg.Apps.Stop(stopCtx)
		cancel()
		abort()
		if err = <-started; err == nil {
			// The startup completed just before Stop reached it, and Stop
			// then stopped the apps: the startup is abandoned all the same
			// (the API never served), with what stopping them reported.
			err = errors.Join(fmt.Errorf("the shutdown (%s) began as the startup completed; the apps were stopped", s.reason), stopErr)
		} else {
			// Start's own error reads as the abandonment's effect (context
			// canceled, or, for an app of a Group that Stop reached before
			// its turn, "not started"): say what caused it.
			err = fmt.Errorf("the shutdown (%s) abandoned the startup: %w", s.reason, err)
		}
	}
	if err != nil {
		se := s.startupError(err)
		s.cfg.Logger.Error("startup failed; every hook that started was stopped", "error", se.Err)
		return se
	}
	// The background checks ran while the hooks were starting; run them
	// again so the first readiness verdict describes the started service.
	// A shutdown meanwhile cancels them rather than waiting them out.
	refresh, cancel := context.WithCancel(s.values)
	go func() {
		select {
		case <-s.sig.ShutdownInitiated.Done():
			cancel()
		case <-refresh.Done():
		}
	}()
	s.cfg.Probes.Refresh(refresh)
	cancel()
	// Every hook may have finished even as the shutdown began; then the
	// shutdown runs as usual, from a complete startup.
	s.mark(s.sig.StartupComplete, "apps", len(s.cfg.Apps))
	return nil
}

// observeRollbacks has each app tell the server when its failed startup
// is about to roll back (lifespan.RollbackStarting, before the first stop),
// so that the background checks end first, as they do before a shutdown's
// stops and an abandoned startup's rollback.
func (s *Server) observeRollbacks() {
	for _, app := range s.cfg.Apps {
		app.Observer = lifespan.Observers(app.Observer, func(e lifespan.Event) {
			if e.Kind == lifespan.RollbackStarting {
				s.endChecksWithin(s.cfg.StopTimeout/10, "the startup's rollback")
			}
		})
	}
}

// startupError is the StartupError for err, led by the errors of the
// servers that failed, if one did: a server that fails during startup
// abandons it, and the abandoned hook's own error (its context cancelled)
// would not say why.
func (s *Server) startupError(err error) *StartupError {
	return &StartupError{Err: errors.Join(s.ledByServerErrors(err)...)}
}

// ledByServerErrors returns the errors of the servers that failed, then
// errs: a failed server is why the run ended, whatever followed.
func (s *Server) ledByServerErrors(errs ...error) []error {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	return append(slices.Clone(s.serveErrs), errs...)
}

// stopServers stops the background checks (unless a shutdown, or a
// startup's rollback, stopped them before the hooks already; a startup
// that failed with nothing started has none to roll back) and the admin
// server (and the API server, if it still runs), and waits for them. The admin server
// closes gracefully within adminCloseWait, then closes what is still open.
func (s *Server) stopServers() {
	s.stopProbes()
	// The checks, unless the shutdown or the startup's rollback stopped
	// them already: half the admin server's window, which the close then
	// gets afresh.
	s.endChecksWithin(s.cfg.adminCloseWait()/2, "the servers stop")
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.adminCloseWait())
	defer cancel()
	if s.adminSrv.Shutdown(ctx) != nil {
		_ = s.adminSrv.Close() // a scrape still running: its connection goes with Run
	}
	_ = s.apiSrv.Close()
	s.serving.Wait()
}

// nosniff marks every response of h X-Content-Type-Options: nosniff: the
// admin server's /metrics and its 404s, as the probes and the gate mark
// theirs.
func nosniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Content-Type-Options"] = nosniffValue
		h.ServeHTTP(w, r)
	})
}

// nosniffValue is the header's one value, shared by every response.
var nosniffValue = []string{"nosniff"}

// hooksUnchanged refuses apps whose hooks changed after New: New made each
// hook's readiness check and checked its name, so a hook appended later
// would start with neither.
func (s *Server) hooksUnchanged() error {
	var problems []string
	for i, app := range s.cfg.Apps {
		if now := app.Hooks(); !slices.Equal(now, s.hooks[i]) {
			problems = append(problems, fmt.Sprintf("app %q has hooks %q, where it had %q at New: a hook's readiness check is made, and its name checked, by New; append every hook before calling New",
				app.Name, now, s.hooks[i]))
		}
	}
	if problems != nil {
		return &ConfigError{Problems: problems}
	}
	return nil
}
