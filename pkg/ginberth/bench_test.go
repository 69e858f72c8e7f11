package ginberth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berth-dev/berth/internal/sidebyside"
	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/gin-gonic/gin"
)

func itemHandler(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"key": c.Param("key")}) }

// BenchmarkRequestPath measures berth's request-path overhead: the same Gin
// handler behind a bare engine (gin.Recovery only) and behind berth's stack
// (serve's startup gate and drain accounting, route-template metrics,
// lifespan state), served in-process so the network does not hide the
// difference. The two run in alternating batches in one benchmark, so
// machine noise hits both alike; berth/bare is the figure that matters.
func BenchmarkRequestPath(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	bare := gin.New()
	bare.Use(gin.Recovery())
	bare.GET("/api/v1/items/:key", itemHandler)

	app := &lifespan.App{Name: "bench"}
	app.Append(lifespan.Hook{Name: "noop", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }})
	reg := metrics.NewRegistry()
	httpMetrics, err := metrics.NewHTTP(reg)
	if err != nil {
		b.Fatal(err)
	}
	engine := gin.New()
	engine.Use(gin.Recovery(), ginberth.Metrics(httpMetrics), ginberth.State(app))
	engine.GET("/api/v1/items/:key", itemHandler)
	berth := berthtest.Start(b, serve.Config{Apps: lifespan.Group{app}, API: engine}).Server.APIHandler()

	req := httptest.NewRequest(http.MethodGet, "/api/v1/items/alpha", nil)
	serveOnce := func(h http.Handler) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.ReportAllocs()
	r := sidebyside.Run(b, 256, func(n int) {
		for range n {
			serveOnce(bare)
		}
	}, func(n int) {
		for range n {
			serveOnce(berth)
		}
	})
	bareNs, berthNs := r.PerOp(b.N)
	b.ReportMetric(bareNs, "bare-ns/req")
	b.ReportMetric(berthNs, "berth-ns/req")
	b.ReportMetric(r.Ratio(), "berth/bare")
	b.ReportMetric(testing.AllocsPerRun(200, func() { serveOnce(berth) })-testing.AllocsPerRun(200, func() { serveOnce(bare) }), "extra-allocs/req")
}

// BenchmarkRequestPathLayers splits BenchmarkRequestPath's overhead by
// layer: each sub-benchmark serves the same handler behind one layer of
// berth's stack (or an empty middleware, the cost of one more Gin step)
// beside the bare engine, and reports layer/bare.
func BenchmarkRequestPathLayers(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	engine := func(mw ...gin.HandlerFunc) *gin.Engine {
		e := gin.New()
		e.Use(gin.Recovery())
		e.Use(mw...)
		e.GET("/api/v1/items/:key", itemHandler)
		return e
	}
	app := &lifespan.App{Name: "bench"}
	app.Append(lifespan.Hook{Name: "noop", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }})
	httpMetrics, err := metrics.NewHTTP(metrics.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	gated := berthtest.Start(b, serve.Config{Apps: lifespan.Group{app}, API: engine()}).Server.APIHandler()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/items/alpha", nil)
	loop := func(h http.Handler) func(int) {
		return func(n int) {
			for range n {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		}
	}
	for _, layer := range []struct {
		name string
		h    http.Handler
	}{
		{"empty-middleware", engine(func(c *gin.Context) { c.Next() })},
		{"gate", gated},
		{"metrics", engine(ginberth.Metrics(httpMetrics))},
		{"state", engine(ginberth.State(app))},
	} {
		b.Run(layer.name, func(b *testing.B) {
			r := sidebyside.Run(b, 256, loop(engine()), loop(layer.h))
			b.ReportMetric(r.Ratio(), "layer/bare")
		})
	}
}
