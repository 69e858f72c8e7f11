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
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// Server runs a lifespan group behind an API server and an admin server.
type Server struct {
	cfg  Config
	gate *gate

	listening chan struct{}
	apiAddr   net.Addr
	adminAddr net.Addr

	ready    chan struct{}
	draining chan struct{}

	trigger     chan string
	triggerOnce sync.Once
	stage       atomic.Value // string: where Run is, for logs on a forced exit

	// Test seams: the drain delay's timer and a stage observer.
	after   func(time.Duration) <-chan time.Time
	onStage func(string)
}

// New validates cfg and registers the lifespan's probe checks: one
// readiness check per hook ("hook/APP/HOOK", failing until that hook has
// started), "shutdown" (failing from T0), and the startup check "lifespan"
// (passing once every app is ready). It returns a *ConfigError listing
// every problem it found.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		gate:      newGate(cfg.API, cfg.RetryAfter),
		listening: make(chan struct{}),
		ready:     make(chan struct{}),
		draining:  make(chan struct{}),
		trigger:   make(chan string, 1),
		after:     time.After,
	}
	s.setStage("new")
	s.registerChecks()
	return s, nil
}

func (s *Server) registerChecks() {
	reg := s.cfg.Probes
	reg.Add(probes.Liveness, probes.Check{Name: "ping", Run: func(context.Context) error { return nil }})
	for _, app := range s.cfg.Group.Apps() {
		for _, hook := range app.Hooks() {
			reg.Add(probes.Readiness, probes.Check{Name: "hook/" + app.Name() + "/" + hook, Run: func(context.Context) error {
				if st := app.HookStatus(hook); st != lifespan.HookUp {
					return fmt.Errorf("hook %s", st)
				}
				return nil
			}})
		}
	}
	reg.Add(probes.Readiness, probes.Check{Name: "shutdown", Run: func(context.Context) error {
		if s.gate.draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}})
	reg.Add(probes.Startup|probes.Readiness, probes.Check{Name: "lifespan", Run: func(context.Context) error {
		for _, app := range s.cfg.Group.Apps() {
			select {
			case <-app.Ready():
			default:
				return fmt.Errorf("app %q is %s", app.Name(), app.Phase())
			}
		}
		return nil
	}})
}

// Listening is closed once both listeners are bound; APIAddr and AdminAddr
// are valid from then on.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// APIAddr returns the API listener's address.
func (s *Server) APIAddr() net.Addr { return s.apiAddr }

// AdminAddr returns the admin listener's address (the API's with
// SingleListener).
func (s *Server) AdminAddr() net.Addr { return s.adminAddr }

// Budget is the longest this server's shutdown can take with its settings,
// defaults applied (see Config.Budget).
func (s *Server) Budget() time.Duration { return s.cfg.Budget() }

// APIHandler returns the handler the API listener serves: Config.API behind
// the startup gate (503 until ready) and the drain's accounting. Use it to
// mount berth's API in another server, or to measure its overhead.
func (s *Server) APIHandler() http.Handler { return s.gate }

// Ready is closed once startup completed and the API serves requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Draining is closed at T0, when the shutdown begins.
func (s *Server) Draining() <-chan struct{} { return s.draining }

func (s *Server) setStage(stage string) {
	s.stage.Store(stage)
	if s.onStage != nil {
		s.onStage(stage)
	}
}

// Shutdown starts the graceful shutdown, as a signal would. It returns at
// once; Run returns when the shutdown is over.
func (s *Server) Shutdown() { s.fire("shutdown called") }

func (s *Server) fire(reason string) {
	s.triggerOnce.Do(func() { s.trigger <- reason })
}

