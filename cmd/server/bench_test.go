package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/deadline"
	"github.com/berth-dev/berth/internal/sidebyside"
	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/gin-gonic/gin"
	"github.com/heptiolabs/healthcheck"
)

// bareInfo is a bare Gin server answering GET /api/v1/info with the
// reference service's body type, encoded the same way: the baseline the
// benchmarks measure berth's whole stack against.
func bareInfo() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery())
	e.GET("/api/v1/info", func(c *gin.Context) {
		c.JSON(200, info{Version: "dev", Pod: "bare", Phase: "ready", Uptime: "1s"})
	})
	return e
}

// loopbackLoad is a batch for sidebyside.Run: n GETs of url from eight
// clients sharing client's keep-alive connections.
func loopbackLoad(b *testing.B, client *http.Client, url string) func(n int) {
	return func(n int) { sidebyside.Get(b, client, n, func(int) string { return url }) }
}

// BenchmarkLoopbackLoad is the load run of `make bench`: eight concurrent
// clients send GET /api/v1/info over loopback to the full reference service
// (gate, drain accounting, route metrics, lifespan state; the route needs
// no database) and to a bare Gin server answering the same JSON, in
// alternating batches, and report each one's requests per second and their
// ratio. The items routes, which reach the database, are compared against
// bare Gin on the same database by the store's benchmarks.
func BenchmarkLoopbackLoad(b *testing.B) {
	bare := httptest.NewServer(bareInfo())
	defer bare.Close()
	berth := startWith(b, map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": b.TempDir()})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(client.CloseIdleConnections) // before the servers stop

	r := sidebyside.Run(b, 400, loopbackLoad(b, client, bare.URL+"/api/v1/info"), loopbackLoad(b, client, berth.URL+"/api/v1/info"))
	b.ReportMetric(float64(b.N)/r.Baseline.Seconds(), "bare-req/s")
	b.ReportMetric(float64(b.N)/r.Candidate.Seconds(), "berth-req/s")
	b.ReportMetric(1/r.Ratio(), "berth/bare-throughput")
}

// BenchmarkLoopbackLayers splits BenchmarkLoopbackLoad's gap: each
// sub-benchmark runs the same eight clients against a baseline and against
// one part of the service, and reports layer/baseline. Against the bare Gin
// server: "bare" is a second bare server, the harness's noise floor (it
// should read 1.00); "limits" is the bare server behind an http.Server
// with serve.DefaultLimits' timeouts and header cap, its connections'
// deadlines moved lazily as serve's are (net/http moves them several
// times in every request, where without limits it only clears them; see
// internal/deadline); "handler" is the reference service's engine
// without berth's gate and metrics, on a server without limits: the
// service's own work (its /api/v1/info values read on each request, its
// nosniff header) and its read of the cache through berth's lifespan
// state; "stack" is the reference service's API handler (gate, metrics,
// state, its own /api/v1/info) on a server without limits. Against
// "handler": "path" is "stack" again, so that what it reads is berth's
// gate, drain accounting and route metrics over loopback. Against the
// limited server with net/http's own deadlines, each move arming a runtime
// timer: "lazy-deadlines" is "limits" again, what the lazy deadlines save.
func BenchmarkLoopbackLayers(b *testing.B) {
	env := map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": b.TempDir()}
	sc := serveConfigWith(b, env)
	berth := berthtest.Start(b, sc)
	cfg, err := config.Load(env)
	if err != nil {
		b.Fatal(err)
	}
	handler := httptest.NewUnstartedServer(newAPI(cfg, sc.Apps[0], nil, slog.New(slog.NewTextHandler(io.Discard, nil))))
	handler.Config.BaseContext = berth.Server.BaseContext
	handler.Start()
	defer handler.Close()
	bare := httptest.NewServer(bareInfo())
	defer bare.Close()
	limitedServer := func(lazy bool) *httptest.Server {
		srv := httptest.NewUnstartedServer(bareInfo())
		l := serve.DefaultLimits
		srv.Config.ReadHeaderTimeout, srv.Config.ReadTimeout = l.ReadHeaderTimeout, l.ReadTimeout
		srv.Config.WriteTimeout, srv.Config.IdleTimeout, srv.Config.MaxHeaderBytes = l.WriteTimeout, l.IdleTimeout, l.MaxHeaderBytes
		if lazy {
			srv.Listener = deadline.ServerListener(srv.Listener, srv.Config)
		}
		srv.Start()
		return srv
	}
	limited, eager := limitedServer(true), limitedServer(false)
	defer limited.Close()
	defer eager.Close()
	stack := httptest.NewUnstartedServer(berth.Server.APIHandler())
	stack.Config.BaseContext = berth.Server.BaseContext
	stack.Start()
	defer stack.Close()
	bare2 := httptest.NewServer(bareInfo())
	defer bare2.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(client.CloseIdleConnections)
	for _, layer := range []struct{ name, baseline, url string }{
		{"bare", bare.URL, bare2.URL}, {"limits", bare.URL, limited.URL}, {"handler", bare.URL, handler.URL},
		{"stack", bare.URL, stack.URL}, {"path", handler.URL, stack.URL},
		{"lazy-deadlines", eager.URL, limited.URL},
	} {
		b.Run(layer.name, func(b *testing.B) {
			r := sidebyside.Run(b, 400, loopbackLoad(b, client, layer.baseline+"/api/v1/info"), loopbackLoad(b, client, layer.url+"/api/v1/info"))
			b.ReportMetric(1/r.Ratio(), "layer/baseline-throughput")
		})
	}
}

// BenchmarkProbesUnderLoad is the probe half of make bench: sixteen
// keep-alive clients saturate GET /api/v1/info while a probe asks /readyz
// every 20ms, against a control (a bare Gin server beside
// heptiolabs/healthcheck's handler on its own port, with eight checks) and
// a candidate, in alternating 3s phases; it reports each side's probe
// latency percentiles and API throughput. In "berth" the candidate is the
// reference service; in "noise-floor" it is a second control, identical to
// the first: how far apart two sides that do the same work read on this
// machine, which a difference between berth and the control must exceed
// to mean anything.
func BenchmarkProbesUnderLoad(b *testing.B) {
	// The reference service runs through both, so that its background
	// work (the database check, the demo's job) is in the process alike.
	berth := startWith(b, map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": b.TempDir()})
	b.Run("berth", func(b *testing.B) {
		probesUnderLoad(b, probeControl(b), probeSide{"berth", berth.URL, berth.AdminURL + "/readyz"})
	})
	b.Run("noise-floor", func(b *testing.B) {
		twin := probeControl(b)
		twin.name = "control2"
		probesUnderLoad(b, probeControl(b), twin)
	})
}

// probeSide is one side of BenchmarkProbesUnderLoad: its name in the
// metrics, its API's base URL and its probe's URL.
type probeSide struct{ name, api, probe string }

// probeControl starts the control: a bare Gin server, and
// heptiolabs/healthcheck's handler with eight checks on its own port.
func probeControl(b *testing.B) probeSide {
	api := httptest.NewServer(bareInfo())
	b.Cleanup(api.Close)
	hc := healthcheck.NewHandler()
	for i := range 8 {
		hc.AddReadinessCheck(fmt.Sprint("check", i), func() error { return nil })
	}
	admin := httptest.NewServer(hc)
	b.Cleanup(admin.Close)
	return probeSide{"control", api.URL, admin.URL + "/ready"}
}

// probesUnderLoad runs BenchmarkProbesUnderLoad's phases against control
// and candidate and reports their figures. Each side first has a short
// phase that is not counted, so that neither side's first counted phase
// meets a process that has not served that load yet; the rounds then
// alternate which side leads.
func probesUnderLoad(b *testing.B, control, candidate probeSide) {
	if control.name == candidate.name {
		b.Fatalf("both sides are named %q", control.name)
	}
	type result struct {
		probes   []time.Duration
		requests int64
		elapsed  time.Duration
	}
	phase := func(side probeSide, probes int) result {
		stop := make(chan struct{})
		var requests atomic.Int64
		var workers sync.WaitGroup
		for range 16 {
			workers.Go(func() {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				defer client.CloseIdleConnections()
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := client.Get(side.api + "/api/v1/info")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					requests.Add(1)
				}
			})
		}
		prober := &http.Client{Timeout: 5 * time.Second}
		defer prober.CloseIdleConnections()
		var r result
		var failure error
		begin := time.Now()
		tick := time.NewTicker(20 * time.Millisecond)
		for range probes {
			<-tick.C
			t0 := time.Now()
			resp, err := prober.Get(side.probe)
			if err != nil {
				failure = err
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failure = fmt.Errorf("%s: %s", side.probe, resp.Status)
				break
			}
			r.probes = append(r.probes, time.Since(t0))
		}
		tick.Stop()
		close(stop)
		workers.Wait()
		if failure != nil {
			b.Fatal(failure)
		}
		r.elapsed, r.requests = time.Since(begin), requests.Load()
		return r
	}
	results := map[string]*result{control.name: {}, candidate.name: {}}
	phase(control, 25) // 0.5s each, not counted
	phase(candidate, 25)
	b.ResetTimer()
	// Two rounds of four phases of 3s per iteration, which alternate the
	// side that leads: 600 probes a side, so the p99 is not the
	// third-slowest of a handful.
	for round := range 2 * b.N {
		order := []probeSide{control, candidate, candidate, control}
		if round%2 == 1 {
			order = []probeSide{candidate, control, control, candidate}
		}
		for _, side := range order {
			r, into := phase(side, 150), results[side.name]
			into.probes = append(into.probes, r.probes...)
			into.requests += r.requests
			into.elapsed += r.elapsed
		}
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	for _, side := range []probeSide{candidate, control} {
		r := results[side.name]
		b.ReportMetric(pct(r.probes, 0.5), side.name+"-p50-ms")
		b.ReportMetric(pct(r.probes, 0.99), side.name+"-p99-ms")
		b.ReportMetric(float64(r.requests)/r.elapsed.Seconds(), side.name+"-api-req/s")
	}
	b.ReportMetric(pct(results[candidate.name].probes, 0.99)/pct(results[control.name].probes, 0.99), "p99/control-p99")
}

// BenchmarkReadyzHandler is the in-process half of the probe comparison:
// the reference service's /readyz handler (its readiness checks: one per
// hook, shutdown, lifespan, the cached database ping) against
// heptiolabs/healthcheck's /ready with eight checks, each called directly
// with no network, in alternating batches. "chart-probe" asks what the
// chart's readinessProbe asks, /readyz?exclude=db (heptio's handler has no
// such parameter: its side stays /ready).
func BenchmarkReadyzHandler(b *testing.B) {
	hc := healthcheck.NewHandler()
	for i := range 8 {
		hc.AddReadinessCheck(fmt.Sprint("check", i), func() error { return nil })
	}
	sc := serveConfigWith(b, map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": b.TempDir()})
	berthtest.Start(b, sc)
	readyz := sc.Probes.Handler(probes.HandlerOptions{ShowReasons: true})
	probe := func(h http.Handler, path string) func(n int) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		return func(n int) {
			for range n {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
			}
		}
	}
	for _, tt := range []struct{ name, path string }{{"readyz", "/readyz"}, {"chart-probe", "/readyz?exclude=db"}} {
		b.Run(tt.name, func(b *testing.B) {
			r := sidebyside.Run(b, 256, probe(hc, "/ready"), probe(readyz, tt.path))
			controlNs, berthNs := r.PerOp(b.N)
			b.ReportMetric(controlNs, "heptio-ns/probe")
			b.ReportMetric(berthNs, "berth-ns/probe")
			b.ReportMetric(r.Ratio(), "berth/heptio")
		})
	}
}
