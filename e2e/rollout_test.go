//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	"sigs.k8s.io/e2e-framework/third_party/helm"
)

const (
	replicas = 3
	warmup   = 5 * time.Second
)

// TestZeroDowntime runs against the release TestMain installed: it
// proves readiness gating, then zero failed requests through a rolling
// update, a pod deletion and a rolling update with the quiet-period drain,
// all under load, then runs the same rollout with the drain disabled as a
// control and prints the figures side by side.
func TestZeroDowntime(t *testing.T) {
	var c *cluster
	figures := map[string]loadReport{}
	shutdowns := map[string][]time.Duration{}
	f := features.New("zero-downtime rollouts").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c = newCluster(t, cfg)
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			return ctx
		}).
		Assess("readiness gating: pods are Ready no sooner than the warm-up and serve only after it", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			before, err := c.pods(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			// The drain as the chart ships it (a 5s delay, no quiet period),
			// whatever an earlier run on a reused cluster left. A check that
			// fails below still waits for the upgrade.
			upgraded := sync.OnceValue(c.upgradeAsync(mainRelease, mainNamespace, "config.demoWarmup="+warmup.String(), "drain.delaySeconds=5", "drain.quietSeconds=0"))
			defer upgraded()

			// Catch a new pod while it is still starting (its cache not
			// warm yet): it serves no API request, fails its startup probe
			// and names the cache hook in its readiness.
			probes := []struct{ url, want string }{
				{"http://127.0.0.1:8080/api/v1/info", "503 Service Unavailable"},
				{"http://127.0.0.1:9090/startupz?verbose", "[-]lifespan failed"},
				{readinessURL, "[-]hook/berth/cache failed: hook "}, // pending behind the database, or starting
			}
			urls := []string{probes[0].url, probes[1].url}
			_, outs, errs := c.probeStarting(ctx, t, before, replicas, urls...)
			for i, probe := range probes {
				if errs[i] == nil || !strings.Contains(outs[i], probe.want) {
					t.Errorf("during the startup, %s: err=%v, output:\n%s\nwant a failure showing %q", probe.url, errs[i], outs[i], probe.want)
				}
			}
			if err := upgraded(); err != nil {
				t.Fatal(err)
			}
			for _, p := range c.waitSettled(t, mainNamespace, mainRelease, replicas) {
				// The pod's own log times its startup to the millisecond:
				// StartupComplete at least the warm-up after Listening. The
				// kubelet's Ready has 1s resolution: it may not come in an
				// earlier second than StartupComplete.
				text, err := c.logs(ctx, mainNamespace, p.Name, "server", false)
				if err != nil {
					t.Fatal(err)
				}
				lines := parseLogs(text)
				listening := mustFind(t, lines, text, "Listening")
				complete := mustFind(t, lines, text, "StartupComplete")
				if gap := complete.Time.Sub(listening.Time); gap < warmup {
					t.Errorf("pod %s completed its startup %v after listening, before the %v warm-up ended", p.Name, gap, warmup)
				} else {
					t.Logf("pod %s completed its startup %v after listening (warm-up %v)", p.Name, gap.Round(time.Millisecond), warmup)
				}
				if ready := readySince(p); ready.Before(complete.Time.Truncate(time.Second)) {
					t.Errorf("pod %s Ready at %v, before its startup completed at %v", p.Name, ready, complete.Time)
				}
				if out, err := c.exec(ctx, mainNamespace, p.Name, "server", "/server", "probe", "http://127.0.0.1:8080/api/v1/info"); err != nil {
					t.Errorf("pod %s after warm-up: %v\n%s", p.Name, err, out)
				}
			}
			return ctx
		}).
		Assess("metrics: per-hook startup durations match the warm-up", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			pods := c.waitSettled(t, mainNamespace, mainRelease, replicas)
			out, err := c.exec(ctx, mainNamespace, pods[0].Name, "server", "/server", "probe", "http://127.0.0.1:9090/metrics")
			if err != nil {
				t.Fatalf("/metrics: %v", err)
			}
			cache := metricValue(t, out, `berth_hook_duration_seconds{app="berth",hook="cache",phase="start"}`)
			startup := metricValue(t, out, `berth_startup_duration_seconds{app="berth"}`)
			if cache < warmup.Seconds() || cache > warmup.Seconds()+2 {
				t.Errorf("cache hook start took %.3fs; the configured warm-up is %v", cache, warmup)
			}
			if startup < cache {
				t.Errorf("whole startup %.3fs is shorter than the cache hook's %.3fs", startup, cache)
			}
			for _, series := range []string{"berth_ready 1", `berth_check_up{check="hook/berth/cache",probe="readyz"} 1`, `go_goroutines`, `process_cpu_seconds_total`} {
				if !strings.Contains(out, series) {
					t.Errorf("/metrics lacks %s", series)
				}
			}
			// The Go runtime's soft memory limit is nine tenths of the
			// container's, read from its cgroup.
			checked := false
			for _, ctr := range pods[0].Spec.Containers {
				if ctr.Name != "server" {
					continue
				}
				checked = true
				want := float64(int64(float64(ctr.Resources.Limits.Memory().Value()) * 0.9))
				if got := metricValue(t, out, "go_gc_gomemlimit_bytes"); ctr.Resources.Limits.Memory().IsZero() || got != want {
					t.Errorf("go_gc_gomemlimit_bytes = %.0f; want %.0f, 0.9 of the container's memory limit %v", got, want, ctr.Resources.Limits.Memory())
				}
			}
			if !checked {
				t.Errorf("pod %s has no container named server", pods[0].Name)
			}
			t.Logf("cache hook start %.3fs, whole startup %.3fs", cache, startup)
			return ctx
		}).
		Assess("helm test passes in a restricted namespace", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns, err := c.cs.CoreV1().Namespaces().Get(ctx, mainNamespace, metav1.GetOptions{})
			if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Fatalf("namespace %s is not labelled restricted: %v %v", mainNamespace, ns.Labels, err)
			}
			if err := c.helmTest(mainRelease, mainNamespace); err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Assess("rolling update under load: zero failed requests", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var delays []time.Duration
			figures["berth rolling update"], shutdowns["fixed delay (5s)"], delays = c.rolloutUnderLoad(t, "berth-1", false, "fixed")
			// A fixed delay is waited out whole: the quiet step's figures
			// are measured against it.
			for _, d := range delays {
				if d < 5*time.Second-time.Millisecond {
					t.Errorf("a replaced pod's fixed delay (ShutdownInitiated to DrainStarted) took %v, not the 5s asked for (all: %v)", d, delays)
				}
			}
			return ctx
		}).
		Assess("pod deletion under load: zero failed requests, in-flight requests complete", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			victim := c.waitSettled(t, mainNamespace, mainRelease, replicas)[0]
			logs := c.followLogs(t, mainNamespace, victim.Name, "server")
			tl := c.recordTimeline(t, "pod deletion")
			began := time.Now()
			ld := startLoad(t, apiURL)
			c.waitServing(t, mainNamespace, c.waitSettled(t, mainNamespace, mainRelease, replicas))
			// A request that outlasts the drain delay (8s against 5s), sent
			// to the victim itself through the API server's pod proxy just
			// before its deletion (the pod serves through the 5s delay, so it
			// arrives), is in flight when the drain starts: the drain must
			// let it finish. The load's own requests (1s at most) are done by
			// then, as kube-proxy routes them elsewhere during the delay.
			long := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				raw, err := c.cs.CoreV1().Pods(mainNamespace).ProxyGet("http", victim.Name, "8080", "/api/v1/work", map[string]string{"duration": "8s"}).DoRaw(ctx)
				if err == nil && !strings.Contains(string(raw), `"worked":"8s"`) {
					err = fmt.Errorf("answered %s", raw)
				}
				long <- err
			}()
			if err := c.cs.CoreV1().Pods(mainNamespace).Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitGone(t, mainNamespace, victim.Name, 2*time.Minute)
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			rep := ld.stop(began)
			tl.finish(t, rep.Outcomes)
			figures["berth pod deletion"] = rep
			t.Logf("pod deletion: %s", rep)
			rep.check(t, "pod deletion", false)
			text := <-logs
			lines := parseLogs(text)
			done := mustFind(t, lines, text, "shutdown complete")
			if cut := done.Fields["cut_off"]; fmt.Sprint(cut) != "0" {
				t.Errorf("the deleted pod cut off %v requests", cut)
			}
			if n, _ := done.Fields["in_flight_at_drain_start"].(float64); n < 1 {
				t.Errorf("%v requests in flight at the drain's start, want the long one at least", done.Fields["in_flight_at_drain_start"])
			}
			if err := <-long; err != nil {
				t.Errorf("the request in flight across the drain: %v", err)
			}
			stopped := mustFind(t, lines, text, "lifespan stopped")
			// How many requests still arrived during the delay depends on how
			// fast kube-proxy learns of the deletion; it is reported, not asserted.
			t.Logf("deleted pod's shutdown: %v served during the delay, %v in flight at the drain's start, %v cut off, total %vs; lifespan stop %vs",
				done.Fields["served_during_delay"], done.Fields["in_flight_at_drain_start"], done.Fields["cut_off"],
				done.Fields["total_seconds"], stopped.Fields["duration_seconds"])
			return ctx
		}).
		Assess("quiet-period drain: a rolling update under load ends its shutdowns sooner (median), with zero failed requests", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			if err := c.upgrade(mainRelease, mainNamespace, "drain.delaySeconds=5", "drain.quietSeconds=1"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			var delays []time.Duration
			figures["berth rolling update, quiet period"], shutdowns["quiet period (1s, delay 5s)"], delays = c.rolloutUnderLoad(t, "quiet-1", false, "quiet")
			// The quiet period ended the delay once requests stopped coming:
			// well before the 5s bound in the median pod. A quiet period that
			// did nothing would wait the 5s out in every pod.
			if d := median(delays); d >= 4*time.Second {
				t.Errorf("median delay with a 1s quiet period (ShutdownInitiated to DrainStarted) %v, want under 4s of the 5s bound: the quiet period did not end it (all: %v)", d, delays)
			}
			// Each median over the three replaced pods (a pod whose log
			// lacked its lines has already failed the step).
			for _, k := range []string{"fixed delay (5s)", "quiet period (1s, delay 5s)"} {
				if n := len(shutdowns[k]); n != replicas {
					t.Fatalf("%d shutdown times for %s, want one per replaced pod (%d)", n, k, replicas)
				}
			}
			fixed, quiet := median(shutdowns["fixed delay (5s)"]), median(shutdowns["quiet period (1s, delay 5s)"])
			if quiet >= fixed {
				t.Errorf("median SIGTERM-to-exit with the quiet period %v, not shorter than the fixed delay's %v", quiet, fixed)
			}
			return ctx
		}).
		// The control runs last: the upgrade that disables the drain, and any
		// after it, retire pods that drop connections, and a route to such a
		// pod can outlive it for a moment, into the next scenario's load.
		Assess("control: the same rollout with the drain disabled", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			if err := c.upgrade(mainRelease, mainNamespace, "drain.delaySeconds=0", "drain.quietSeconds=0"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			rep, _, _ := c.rolloutUnderLoad(t, "control-1", true, "")
			figures["control rolling update (no drain delay)"] = rep
			// The control proves the load can see a failure: without it,
			// every "0 failed" above would mean nothing.
			if rep.Failed == 0 {
				t.Errorf("the control rollout, without a drain delay, failed no request of %d: the load cannot tell a drain from none", rep.Total)
			}
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var names []string
			for k := range figures {
				names = append(names, k)
			}
			slices.Sort(names)
			t.Log("failed requests, side by side:")
			for _, k := range names {
				t.Logf("  %-42s %d failed of %d (%d retried by the client)", k, figures[k].Failed, figures[k].Total, figures[k].Retried)
			}
			t.Log("SIGTERM to exit of the replaced pods, under load:")
			for _, k := range slices.Sorted(maps.Keys(shutdowns)) {
				d := shutdowns[k]
				if len(d) == 0 { // its scenario failed before any pod's log was read
					continue
				}
				t.Logf("  %-30s median %v, max %v (%d pods: %v)", k, median(d), slices.Max(d), len(d), d)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// rolloutUnderLoad changes the pod template under load and reports the
// load's figures and each replaced pod's SIGTERM-to-exit time and its
// delay (from its own log: ShutdownInitiated to "exiting", and to
// DrainStarted); unless control, any failed request fails the test, and
// unless mode is empty, a replaced pod whose ReadinessFailing line gives
// another drain_mode.
func (c *cluster) rolloutUnderLoad(t *testing.T, revision string, control bool, mode string) (rep loadReport, took, delays []time.Duration) {
	t.Helper()
	old := c.waitSettled(t, mainNamespace, mainRelease, replicas)
	logs := make([]<-chan string, len(old))
	for i, p := range old {
		logs[i] = c.followLogs(t, mainNamespace, p.Name, "server")
	}
	tl := c.recordTimeline(t, "rolling update "+revision)
	began := time.Now()
	ld := startLoad(t, apiURL)
	c.waitServing(t, mainNamespace, old) // a baseline: the load reaches every pod before the rollout
	if err := c.upgrade(mainRelease, mainNamespace, "podAnnotations.rollout="+revision); err != nil {
		t.Fatal(err) // helm's own error, not a wait for pods that never roll (the load stops in cleanup)
	}
	c.waitSettled(t, mainNamespace, mainRelease, replicas)
	rep = ld.stop(began)
	tl.finish(t, rep.Outcomes)
	t.Logf("rollout %s: %s", revision, rep)
	rep.check(t, "rolling update "+revision, control)
	for i, l := range logs {
		text := <-l
		lines := parseLogs(text)
		t0, ok1 := find(lines, "ShutdownInitiated")
		exit, ok2 := find(lines, "exiting")
		drain, ok3 := find(lines, "DrainStarted")
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("pod %s: no ShutdownInitiated, DrainStarted or exiting line in its log:\n%s", old[i].Name, text)
			continue
		}
		took = append(took, exit.Time.Sub(t0.Time).Round(time.Millisecond))
		// The signals' own times, which the line carries: its log time is
		// when it was written, a little after.
		if since, ok := drain.Fields["since_shutdown_seconds"].(float64); ok {
			delays = append(delays, time.Duration(since*float64(time.Second)).Round(time.Millisecond))
		} else {
			t.Errorf("pod %s: its DrainStarted line has no since_shutdown_seconds: %v", old[i].Name, drain.Fields)
		}
		if mode != "" {
			if rf, ok := find(lines, "ReadinessFailing"); !ok || fmt.Sprint(rf.Fields["drain_mode"]) != mode {
				t.Errorf("pod %s: its ReadinessFailing line gives drain_mode %v, want %s (the chart's drain values did not reach it)", old[i].Name, rf.Fields["drain_mode"], mode)
			}
		}
		// The client retries a GET whose connection closed unanswered, so
		// a request the drain cut off could still succeed on another pod:
		// the pod's own report says whether it cut any.
		if done, ok := find(lines, "shutdown complete"); !ok {
			t.Errorf("pod %s: no shutdown complete line in its log:\n%s", old[i].Name, text)
		} else if cut := fmt.Sprint(done.Fields["cut_off"]); !control && cut != "0" {
			t.Errorf("pod %s cut off %s requests in its drain", old[i].Name, cut)
		}
		if rep.Failed > 0 { // to place the failures on this pod's timeline
			var marks []string
			for _, name := range []string{"ShutdownInitiated", "DrainStarted", "InFlightDrained", "exiting"} {
				if l, ok := find(lines, name); ok {
					marks = append(marks, fmt.Sprintf("%s %s", name, l.Time.Format("15:04:05.000")))
				}
			}
			t.Logf("pod %s: %s", old[i].Name, strings.Join(marks, ", "))
		}
	}
	if rep.Failed > 0 {
		var at []string
		for _, f := range rep.Failures {
			at = append(at, f.Format("15:04:05.000"))
		}
		t.Logf("failed requests sent at %s", strings.Join(at, ", "))
	}
	return rep, took, delays
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[len(s)/2]
}

func (c *cluster) helmTest(release, ns string) error {
	return c.helm.RunTest(helm.WithName(release), helm.WithNamespace(ns), helm.WithTimeout("3m"))
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
