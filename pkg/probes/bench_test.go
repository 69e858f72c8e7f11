package probes

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
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
	const batch = 128
	var tWithout, tWith time.Duration
	var slowest time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		t0 := time.Now()
		for range n {
			without.ServeHTTP(httptest.NewRecorder(), req)
		}
		t1 := time.Now()
		for range n {
			s := time.Now()
			with.ServeHTTP(httptest.NewRecorder(), req)
			slowest = max(slowest, time.Since(s))
		}
		tWithout += t1.Sub(t0)
		tWith += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(tWithout.Nanoseconds())/float64(b.N), "without-ns/probe")
	b.ReportMetric(float64(tWith.Nanoseconds())/float64(b.N), "with-slow-ns/probe")
	b.ReportMetric(float64(tWith)/float64(tWithout), "with-slow/without")
	b.ReportMetric(float64(slowest.Microseconds()), "slowest-probe-µs")
}
