package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/pkg/serve"
)

// sidecarConfig configures `server sidecar`, a tiny proxy-like sidecar for
// tests and demos: a readiness endpoint and a quit endpoint, in the shapes
// Istio and Linkerd use.
type sidecarConfig struct {
	Addr       string        `env:"BERTH_SIDECAR_ADDR" envDefault:":15021"`
	ReadyDelay time.Duration `env:"BERTH_SIDECAR_READY_DELAY" envDefault:"0s"`
	// Hold is how long the sidecar keeps serving after SIGTERM: 0 exits at
	// once (a native sidecar, stopped after the app); a classic sidecar
	// holds until the app calls its quit endpoint.
	Hold time.Duration `env:"BERTH_SIDECAR_HOLD" envDefault:"0s"`
	// debounce is how soon after the first signal a second one is the
	// same signal forwarded twice, and ignored (0: a second, serve's rule).
	debounce time.Duration
}

func runSidecar(environ map[string]string, log *slog.Logger) int {
	var cfg sidecarConfig
	problems := config.Parse(&cfg, environ)
	if p := config.ListenAddrProblem("BERTH_SIDECAR_ADDR", cfg.Addr); p != "" {
		problems = append(problems, p)
	}
	if f := environ["BERTH_LOG_FORMAT"]; f != "" { // empty: the default, as for the service
		if p := config.LogFormatProblem(f); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		log.Error("refusing to start", refusal(&config.Error{Problems: problems})...)
		return serve.ExitConfig
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		// Like serve's: a listen failure is the configuration's to fix.
		log.Error("refusing to start", "error", fmt.Sprintf("BERTH_SIDECAR_ADDR=%q: %v", cfg.Addr, err))
		return serve.ExitConfig
	}
	return serveSidecar(ln, cfg, log)
}

// serveSidecar serves on ln until the quit endpoint is called or a signal
// (plus the hold) ends it.
func serveSidecar(ln net.Listener, cfg sidecarConfig, log *slog.Logger) int {
	// Watch the signals before serving: once the sidecar answers, a signal
	// ends it as documented. SIGHUP drains like the service's.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
	defer signal.Stop(sigs)
	readyAt := time.Now().Add(cfg.ReadyDelay)
	quit := make(chan string, 1)
	mux := http.NewServeMux()
	ready := func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(readyAt) {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}
	mux.HandleFunc("GET /ready", ready)
	mux.HandleFunc("GET /healthz/ready", ready)
	quitHandler := func(w http.ResponseWriter, r *http.Request) {
		log.Info("sidecar quit requested", "path", r.URL.Path, "from", r.RemoteAddr)
		fmt.Fprintln(w, "bye")
		select {
		case quit <- "quit endpoint":
		default:
		}
	}
	mux.HandleFunc("POST /quitquitquit", quitHandler)
	mux.HandleFunc("POST /shutdown", quitHandler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- srv.Serve(ln) }()
	log.Info("sidecar listening", "addr", ln.Addr().String(), "ready_delay", cfg.ReadyDelay, "hold", cfg.Hold)

	var reason string
	select {
	case err := <-failed:
		log.Error("sidecar server failed", "error", err)
		return 1
	case reason = <-quit:
	case sig := <-sigs:
		log.Info("sidecar got signal", "signal", sig.String(), "hold", cfg.Hold)
		reason = sig.String()
		if cfg.Hold > 0 {
			reason = holdOn(cfg, time.Now(), quit, sigs, log)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("sidecar shutdown", "error", err)
	}
	log.Info("sidecar exiting", "reason", reason)
	return 0
}

// holdOn keeps a classic sidecar serving after the signal that came at
// first, until the app calls the quit endpoint, the hold is over, or a
// second signal asks again, and says which. A second signal within the
// debounce of the first is the same SIGTERM forwarded twice (a runtime
// and a process manager both passing it on), and is ignored, as serve
// ignores it: it must not pull the network from under the app's drain.
func holdOn(cfg sidecarConfig, first time.Time, quit <-chan string, sigs <-chan os.Signal, log *slog.Logger) string {
	debounce := cfg.debounce
	if debounce == 0 {
		debounce = time.Second
	}
	hold := time.NewTimer(cfg.Hold)
	defer hold.Stop()
	for {
		select {
		case reason := <-quit:
			return reason
		case <-hold.C:
			return "hold over"
		case sig := <-sigs:
			if since := time.Since(first); since < debounce {
				log.Warn("sidecar signal ignored: it came too soon after the first to end the hold", "signal", sig.String(),
					slog.Float64("since_first_signal_seconds", since.Seconds()))
				continue
			}
			return "second signal " + sig.String()
		}
	}
}
