package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
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
		{Kind: lifespan.HookStarting, App: "api", Hook: "db"},
		{Kind: lifespan.HookStarted, App: "api", Hook: "db", Duration: 250 * time.Millisecond},
		{Kind: lifespan.HookStarting, App: "api", Hook: "cache"},
		{Kind: lifespan.HookStarted, App: "api", Hook: "cache", Duration: 2 * time.Second},
		{Kind: lifespan.TaskStarted, App: "api", Hook: "refresh"},
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseReady, Duration: 2250 * time.Millisecond},
		{Kind: lifespan.TaskExited, App: "api", Hook: "refresh", Err: errors.New("lost lease")},
		{Kind: lifespan.TaskStarted, App: "api", Hook: "ticker"},
		{Kind: lifespan.TaskExited, App: "api", Hook: "ticker"}, // clean exit at shutdown: 0, present from its start
		{Kind: lifespan.TaskStarted, App: "api", Hook: "consumer"},
		{Kind: lifespan.TaskExited, App: "api", Hook: "consumer", Err: fmt.Errorf("consume: %w", context.Canceled)}, // its own cancellation: a failure
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStopping},
		{Kind: lifespan.HookStopped, App: "api", Hook: "cache", Duration: 500 * time.Millisecond, Err: errors.New("flush")},
		{Kind: lifespan.HookStopped, App: "api", Hook: "db", Duration: 100 * time.Millisecond},
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStopped, Duration: 7 * time.Second},
	}
	for _, e := range events {
		m.OnEvent(e)
	}
	want := `
# HELP berth_hook_duration_seconds How long each hook's start or stop took.
# TYPE berth_hook_duration_seconds gauge
berth_hook_duration_seconds{app="api",hook="cache",phase="start"} 2
berth_hook_duration_seconds{app="api",hook="cache",phase="stop"} 0.5
berth_hook_duration_seconds{app="api",hook="db",phase="start"} 0.25
berth_hook_duration_seconds{app="api",hook="db",phase="stop"} 0.1
# HELP berth_hook_failures_total Hook starts or stops that failed, panicked or timed out (not a start the startup's end cut short); 0 from the hook's start.
# TYPE berth_hook_failures_total counter
berth_hook_failures_total{app="api",hook="cache",phase="start"} 0
berth_hook_failures_total{app="api",hook="cache",phase="stop"} 1
berth_hook_failures_total{app="api",hook="db",phase="start"} 0
berth_hook_failures_total{app="api",hook="db",phase="stop"} 0
# HELP berth_startup_duration_seconds How long the app's whole startup took, successful or not (a failed one's rollback included).
# TYPE berth_startup_duration_seconds gauge
berth_startup_duration_seconds{app="api"} 2.25
# HELP berth_task_failures_total Background tasks that ended with an error or a panic; 0 from the task's start.
# TYPE berth_task_failures_total counter
berth_task_failures_total{app="api",task="consumer"} 1
berth_task_failures_total{app="api",task="refresh"} 1
berth_task_failures_total{app="api",task="ticker"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_startup_duration_seconds", "berth_task_failures_total"); err != nil {
		t.Fatal(err)
	}
	for phase, want := range map[string]float64{"stopped": 1, "ready": 0, "starting": 0, "failed": 0} {
		if got := phaseValue(t, reg, "api", phase); got != want {
			t.Errorf("berth_phase{phase=%q} = %v, want %v", phase, got, want)
		}
	}
}

func TestLifespanMetricsFromARealApp(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := NewLifespan(reg)
	l := &lifespan.App{Name: "api", Observer: m.OnEvent}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := phaseValue(t, reg, "api", "ready"); got != 1 {
		t.Fatalf("berth_phase{phase=ready} = %v after start", got)
	}
	if n := testutil.CollectAndCount(m.hookDuration); n != 1 {
		t.Fatalf("hook duration series = %d", n)
	}
	_ = l.Stop(t.Context())
}

// Only the hook that failed counts a failure: a start the startup's end
// cut short (a parallel hook when another failed, every running hook when
// the startup is abandoned, at a shutdown say) did not fail by itself, and
// an alert on it would name a hook that did nothing wrong.
func TestCutShortStartsAreNoFailures(t *testing.T) {
	waiting := func(entered chan<- struct{}) func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	for _, tt := range []struct {
		name    string
		abandon bool // cancel the startup, rather than fail a hook
		want    map[string]float64
	}{
		{"another hook failed", false, map[string]float64{"db": 1, "cache": 0}},
		{"the startup abandoned", true, map[string]float64{"db": 0, "cache": 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := NewLifespan(prometheus.NewRegistry())
			entered := make(chan struct{}, 2)
			l := &lifespan.App{Name: "api", Observer: m.OnEvent, Concurrency: 2}
			ctx, abandon := context.WithCancel(t.Context())
			defer abandon()
			db := waiting(entered)
			if !tt.abandon {
				db = func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
					<-entered // cache is running
					return nil, errors.New("db unreachable")
				}
			}
			l.Append(lifespan.Hook{Name: "db", Start: db}, lifespan.Hook{Name: "cache", Start: waiting(entered)})
			go func() {
				if tt.abandon {
					<-entered
					<-entered
					abandon()
				}
			}()
			if err := l.Start(ctx); err == nil {
				t.Fatal("the startup succeeded")
			}
			for hook, want := range tt.want {
				if got := testutil.ToFloat64(m.hookFailures.WithLabelValues("api", hook, "start")); got != want {
					t.Errorf("failures of %s = %v, want %v", hook, got, want)
				}
			}
		})
	}
}

// A stop that times out and fails later sends a late HookStopped: the
// timeout is the failure, and the late event adds no second one. A start
// that times out and returns later is stopped then, and that stop is one
// of its own: its duration is recorded, and it fails, it is a stop
// failure (one no event counted before; it used to be dropped unseen).
func TestLateEventsCountOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, _ := NewLifespan(reg)
		var mu sync.Mutex
		var late []lifespan.Event
		record := func(e lifespan.Event) {
			if e.Late {
				mu.Lock()
				late = append(late, e)
				mu.Unlock()
			}
		}
		release := make(chan struct{})
		stuckStop := &lifespan.App{Name: "api", StopTimeout: time.Second, Observer: lifespan.Observers(m.OnEvent, record)}
		stuckStop.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { <-release; return errors.New("flush") }, nil
		}})
		if err := stuckStop.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := stuckStop.Stop(t.Context()); err == nil {
			t.Fatal("Stop = nil, want the stop's timeout")
		}
		lateStart := &lifespan.App{Name: "jobs", Observer: lifespan.Observers(m.OnEvent, record)}
		lateStart.Append(
			lifespan.Hook{Name: "slow", StartTimeout: time.Second, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
				<-release
				return func(context.Context) error { time.Sleep(300 * time.Millisecond); return nil }, nil
			}},
			lifespan.Hook{Name: "leaky", StartTimeout: time.Second, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
				<-release
				return func(context.Context) error { return errors.New("flush failed") }, nil
			}},
		)
		lateStart.Concurrency = 2
		if err := lateStart.Start(t.Context()); err == nil {
			t.Fatal("Start = nil, want the starts' timeouts")
		}
		close(release)
		time.Sleep(time.Second) // the bubble's clock: past slow's 300ms stop
		synctest.Wait()         // the late stop failed; the late starts were stopped
		if len(late) != 1 || late[0].Hook != "db" {
			t.Fatalf("late events %+v, want only db's late stop", late)
		}
		for _, tt := range []struct {
			app, hook, phase string
			failures         float64
		}{
			{"api", "db", "stop", 1},
			{"jobs", "slow", "start", 1}, {"jobs", "slow", "stop", 0},
			{"jobs", "leaky", "start", 1}, {"jobs", "leaky", "stop", 1},
		} {
			if got := testutil.ToFloat64(m.hookFailures.WithLabelValues(tt.app, tt.hook, tt.phase)); got != tt.failures {
				t.Errorf("berth_hook_failures_total{app=%q,hook=%q,phase=%q} = %v, want %v", tt.app, tt.hook, tt.phase, got, tt.failures)
			}
		}
		// A timed-out start or stop is waited for the late grace (100ms)
		// past its 1s timeout before it counts as failed: 1.1s each. The
		// late start's stop took its 300ms; a failed stop's duration of 0
		// is not recorded.
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP berth_hook_duration_seconds How long each hook's start or stop took.
# TYPE berth_hook_duration_seconds gauge
berth_hook_duration_seconds{app="api",hook="db",phase="start"} 0
berth_hook_duration_seconds{app="api",hook="db",phase="stop"} 1.1
berth_hook_duration_seconds{app="jobs",hook="leaky",phase="start"} 1.1
berth_hook_duration_seconds{app="jobs",hook="slow",phase="start"} 1.1
berth_hook_duration_seconds{app="jobs",hook="slow",phase="stop"} 0.3
`), "berth_hook_duration_seconds"); err != nil {
			t.Error(err)
		}
	})
}