// Run binds the listeners, serves probes at once and the API behind the
// startup gate, starts the lifespan group, and waits for a signal, Shutdown
// or ctx to end; then it follows the shutdown timeline (see the package
// doc) and returns nil for a clean shutdown, a *StartupError when startup
// failed, or the shutdown's joined errors. ExitCode maps the result to an
// exit status. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Logger
	apiLn, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return &ConfigError{Problems: []string{fmt.Sprintf("listen on API address %q: %v", s.cfg.APIAddr, err)}}
	}
	adminLn := apiLn
	if !s.cfg.SingleListener {
		if adminLn, err = net.Listen("tcp", s.cfg.AdminAddr); err != nil {
			apiLn.Close()
			return &ConfigError{Problems: []string{fmt.Sprintf("listen on admin address %q: %v", s.cfg.AdminAddr, err)}}
		}
	}
	s.apiAddr, s.adminAddr = apiLn.Addr(), adminLn.Addr()

	adminMux := http.NewServeMux()
	probeHandler := s.cfg.Probes.Handler(probes.HandlerOptions{ShowReasons: !s.cfg.SingleListener})
	for _, p := range []string{"/livez", "/readyz", "/startupz"} {
		adminMux.Handle(p, probeHandler)
		adminMux.Handle(p+"/", probeHandler)
	}
	if s.cfg.Metrics != nil {
		adminMux.Handle("/metrics", s.cfg.Metrics)
	}
	apiHandler := http.Handler(s.gate)
	if s.cfg.SingleListener {
		adminMux.Handle("/", s.gate)
		apiHandler = adminMux
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	apiSrv := &http.Server{Handler: apiHandler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second, ErrorLog: errLog}
	adminSrv := &http.Server{Handler: adminMux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}

	sigs := make(chan os.Signal, 2)
	if len(s.cfg.Signals) > 0 {
		signal.Notify(sigs, s.cfg.Signals...)
		defer signal.Stop(sigs)
	}

	var serving sync.WaitGroup
	serveOn := func(name string, srv *http.Server, ln net.Listener) {
		serving.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("server failed", "server", name, "error", err)
				s.fire(name + " server failed")
			}
		})
	}
	if !s.cfg.SingleListener {
		serveOn("admin", adminSrv, adminLn)
	}
	serveOn("api", apiSrv, apiLn)
	probeCtx, stopProbes := context.WithCancel(context.WithoutCancel(ctx))
	s.cfg.Probes.Start(probeCtx)
	close(s.listening)
	log.Info("listening", "api", s.apiAddr.String(), "admin", s.adminAddr.String(), "single_listener", s.cfg.SingleListener)

	// Wait for the first trigger from here on; a second signal forces an exit.
	go func() {
		select {
		case sig := <-sigs:
			s.fire(sig.String())
		case <-ctx.Done():
			s.fire("context done")
		case <-probeCtx.Done():
			return
		}
		select {
		case sig := <-sigs:
			s.force(sig)
		case <-probeCtx.Done():
		}
	}()

	finish := func() {
		stopProbes()
		s.cfg.Probes.Stop()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = adminSrv.Shutdown(shutdownCtx)
		_ = apiSrv.Close()
		serving.Wait()
	}

	s.setStage("starting")
	startCtx, abortStart := context.WithCancel(context.WithoutCancel(ctx))
	started := make(chan error, 1)
	go func() { started <- s.cfg.Group.Start(startCtx) }()
	var reason string
	select {
	case err = <-started:
	case reason = <-s.trigger:
		log.Warn("shutdown requested during startup; abandoning it", "reason", reason)
		abortStart()
		err = <-started
	}
	abortStart()
	if err != nil {
		s.setStage("failed")
		log.Error("startup failed; every hook that started was stopped", "error", err)
		finish()
		return &StartupError{Err: err}
	}
	if reason != "" { // abandoned, yet every hook finished first
		return s.shutdown(reason, apiSrv, finish)
	}
	s.gate.ready.Store(true)
	close(s.ready)
	s.setStage("ready")
	log.Info("ready", "apps", len(s.cfg.Group.Apps()))
	return s.shutdown(<-s.trigger, apiSrv, finish)
}

