package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

// This file is the demo: what the reference service does only to show the
// lifespan at work. A service of your own leaves it out.

var errDemoFail = errors.New("failing as BERTH_DEMO_FAIL asks")

// withDemo applies the demo's settings to the hooks: the cache hook takes
// BERTH_DEMO_WARMUP longer (so readiness gating can be watched; its start
// timeout grows by as much), and the
// hook BERTH_DEMO_FAIL names fails at start without doing anything (so the
// rollback of the hooks before it can be watched).
func withDemo(cfg config.Config, hooks []lifespan.Hook) []lifespan.Hook {
	for i := range hooks {
		switch h := &hooks[i]; {
		case h.Name == cfg.DemoFail:
			h.Start = func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, errDemoFail }
		case h.Name == "cache" && cfg.DemoWarmup > 0:
			h.Start = warmingFor(cfg.DemoWarmup, h.Start)
			h.StartTimeout += cfg.DemoWarmup
		}
	}
	return hooks
}

// warmingFor makes start take d longer first, honouring its context so a
// shutdown during startup does not wait for it.
func warmingFor(d time.Duration, start lifespan.StartFunc) lifespan.StartFunc {
	return func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("warming the cache: %w", ctx.Err())
		}
		return start(ctx, s)
	}
}

// workRoute adds GET /api/v1/work?duration=250ms: a request that holds for
// that long (capped by BERTH_WORK_MAX), to watch long requests finish
// during a drain. It honours cancellation: when the client goes away or the
// server cuts the request off, it returns at once.
func workRoute(r gin.IRoutes, cfg config.Config) {
	getOrHead(r, "/work", func(c *gin.Context) {
		d := min(100*time.Millisecond, cfg.WorkMax) // the default never passes the cap
		if q := c.Query("duration"); q != "" {
			var err error
			if d, err = time.ParseDuration(q); err != nil || d < 0 {
				fail(c, http.StatusBadRequest, "duration=%q is not a non-negative Go duration such as 250ms or 1s", q)
				return
			}
		}
		if d > cfg.WorkMax {
			fail(c, http.StatusBadRequest, "duration=%v is over the %v cap (BERTH_WORK_MAX)", d, cfg.WorkMax)
			return
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			c.JSON(http.StatusOK, gin.H{"worked": d.String(), "pod": cfg.PodName})
		case <-c.Request.Context().Done():
			// The client went away or the server cut the request off; no one
			// reads an answer.
			c.Abort()
		}
	})
}