// A start cut short by another hook's failure that then fails by itself
// (not for its cancellation) is that hook's failure after all: reported
// in a late HookStarted, counted once. It used to be dropped unseen.
func TestACutShortStartThatFailsByItselfIsCounted(t *testing.T) {
	m, _ := NewLifespan(prometheus.NewRegistry())
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var late []lifespan.Event
	l := &lifespan.App{Name: "api", Concurrency: 2, Observer: func(e lifespan.Event) {
		m.OnEvent(e)
		if e.Kind == lifespan.HookStarted && e.Hook == "cache" {
			if e.CutShort {
				close(release) // cache fails by itself only once it was cut short
			}
			if e.Late {
				mu.Lock()
				late = append(late, e)
				mu.Unlock()
			}
		}
	}}
	l.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			<-entered
			return nil, errors.New("db unreachable")
		}},
		lifespan.Hook{Name: "cache", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			close(entered)
			<-release // ignores its context
			return nil, errors.New("cache file corrupt")
		}},
	)
	if err := l.Start(t.Context()); err == nil {
		t.Fatal("the startup succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) != 1 || late[0].Err == nil || !strings.Contains(late[0].Err.Error(), `hook "cache": start, after the startup ended: cache file corrupt`) {
		t.Errorf("late events %+v; want one, with cache's own failure", late)
	}
	for hook, want := range map[string]float64{"db": 1, "cache": 1} {
		if got := testutil.ToFloat64(m.hookFailures.WithLabelValues("api", hook, "start")); got != want {
			t.Errorf("failures of %s = %v, want %v", hook, got, want)
		}
	}
}

