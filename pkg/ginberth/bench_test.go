package ginberth_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/sidebyside"
	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

func itemHandler(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"key": c.Param("key")}) }

// BenchmarkRequestPath measures berth's request-path overhead: the same Gin
// handler behind a bare engine (gin.Recovery only) and behind berth's stack
// (serve's startup gate and drain accounting, route-template metrics, and
// the lifespan state in the request's context, as serve's API listener
// gives it), served in-process so the network does not hide the
// difference. The two run in alternating batches in one benchmark, so
// machine noise hits both alike; berth/bare is the figure that matters.
func BenchmarkRequestPath(b *testing.B) {
	bare := benchEngine()
	app, httpMetrics := benchApp(b)
	srv := berthtest.Start(b, serve.Config{Apps: lifespan.Group{app},
		API: benchEngine(ginberth.Metrics(httpMetrics))}).Server
	berth := srv.APIHandler()
	// What the API listener gives each request: the apps' state in its
	// context, set once per listener.
	berthReq := itemRequest.WithContext(srv.BaseContext(nil))

	b.ReportAllocs()
	r := sidebyside.Run(b, 256, serving(b, bare, itemRequest), serving(b, berth, berthReq))
	bareNs, berthNs := r.PerOp(b.N)
	b.ReportMetric(bareNs, "bare-ns/req")
	b.ReportMetric(berthNs, "berth-ns/req")
	b.ReportMetric(r.Ratio(), "berth/bare")
	b.ReportMetric(testing.AllocsPerRun(200, func() { serveOnce(b, berth, berthReq) })-testing.AllocsPerRun(200, func() { serveOnce(b, bare, itemRequest) }), "extra-allocs/req")
}

// BenchmarkRequestPathLayers splits BenchmarkRequestPath's overhead by
// layer: each sub-benchmark serves the same handler behind one layer of
// berth's stack (or an empty middleware, the cost of one more Gin step)
// beside the bare engine, and reports layer/bare. "state-middleware" is
// ginberth.State, which an engine served without serve mounts (behind
// serve the state is in the request's context, at no cost per request);
// "state-read" is the same handler reading one key with ginberth.MustGet
// first, from a request whose context is as deep as net/http makes it
// (the listener's base, the server and address values, the connection's
// and the request's cancels): what a handler's read of the state costs.
// Two more are floors, not berth: what any middleware that times requests
// pays, reading the monotonic clock before and after the handler, and
// those reads with an unlabelled client_golang histogram and counter
// updated.
func BenchmarkRequestPathLayers(b *testing.B) {
	app, httpMetrics := benchApp(b)
	gatedSrv := berthtest.Start(b, serve.Config{Apps: lifespan.Group{app}, API: benchEngine()}).Server
	gated, gatedReq := gatedSrv.APIHandler(), itemRequest.WithContext(gatedSrv.BaseContext(nil))
	deep := context.WithValue(gatedSrv.BaseContext(nil), http.ServerContextKey, &http.Server{})
	deep = context.WithValue(deep, http.LocalAddrContextKey, &net.TCPAddr{})
	deep, cancelConn := context.WithCancel(deep)
	defer cancelConn()
	deep, cancelRequest := context.WithCancel(deep)
	defer cancelRequest()
	reading := gin.New() // benchEngine's, the handler reading first
	reading.Use(gin.Recovery())
	reading.GET("/api/v1/items/:key", func(c *gin.Context) {
		if ginberth.MustGet(c, benchKey) == "" {
			b.Fatal("empty state")
		}
		itemHandler(c)
	})
	readReq := itemRequest.WithContext(deep)
	for _, layer := range []struct {
		name string
		h    http.Handler
		req  *http.Request
	}{
		{"empty-middleware", benchEngine(func(c *gin.Context) { c.Next() }), itemRequest},
		{"gate", gated, gatedReq},
		{"metrics", benchEngine(ginberth.Metrics(httpMetrics)), itemRequest},
		{"state-middleware", benchEngine(ginberth.State(app)), itemRequest},
		{"state-read", reading, readReq},
		{"floor-clock", benchEngine(timing(func(time.Duration) {})), itemRequest},
		{"floor-client_golang", benchEngine(timing(func(d time.Duration) { floorRequests.Inc(); floorDuration.Observe(d.Seconds()) })), itemRequest},
	} {
		b.Run(layer.name, func(b *testing.B) {
			r := sidebyside.Run(b, 256, serving(b, benchEngine(), itemRequest), serving(b, layer.h, layer.req))
			b.ReportMetric(r.Ratio(), "layer/bare")
		})
	}
}

// BenchmarkMonotonicClock is what one read of the monotonic clock costs on
// this machine, as Metrics (and the floor-clock layer) reads it twice per
// request: it is cheap on most hosts and slow on some virtual clocks, which
// moves every request-path ratio above.
func BenchmarkMonotonicClock(b *testing.B) {
	var d time.Duration
	for range b.N {
		d += time.Since(epoch)
	}
	clockSink = d
}

var clockSink time.Duration

// floorRequests and floorDuration are the client_golang floor's metrics:
// unregistered, as registering costs nothing per request.
var (
	floorRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: "floor_requests_total"})
	floorDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "floor_duration_seconds", Buckets: prometheus.DefBuckets})
	epoch         = time.Now()
)

// timing is middleware that times each request on the monotonic clock, as
// ginberth.Metrics does, and hands the duration to record.
func timing(record func(time.Duration)) gin.HandlerFunc {
	return func(c *gin.Context) {
		begin := time.Since(epoch)
		c.Next()
		record(time.Since(epoch) - begin)
	}
}

// benchEngine serves itemHandler at /api/v1/items/:key behind gin.Recovery
// and then mw: with no mw, the bare engine the benchmarks measure against.
func benchEngine(mw ...gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery())
	e.Use(mw...)
	e.GET("/api/v1/items/:key", itemHandler)
	return e
}

// benchKey is the state benchApp's hook sets.
var benchKey = lifespan.NewKey[string]("bench")

// benchApp is an app of one hook that sets benchKey, and route metrics on
// a registry of their own.
func benchApp(b *testing.B) (*lifespan.App, *metrics.HTTP) {
	app := &lifespan.App{Name: "bench"}
	app.Append(lifespan.Hook{Name: "state", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		benchKey.Set(s, "ready")
		return nil, nil
	}})
	httpMetrics, err := metrics.NewHTTP(metrics.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return app, httpMetrics
}

var itemRequest = httptest.NewRequest(http.MethodGet, "/api/v1/items/alpha", nil)

// serveOnce serves req, a GET of an item, with h and fails b unless it
// answers 200.
func serveOnce(b *testing.B, h http.Handler, req *http.Request) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d", rec.Code)
	}
}

// serving is a batch for sidebyside.Run: n requests req to h.
func serving(b *testing.B, h http.Handler, req *http.Request) func(n int) {
	return func(n int) {
		for range n {
			serveOnce(b, h, req)
		}
	}
}
