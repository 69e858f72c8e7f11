package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/berth-dev/berth/pkg/sidecar"
	"github.com/prometheus/client_golang/prometheus"
)

// newService wires the library together, the way a service of your own
// would: metrics on their own registry, one app whose hooks open what the
// API needs (after waiting for sidecars, when there are any), the probes,
// the Gin API, and serve's runner around them.
func newService(cfg config.Config, log *slog.Logger) (*serve.Server, error) {
	sc, reg, err := newServeConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := serve.New(sc)
	if err != nil {
		return nil, err
	}
	return srv, metrics.RegisterServer(reg, srv)
}

// newServeConfig builds everything the server runs, and the registry its
// metrics go to.
func newServeConfig(cfg config.Config, log *slog.Logger) (serve.Config, *prometheus.Registry, error) {
	reg := metrics.NewRegistry()
	lifespanMetrics, err := metrics.NewLifespan(reg)
	if err != nil {
		return serve.Config{}, nil, err
	}
	httpMetrics, err := metrics.NewHTTP(reg)
	if err != nil {
		return serve.Config{}, nil, err
	}
	checks := probes.New()
	if err := metrics.RegisterChecks(reg, checks); err != nil {
		return serve.Config{}, nil, err
	}

	app := &lifespan.App{
		Name:        "berth",
		Observer:    lifespan.Observers(lifespan.LogObserver(log), lifespanMetrics.OnEvent),
		StopTimeout: cfg.StopTimeout,
	}
	var hooks []lifespan.Hook
	if len(cfg.Sidecars) > 0 {
		targets, _ := sidecar.ParseTargets(cfg.Sidecars) // validated by config.Load
		w := sidecar.NewWaiter(targets, sidecar.Options{Deadline: cfg.SidecarTimeout, Logger: log})
		hooks = append(hooks, namingTheWait(w.Hook(), cfg.SidecarTimeout))
		for _, c := range w.Checks(5 * time.Second) {
			checks.Add(probes.Readiness, c)
		}
	}
	db := &dbCheck{refresh: func(ctx context.Context) { checks.Refresh(ctx, "db") }}
	checks.Add(probes.Readiness, db.check(cfg))
	hooks = append(hooks, serviceHooks(cfg, log, db)...)
	app.Append(withDemo(cfg, hooks)...)

	sc := cfg.Serve(log, reg)
	sc.Apps = lifespan.Group{app}
	sc.API = newAPI(cfg, app, httpMetrics, log)
	sc.Probes = checks
	sc.Metrics = metrics.Handler(reg)
	return sc, reg, nil
}

// namingTheWait makes the sidecar wait's failure name the settings behind
// it, as the database wait's names BERTH_DB_WAIT: the library's error says
// which sidecar and why, not which variable would change it.
func namingTheWait(h lifespan.Hook, timeout time.Duration) lifespan.Hook {
	start := h.Start
	h.Start = func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		stop, err := start(ctx, s)
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (waited BERTH_SIDECAR_TIMEOUT=%v for BERTH_SIDECARS: raise it, or see why the sidecar is not ready)", err, timeout)
		}
		return stop, err
	}
	return h
}