// A failed startup still sets its duration ("successful or not"); a hook
// outcome that failed without taking any time (nothing ran) sets no hook
// duration, where one that failed after running sets its own.
func TestFailedStartupFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewLifespan(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []lifespan.Event{
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStarting},
		{Kind: lifespan.HookStarting, App: "api", Hook: "db"},
		{Kind: lifespan.HookStarted, App: "api", Hook: "db", Duration: 1500 * time.Millisecond, Err: errors.New("refused")},
		{Kind: lifespan.HookStopped, App: "api", Hook: "cache", Err: errors.New("never started")},
		{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseFailed, Duration: 1600 * time.Millisecond},
	} {
		m.OnEvent(e)
	}
	want := `
# HELP berth_hook_duration_seconds How long each hook's start or stop took.
# TYPE berth_hook_duration_seconds gauge
berth_hook_duration_seconds{app="api",hook="db",phase="start"} 1.5
# HELP berth_startup_duration_seconds How long the app's whole startup took, successful or not (a failed one's rollback included).
# TYPE berth_startup_duration_seconds gauge
berth_startup_duration_seconds{app="api"} 1.6
# HELP berth_phase 1 for the app's current lifespan phase, 0 for the others.
# TYPE berth_phase gauge
berth_phase{app="api",phase="failed"} 1
berth_phase{app="api",phase="new"} 0
berth_phase{app="api",phase="ready"} 0
berth_phase{app="api",phase="starting"} 0
berth_phase{app="api",phase="stopped"} 0
berth_phase{app="api",phase="stopping"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_hook_duration_seconds", "berth_startup_duration_seconds", "berth_phase"); err != nil {
		t.Fatal(err)
	}
}

// A name that is not UTF-8 cannot be a label value: client_golang would
// panic on it, and the event would be lost. Its bad bytes are replaced.
func TestLifespanLabelsNotUTF8(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := NewLifespan(reg)
	m.OnEvent(lifespan.Event{Kind: lifespan.HookStarting, App: "api\xff", Hook: "db\xfe"})
	m.OnEvent(lifespan.Event{Kind: lifespan.HookStarted, App: "api\xff", Hook: "db\xfe", Err: errors.New("refused")})
	m.OnEvent(lifespan.Event{Kind: lifespan.TaskStarted, App: "api\xff", Hook: "job\xfd"})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP berth_hook_failures_total Hook starts or stops that failed, panicked or timed out (not a start the startup's end cut short); 0 from the hook's start.
# TYPE berth_hook_failures_total counter
berth_hook_failures_total{app="api�",hook="db�",phase="start"} 1
berth_hook_failures_total{app="api�",hook="db�",phase="stop"} 0
# HELP berth_task_failures_total Background tasks that ended with an error or a panic; 0 from the task's start.
# TYPE berth_task_failures_total counter
berth_task_failures_total{app="api�",task="job�"} 0
`), "berth_hook_failures_total", "berth_task_failures_total"); err != nil {
		t.Fatal(err)
	}
}

// phaseValue is berth_phase{app, phase} as reg exposes it, or -1 when
// reg has no such series.
func phaseValue(t *testing.T, reg *prometheus.Registry, app, phase string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "berth_phase" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["app"] == app && labels["phase"] == phase {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// Every scrape sees exactly one phase at 1 for an app, as berth_phase's
// HELP says, even while the app changes phase: six gauges set one by one
// showed none at 1 between zeroing the old phase and setting the new.
func TestPhaseIsOneForExactlyOnePhaseInEveryScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewLifespan(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnEvent(lifespan.Event{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStarting})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m.OnEvent(lifespan.Event{Kind: lifespan.PhaseChanged, App: "api", Phase: lifespan.PhaseStarting + lifespan.Phase(i%3)})
		}
	})
	defer func() { close(stop); wg.Wait() }()
	for i := range 2000 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		ones, series := 0.0, 0
		for _, mf := range mfs {
			if mf.GetName() == "berth_phase" {
				for _, s := range mf.GetMetric() {
					ones += s.GetGauge().GetValue()
					series++
				}
			}
		}
		if ones != 1 || series != 6 {
			t.Fatalf("scrape %d: berth_phase is 1 for %v of its %d phases, want exactly 1 of 6", i, ones, series)
		}
	}
}
