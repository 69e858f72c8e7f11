package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/sidebyside"
	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/gin-gonic/gin"
)

// BenchmarkLoopbackLoad is the load run of `make bench`: eight concurrent
// clients send GET /api/v1/items/:key over loopback to the full reference
// service (gate, metrics, state, store) and to a bare Gin server answering
// the same route from a map, in alternating batches, and report each one's
// requests per second and their ratio.
func BenchmarkLoopbackLoad(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	bareEngine := gin.New()
	bareEngine.Use(gin.Recovery())
	items := map[string][]byte{"k": []byte(`{"v":1}`)}
	var mu sync.RWMutex
	bareEngine.GET("/api/v1/items/:key", func(c *gin.Context) {
		mu.RLock()
		v, ok := items[c.Param("key")]
		mu.RUnlock()
		if !ok {
			c.AbortWithStatusJSON(404, gin.H{"error": "missing"})
			return
		}
		c.Data(200, "application/json", v)
	})
	bare := httptest.NewServer(bareEngine)
	defer bare.Close()

	cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": "0s"})
	if err != nil {
		b.Fatal(err)
	}
	sc, _, err := newServeConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	sc.DrainDelay = 0
	berth := berthtest.Start(b, sc)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(client.CloseIdleConnections) // before the servers stop
	req, _ := http.NewRequest(http.MethodPut, berth.URL+"/api/v1/items/k", strings.NewReader(`{"v":1}`))
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		b.Fatalf("seeding the store: %s", resp.Status)
	}

	const workers = 8
	hammer := func(url string, n int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	r := sidebyside.Run(b, 400, func(n int) { hammer(bare.URL+"/api/v1/items/k", n) }, func(n int) { hammer(berth.URL+"/api/v1/items/k", n) })
	b.ReportMetric(float64(b.N)/r.Baseline.Seconds(), "bare-req/s")
	b.ReportMetric(float64(b.N)/r.Candidate.Seconds(), "berth-req/s")
	b.ReportMetric(1/r.Ratio(), "berth/bare-throughput")
}
