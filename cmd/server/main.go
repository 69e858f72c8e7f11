// Command server is berth's reference service: a Gin API with a real
// lifespan (a store, a cache warmed from it, a periodic job, an optional
// sidecar wait), probes and metrics on an admin port, and the shutdown
// timeline of package serve.
//
//	server            serve (the default)
//	server sidecar    a tiny sidecar: GET /ready (or /healthz/ready) and
//	                  POST /quitquitquit (or /shutdown), as Istio's and
//	                  Linkerd's proxies answer
//	server probe URL  exit 0 when URL answers 2xx
//	server prune-pushgateway OLDER_THAN [DEPLOYMENT]
//	                  delete the Pushgateway groups of pods (DEPLOYMENT's
//	                  alone, when given) that exited longer than
//	                  OLDER_THAN ago
//	server version    print the version
//
// service.go is the wiring a service of your own would copy; demo.go holds
// what exists only to show the lifespan at work (a slow warm-up, a hook
// that fails on request, a long-request endpoint). Configuration is read
// from BERTH_* environment variables (see the README). Exit codes: 0 clean
// shutdown, 1 startup failed, 2 bad configuration, 3 shutdown completed
// with errors (or after a server failed), 4 forced by a second signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/config"
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
	if slices.Contains([]string{"serve", "sidecar", "version", "help", "-h", "--help"}, cmd) && len(args) > 0 {
		fmt.Fprintf(stderr, "server: %s takes no arguments, got %q (configuration is BERTH_* environment variables)\n%s\n", cmd, args, usage)
		return serve.ExitConfig
	}
	switch cmd {
	case "serve":
		return runServe(env, stderr)
	case "sidecar":
		return runSidecar(env, newLogger(stderr, slog.LevelInfo, env["BERTH_LOG_FORMAT"] != "text"))
	case "probe":
		return runProbe(args, stdout, stderr)
	case "prune-pushgateway":
		return runPrune(args, env, newLogger(stderr, slog.LevelInfo, env["BERTH_LOG_FORMAT"] != "text"))
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

const usage = `usage: server [serve | sidecar | probe URL | prune-pushgateway OLDER_THAN [DEPLOYMENT] | version | help]
configuration: BERTH_* environment variables (see the README)`

// newLogger returns the service's logger. Every duration is logged in
// seconds, as a float, under a key ending in _seconds, in both formats (a
// time.Duration would otherwise be an integer of nanoseconds in JSON).
func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsInSeconds}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func durationsInSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	key := a.Key
	if !strings.HasSuffix(key, "_seconds") {
		key += "_seconds"
	}
	return slog.Float64(key, a.Value.Duration().Seconds())
}

func runServe(env map[string]string, stderr io.Writer) int {
	cfg, err := config.Load(env)
	if err != nil {
		// Logged like every other refusal, in the format asked for if that
		// much is valid, so a log pipeline parses this line too.
		log := newLogger(stderr, slog.LevelInfo, env["BERTH_LOG_FORMAT"] != "text")
		log.Error("refusing to start", refusal(err)...)
		quitAfterRefusal(env, log)
		return serve.ExitConfig
	}
	if cfg.PodName == "" {
		cfg.PodName, _ = os.Hostname()
	}
	level, _ := config.ParseLevel(cfg.LogLevel)
	log := newLogger(stderr, level, cfg.LogFormat == "json").With("pod", cfg.PodName)
	srv, err := newService(cfg, log)
	if err != nil {
		log.Error("refusing to start", refusal(err)...)
		quitAfterRefusal(env, log)
		return serve.ExitCode(err)
	}
	applyMemoryLimit(log, env)
	err = srv.Run(context.Background())
	code := serve.ExitCode(err)
	var refused *serve.ConfigError
	if errors.As(err, &refused) {
		log.Error("refusing to start", refusal(err)...)
	}
	log.Info("exiting", "code", code)
	return code
}

// quitAfterRefusal tells classic sidecars to quit when the service refuses
// to start, if BERTH_SIDECAR_QUIT_AFTER_FAILED_START asks for it: a Job's
// pod that is not restarted would otherwise wait on them for good. The
// refusal comes within moments of the pod's start, before a sidecar may be
// listening, so a refused connection is retried until the quit's timeout.
// A quit asked for whose own settings are refused is not attempted, and
// the log says so. (A listener that cannot be opened is serve.Run's
// refusal, and Run quits them itself.)
func quitAfterRefusal(env map[string]string, log *slog.Logger) {
	urls, timeout, err := config.QuitAfterRefusal(env)
	switch {
	case err != nil:
		log.Warn("sidecars not told to quit: the quit's own settings are refused", "error", err.Error())
		return
	case urls == nil:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	begin := time.Now()
	err = sidecar.Quit(ctx, urls, sidecar.Options{Logger: log, RetryRefused: true}) // each sidecar's outcome logged
	took := slog.Float64("took_seconds", time.Since(begin).Seconds())
	if err != nil {
		log.Error("sidecars quit failed", "error", err.Error(), took)
		return
	}
	log.Info("sidecars quit done", took)
}

// refusal is the log attributes of a refusal to start: the error, in the
// service's terms (config.Explain), and, when it holds several problems,
// the list of them, one string each, where a reader need not find where
// one ends and the next begins.
func refusal(err error) []any {
	var problems []string
	var bad *config.Error
	var refused *serve.ConfigError
	switch {
	case errors.As(err, &bad):
		problems = bad.Problems
	case errors.As(err, &refused):
		for _, p := range refused.Problems {
			problems = append(problems, config.Explain(errors.New(p)))
		}
	}
	attrs := []any{"error", config.Explain(err)}
	if len(problems) > 1 {
		attrs = append(attrs, "problems", problems)
	}
	return attrs
}
