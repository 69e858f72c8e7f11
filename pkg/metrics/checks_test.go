package metrics

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A scrape reads the checks' cached results and never runs a check; a check
// that has not run yet has no berth_check_up series (not a misleading 0), a
// check of two probes has one series per probe, and every check's failure
// counter exists at 0 from the start.
func TestChecksReadCacheNeverRun(t *testing.T) {
	var runs atomic.Int32
	p := probes.New()
	p.Add(probes.Readiness, probes.Check{Name: "db", Run: func(context.Context) error { runs.Add(1); return errors.New("down") }})
	p.Add(probes.Liveness, probes.Check{Name: "ping", Run: func(context.Context) error { runs.Add(1); return nil }})
	p.Add(probes.Startup|probes.Readiness, probes.Check{Name: "lifespan", Run: func(context.Context) error { runs.Add(1); return nil }})
	reg := prometheus.NewRegistry()
	if err := RegisterChecks(reg, p); err != nil {
		t.Fatal(err)
	}
	const failures = `
# HELP berth_check_failures_total Runs of the check that failed; 0 from the start.
# TYPE berth_check_failures_total counter
berth_check_failures_total{check="db"} 0
berth_check_failures_total{check="lifespan"} 0
berth_check_failures_total{check="ping"} 0
`
	for range 3 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(failures), "berth_check_up", "berth_check_failures_total"); err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 0 {
		t.Fatalf("scrapes ran checks %d times", runs.Load())
	}
	p.Evaluate(t.Context(), probes.Readiness, "", nil)
	p.Evaluate(t.Context(), probes.Readiness, "", nil)
	p.Evaluate(t.Context(), probes.Liveness, "", nil)
	want := `
# HELP berth_check_failures_total Runs of the check that failed; 0 from the start.
# TYPE berth_check_failures_total counter
berth_check_failures_total{check="db"} 2
berth_check_failures_total{check="lifespan"} 0
berth_check_failures_total{check="ping"} 0
# HELP berth_check_up 1 if the check's last thresholded result is passing, else 0, from the cached result; one series per probe the check belongs to; absent until the check's first run.
# TYPE berth_check_up gauge
berth_check_up{check="db",probe="readyz"} 0
berth_check_up{check="lifespan",probe="readyz"} 1
berth_check_up{check="lifespan",probe="startupz"} 1
berth_check_up{check="ping",probe="livez"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_check_up", "berth_check_failures_total"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(checks{p}, "berth_check_last_run_timestamp_seconds"); got != 3 {
		t.Fatalf("last-run series = %d, want one per check that ran", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
}
