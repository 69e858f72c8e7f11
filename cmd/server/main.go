// Command server is berth's reference service: a Gin API with a real
// lifespan (a store, a cache warmed from it, a periodic job, an optional
// sidecar wait), probes and metrics on an admin port, and the shutdown
// timeline of package serve.
//
//	server            serve (the default)
//	server sidecar    a tiny sidecar with /ready and POST /quitquitquit
//	server probe URL  exit 0 when URL answers 2xx
//	server version    print the version
//
// Configuration is read from BERTH_* environment variables (see the
// README). Exit codes: 0 clean shutdown, 1 startup failed, 2 bad
// configuration, 3 shutdown completed with errors, 4 forced by a second
// signal.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/berth-dev/berth/pkg/sidecar"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], environ(), os.Stdout, os.Stderr))
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func run(args []string, env map[string]string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(env, stderr)
	case "sidecar":
		return runSidecar(env, newLogger(stderr, slog.LevelInfo, env["BERTH_LOG_FORMAT"] != "text"))
	case "probe":
		return runProbe(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "server: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
}

const usage = `usage: server [serve | sidecar | probe URL | version]
configuration: BERTH_* environment variables (see the README)`

func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(env map[string]string, stderr io.Writer) int {
	cfg, err := loadConfig(env)
	if err != nil {
		fmt.Fprintf(stderr, "server: %v\n", err)
		return serve.ExitConfig
	}
	if cfg.PodName == "" {
		cfg.PodName, _ = os.Hostname()
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := newLogger(stderr, level, cfg.LogFormat == "json").With("pod", cfg.PodName)
	srv, err := newServer(cfg, log)
	if err != nil {
		log.Error("refusing to start", "error", err)
		return serve.ExitCode(err)
	}
	err = srv.Run(context.Background())
	code := serve.ExitCode(err)
	log.Info("exiting", "code", code)
	return code
}

// newServer wires the library together: the lifespan with its hooks, the
// probes, the metrics and the Gin API, behind serve's runner.
func newServer(cfg config, log *slog.Logger) (*serve.Server, error) {
	sc, err := newServerConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	return serve.New(sc)
}

func newServerConfig(cfg config, log *slog.Logger) (serve.Config, error) {
	reg := metrics.NewRegistry()
	lifespanMetrics, err := metrics.NewLifespan(reg)
	if err != nil {
		return serve.Config{}, err
	}
	httpMetrics, err := metrics.NewHTTP(reg)
	if err != nil {
		return serve.Config{}, err
	}
	app := lifespan.New("berth",
		lifespan.WithObserver(lifespan.Observers(lifespan.NewLogObserver(log), lifespanMetrics)),
		lifespan.WithStopTimeout(cfg.StopTimeout),
	)
	probeReg := probes.New()
	var hooks []lifespan.Hook
	if len(cfg.Sidecars) > 0 {
		targets, _ := sidecar.ParseTargets(cfg.Sidecars) // validated in loadConfig
		w := sidecar.NewWaiter(targets, sidecar.Options{Deadline: cfg.SidecarTimeout, Logger: log})
		hooks = append(hooks, w.Hook())
		for _, c := range w.Checks(5 * time.Second) {
			probeReg.Add(probes.Readiness, c)
		}
	}
	app.Append(withDemoFailure(append(hooks, appHooks(cfg, log)...), cfg.DemoFail)...)
	if err := metrics.RegisterChecks(reg, probeReg); err != nil {
		return serve.Config{}, err
	}
	var quit func(context.Context) error
	if len(cfg.SidecarQuit) > 0 {
		quit = func(ctx context.Context) error { return sidecar.Quit(ctx, cfg.SidecarQuit, &http.Client{}, log) }
	}
	return serve.Config{
		Group:          lifespan.NewGroup(app),
		API:            newAPI(cfg, app, httpMetrics, time.Now()),
		APIAddr:        cfg.HTTPAddr,
		AdminAddr:      cfg.AdminAddr,
		SingleListener: cfg.SingleListener,
		Probes:         probeReg,
		Metrics:        metrics.Handler(reg),
		DrainDelay:     cfg.DrainDelay,
		DrainTimeout:   cfg.DrainTimeout,
		StopTimeout:    cfg.StopTimeout,
		GracePeriod:    cfg.GracePeriod,
		PreStopDelay:   cfg.PreStopDelay,
		Margin:         cfg.Margin,
		QuitTimeout:    cfg.QuitTimeout,
		QuitSidecars:   quit,
		Logger:         log,
		Observer:       lifespanMetrics,
	}, nil
}
