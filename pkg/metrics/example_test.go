package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Hook durations and failures come from the app's events: pass the
// recorder's OnEvent as the app's Observer.
func Example() {
	reg := metrics.NewRegistry()
	recorder, err := metrics.NewLifespan(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	app := &lifespan.App{Name: "api", Observer: recorder.OnEvent}
	app.Append(lifespan.Hook{Name: "cache", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return nil, fmt.Errorf("redis: connection refused")
	}})
	_ = app.Start(context.Background())

	httpMetrics, _ := metrics.NewHTTP(reg)
	httpMetrics.ObserveRequest("GET", "/api/v1/items/:key", 200, 3*time.Millisecond)

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP berth_hook_failures_total Hook starts or stops that failed, panicked or timed out (not a start the startup's end cut short); 0 from the hook's start.
# TYPE berth_hook_failures_total counter
berth_hook_failures_total{app="api",hook="cache",phase="start"} 1
berth_hook_failures_total{app="api",hook="cache",phase="stop"} 0
# HELP berth_http_requests_total HTTP requests served, by route template.
# TYPE berth_http_requests_total counter
berth_http_requests_total{code="200",method="GET",route="/api/v1/items/:key"} 1
`), "berth_hook_failures_total", "berth_http_requests_total")
	fmt.Println("metrics as expected:", err == nil)
	// Output:
	// metrics as expected: true
}
