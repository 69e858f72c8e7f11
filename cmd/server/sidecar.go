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
}

func runSidecar(environ map[string]string, log *slog.Logger) int {
	var cfg sidecarConfig
	problems := config.Parse(&cfg, environ)
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
			select {
			case reason = <-quit:
			case <-time.After(cfg.Hold):
				reason = "hold over"
			case sig := <-sigs: // asked twice: the hold is over
				reason = "second signal " + sig.String()
			}
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
