package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/sidebyside"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/gin-gonic/gin"
)

var benchStore = lifespan.NewKey[*store.DB]("store")

// BenchmarkItems measures GET /items/:key over loopback, eight clients at
// once, in alternating batches: berth's stack (serve's gate, route
// metrics, lifespan state, the store) against a bare Gin handler issuing
// the same query over the same pool. berth/bare-throughput is the figure.
func BenchmarkItems(b *testing.B, db *store.DB, placeholder string) {
	ctx := context.Background()
	const keys = 64
	for i := range keys {
		if _, err := db.Put(ctx, fmt.Sprint("k", i), []byte(`{"v":1}`)); err != nil {
			b.Fatal(err)
		}
	}
	gin.SetMode(gin.ReleaseMode)

	bareEngine := gin.New()
	bareEngine.Use(gin.Recovery())
	query := "SELECT value FROM items WHERE key = " + placeholder
	bareEngine.GET("/items/:key", func(c *gin.Context) {
		var v []byte
		err := db.SQL().QueryRowContext(c.Request.Context(), query, c.Param("key")).Scan(&v)
		if err != nil {
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.Data(http.StatusOK, "application/json", v)
	})
	bare := listen(b, bareEngine)

	app := &lifespan.App{Name: "bench"}
	app.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		benchStore.Set(s, db)
		return nil, nil
	}})
	reg := metrics.NewRegistry()
	httpMetrics, err := metrics.NewHTTP(reg)
	if err != nil {
		b.Fatal(err)
	}
	engine := gin.New()
	engine.Use(gin.Recovery(), ginberth.Metrics(httpMetrics)) // serve puts the app's state in each request's context
	engine.GET("/items/:key", func(c *gin.Context) {
		v, err := ginberth.MustGet(c, benchStore).Get(c.Request.Context(), c.Param("key"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "no item"})
		case err != nil:
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
		default:
			c.Data(http.StatusOK, "application/json", v)
		}
	})
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{app}, API: engine, APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, ShutdownOn: []os.Signal{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Signals().StartupComplete.Done()
	b.Cleanup(func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	berth := "http://" + srv.APIAddr().String()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(client.CloseIdleConnections)
	load := func(base string) func(n int) {
		return func(n int) {
			sidebyside.Get(b, client, n, func(i int) string { return fmt.Sprintf("%s/items/k%d", base, i%keys) })
		}
	}
	r := sidebyside.Run(b, 400, load(bare), load(berth))
	b.ReportMetric(float64(b.N)/r.Baseline.Seconds(), "bare-req/s")
	b.ReportMetric(float64(b.N)/r.Candidate.Seconds(), "berth-req/s")
	b.ReportMetric(1/r.Ratio(), "berth/bare-throughput")
}

// listen serves h on a loopback port until the benchmark ends.
func listen(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: h}
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { s.Close() })
	return "http://" + ln.Addr().String()
}
