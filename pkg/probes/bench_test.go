package probes

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/sidebyside"
)

// BenchmarkReadyzWithSlowCheck serves /readyz while a check that takes one
// second is registered as a background check: the probe reads its cached
// result, so it costs about what it costs without that check, and nowhere
// near a second. Both registries run in alternating batches in one
// benchmark; with-slow/without is the figure that matters.
func BenchmarkReadyzWithSlowCheck(b *testing.B) {
	build := func(withSlow bool) *Registry {
		r := New()
		for _, name := range []string{"hook/api/db", "hook/api/cache", "hook/api/jobs", "shutdown", "lifespan"} {
			r.Add(Readiness, Check{Name: name, Run: func(context.Context) error { return nil }})
		}
		if withSlow {
			r.Add(Readiness, Check{Name: "slow-db", Interval: time.Second, Timeout: 2 * time.Second, Run: func(ctx context.Context) error {
				select {
				case <-time.After(time.Second):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}})
		}
		r.Start(context.Background())
		b.Cleanup(r.Stop)
		return r
	}
	without, with := build(false).Handler(HandlerOptions{}), build(true).Handler(HandlerOptions{})
	req := httptest.NewRequest("GET", "/readyz", nil)
	var slowest time.Duration
	b.ReportAllocs()
	r := sidebyside.Run(b, 128, func(n int) {
		for range n {
			without.ServeHTTP(httptest.NewRecorder(), req)
		}
	}, func(n int) {
		for range n {
			s := time.Now()
			with.ServeHTTP(httptest.NewRecorder(), req)
			slowest = max(slowest, time.Since(s))
		}
	})
	withoutNs, withNs := r.PerOp(b.N)
	b.ReportMetric(withoutNs, "without-ns/probe")
	b.ReportMetric(withNs, "with-slow-ns/probe")
	b.ReportMetric(r.Ratio(), "with-slow/without")
	b.ReportMetric(float64(slowest.Microseconds()), "slowest-probe-µs")
}
