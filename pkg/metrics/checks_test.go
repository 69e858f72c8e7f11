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

func TestChecksReadCacheNeverRun(t *testing.T) {
	var runs atomic.Int32
	p := probes.New()
	p.Add(probes.Readiness, probes.Check{Name: "db", Run: func(context.Context) error { runs.Add(1); return errors.New("down") }})
	p.Add(probes.Liveness, probes.Check{Name: "ping", Run: func(context.Context) error { runs.Add(1); return nil }})
	reg := prometheus.NewRegistry()
	if err := RegisterChecks(reg, p); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP berth_check_up 1 if the check's last thresholded result is passing, from the cached result.
# TYPE berth_check_up gauge
berth_check_up{check="db",probe="readyz"} 0
berth_check_up{check="ping",probe="livez"} 0
`
	for range 3 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_check_up"); err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 0 {
		t.Fatalf("scrapes ran checks %d times", runs.Load())
	}
	p.Evaluate(t.Context(), probes.Liveness, "", nil)
	if got := testutil.CollectAndCount(checks{p}, "berth_check_last_run_timestamp_seconds"); got != 1 {
		t.Fatalf("last-run series after one run = %d", got)
	}
	want = strings.Replace(want, `check="ping",probe="livez"} 0`, `check="ping",probe="livez"} 1`, 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_check_up"); err != nil {
		t.Fatal(err)
	}
}
