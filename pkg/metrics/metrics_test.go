package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLifespanMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewLifespan(reg)
	if err != nil {
		t.Fatal(err)
	}
	events := []lifespan.Event{
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStarting},
		{Kind: lifespan.HookStarted, App: "api", Hook: "db", Duration: 250 * time.Millisecond},
		{Kind: lifespan.HookStarted, App: "api", Hook: "cache", Duration: 2 * time.Second},
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseReady, Duration: 2250 * time.Millisecond},
		{Kind: lifespan.TaskExited, App: "api", Hook: "refresh", Err: errors.New("lost lease")},
		{Kind: lifespan.TaskExited, App: "api", Hook: "ticker", Err: context.Canceled}, // clean exit at shutdown
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseDraining},
		{Kind: lifespan.HookStopped, App: "api", Hook: "cache", Duration: 500 * time.Millisecond, Err: errors.New("flush")},
		{Kind: lifespan.HookStopped, App: "api", Hook: "db", Duration: 100 * time.Millisecond},
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStopped, Duration: 7 * time.Second},
	}
	for _, e := range events {
		m.OnEvent(e)
	}
	m.ObserveDrain(serve.DrainReport{ServedDuringDelay: 480, InFlightAtDelayEnd: 3, CutOff: 0})
	want := `
# HELP berth_drain_cut_off_requests Requests cut off by the last shutdown's drain timeout.
# TYPE berth_drain_cut_off_requests gauge
berth_drain_cut_off_requests 0
# HELP berth_drain_in_flight_at_delay_end Requests in flight when the last shutdown's drain delay ended.
# TYPE berth_drain_in_flight_at_delay_end gauge
berth_drain_in_flight_at_delay_end 3
# HELP berth_drain_served_during_delay Requests that arrived during the last shutdown's drain delay.
# TYPE berth_drain_served_during_delay gauge
berth_drain_served_during_delay 480
# HELP berth_hook_duration_seconds How long each hook's start or stop took.
# TYPE berth_hook_duration_seconds gauge
berth_hook_duration_seconds{app="api",hook="cache",phase="start"} 2
berth_hook_duration_seconds{app="api",hook="cache",phase="stop"} 0.5
berth_hook_duration_seconds{app="api",hook="db",phase="start"} 0.25
berth_hook_duration_seconds{app="api",hook="db",phase="stop"} 0.1
# HELP berth_hook_failures_total Hook starts or stops that failed, panicked or timed out.
# TYPE berth_hook_failures_total counter
berth_hook_failures_total{app="api",hook="cache",phase="stop"} 1
# HELP berth_ready 1 while the app is ready (started, not draining).
# TYPE berth_ready gauge
berth_ready{app="api"} 0
# HELP berth_shutdown_duration_seconds How long the whole shutdown took, from the start of the drain.
# TYPE berth_shutdown_duration_seconds gauge
berth_shutdown_duration_seconds{app="api"} 7
# HELP berth_startup_duration_seconds How long the whole startup took.
# TYPE berth_startup_duration_seconds gauge
berth_startup_duration_seconds{app="api"} 2.25
# HELP berth_task_failures_total Background tasks that ended with an error or a panic.
# TYPE berth_task_failures_total counter
berth_task_failures_total{app="api",task="refresh"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"berth_drain_cut_off_requests", "berth_drain_in_flight_at_delay_end", "berth_drain_served_during_delay",
		"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_ready", "berth_shutdown_duration_seconds",
		"berth_startup_duration_seconds", "berth_task_failures_total"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.phase.WithLabelValues("api", "stopped")); got != 1 {
		t.Errorf("phase stopped = %v", got)
	}
	if got := testutil.ToFloat64(m.phase.WithLabelValues("api", "ready")); got != 0 {
		t.Errorf("phase ready = %v after stop", got)
	}
}

func TestLifespanMetricsFromARealLifespan(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := NewLifespan(reg)
	l := lifespan.New("api", lifespan.WithObserver(m))
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.ready.WithLabelValues("api")); got != 1 {
		t.Fatalf("berth_ready = %v after start", got)
	}
	if n := testutil.CollectAndCount(m.hookDuration); n != 1 {
		t.Fatalf("hook duration series = %d", n)
	}
	_ = l.Stop(t.Context())
}

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

func TestHTTPAndRegistry(t *testing.T) {
	reg := NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.Begin()
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond)
	if got := testutil.ToFloat64(h.requests.WithLabelValues("GET", "/api/v1/items/:key", "200")); got != 1 {
		t.Fatalf("requests = %v", got)
	}
	if got := testutil.ToFloat64(h.inFlight); got != 0 {
		t.Fatalf("in flight = %v", got)
	}
	for i := range 50 { // invented methods must not mint series
		h.Begin()
		h.ObserveRequest(fmt.Sprintf("FOO%d", i), "unmatched", 405, time.Millisecond)
	}
	h.Begin()
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond) // a cached child counts on
	if got := testutil.ToFloat64(h.requests.WithLabelValues("GET", "/api/v1/items/:key", "200")); got != 2 {
		t.Fatalf("cached requests = %v", got)
	}
	if got := testutil.ToFloat64(h.requests.WithLabelValues("other", "unmatched", "405")); got != 50 {
		t.Fatalf("other-method requests = %v", got)
	}
	if n := testutil.CollectAndCount(h.requests); n != 2 {
		t.Fatalf("series = %d, want 2", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "go_build_info", "berth_http_requests_total"} {
		if !names[n] {
			t.Errorf("registry lacks %s", n)
		}
	}
	if _, err := NewHTTP(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}