func (s *Server) shutdown(reason string, apiSrv *http.Server, finish func()) error {
	log := s.cfg.Logger
	rep := DrainReport{Signal: reason}
	t0 := time.Now()

	// T0: readiness fails, responses ask clients to reconnect elsewhere.
	s.gate.draining.Store(true)
	s.cfg.Group.BeginDrain()
	close(s.draining)
	s.setStage("draining")
	log.Info("shutdown T0: readiness now failing; still serving during the drain delay", "reason", reason, "drain_delay", s.cfg.DrainDelay)
	if s.cfg.DrainDelay > 0 {
		<-s.after(s.cfg.DrainDelay)
	}
	s.gate.delayOver.Store(true)
	rep.Delay = time.Since(t0)
	rep.ServedDuringDelay = s.gate.duringWait.Load()
	rep.InFlightAtDelayEnd = s.gate.inFlight.Load()

	// T1: stop accepting, wait for in-flight requests.
	apiSrv.RegisterOnShutdown(func() { s.setStage("listeners-closed") })
	t1 := time.Now()
	log.Info("shutdown T1: no longer accepting; waiting for in-flight requests", "in_flight", rep.InFlightAtDelayEnd, "served_during_delay", rep.ServedDuringDelay, "drain_timeout", s.cfg.DrainTimeout)
	var errs []error
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	if err := apiSrv.Shutdown(drainCtx); err != nil {
		rep.CutOff = s.gate.inFlight.Load()
		_ = apiSrv.Close()
		errs = append(errs, fmt.Errorf("drain: %d requests still running after the %v drain timeout were cut off: %w", rep.CutOff, s.cfg.DrainTimeout, err))
	}
	cancel()
	rep.Drain = time.Since(t1)

	// T2..T3: background tasks, then stop hooks in reverse.
	s.setStage("stopping")
	t2 := time.Now()
	log.Info("shutdown T2: stopping background tasks, then hooks in reverse", "stop_timeout", s.cfg.StopTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), s.cfg.StopTimeout)
	if err := s.cfg.Group.Stop(stopCtx); err != nil {
		errs = append(errs, err)
	}
	cancel()
	rep.Stop = time.Since(t2)

	// T3: sidecars may go now that the app needs no network.
	if s.cfg.QuitSidecars != nil {
		s.setStage("quitting-sidecars")
		t3 := time.Now()
		quitCtx, cancel := context.WithTimeout(context.Background(), s.cfg.QuitTimeout)
		if err := s.cfg.QuitSidecars(quitCtx); err != nil {
			errs = append(errs, fmt.Errorf("quit sidecars: %w", err))
		}
		cancel()
		rep.Quit = time.Since(t3)
	}
	s.setStage("stopping-admin")
	finish()
	s.setStage("stopped")
	rep.Total = time.Since(t0)
	rep.Err = errors.Join(errs...)
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveDrain(rep)
	}
	attrs := []any{"reason", rep.Signal, "delay", rep.Delay, "served_during_delay", rep.ServedDuringDelay,
		"in_flight_at_t1", rep.InFlightAtDelayEnd, "drain", rep.Drain, "cut_off", rep.CutOff,
		"stop", rep.Stop, "sidecar_quit", rep.Quit, "total", rep.Total}
	if rep.Err != nil {
		log.Error("shutdown complete with errors", append(attrs, "error", rep.Err)...)
	} else {
		log.Info("shutdown complete", attrs...)
	}
	return rep.Err
}

// force handles a second signal: log what is still running and exit.
func (s *Server) force(sig os.Signal) {
	s.cfg.Logger.Error("second signal: exiting at once",
		"signal", sig.String(), "stage", s.stage.Load().(string),
		"in_flight_requests", s.gate.inFlight.Load(), "running", s.cfg.Group.Running(),
		"exit_code", ExitForced)
	s.cfg.Exit(ExitForced)
}
