//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	"sigs.k8s.io/yaml"
)

// TestPrometheusSeesEveryFigure asks a real Prometheus, in PromQL, for the
// figures berth records: the startup gate's 503s, and, after a rolling
// update under load, every replaced pod's shutdown (pushed at exit), every
// new pod's startup and hooks, and the requests served, which must equal
// the load generator's own count.
func TestPrometheusSeesEveryFigure(t *testing.T) {
	var c *cluster
	var p *prom
	var fresh []corev1.Pod
	f := features.New("Prometheus has every figure").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c, p = newCluster(t, cfg), newProm(t)
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			waitFor(t, "Prometheus to scrape every berth pod", 2*time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, `count(up{job="berth", namespace="berth"} == 1)`)
				return err == nil && sum(v) == replicas, nil
			})
			return ctx
		}).
		Assess("the startup gate's 503s are counted", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			before, err := c.pods(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			// A check that fails below still waits for the upgrade: the
			// next scenario's own would find it in progress.
			upgraded := sync.OnceValue(c.upgradeAsync(mainRelease, mainNamespace, "podAnnotations.rollout=prom-fresh", "config.demoWarmup=4s"))
			defer upgraded()
			const turnedAway = 3
			warming, outs, errs := c.probeStarting(ctx, t, before, replicas, slices.Repeat([]string{"http://127.0.0.1:8080/api/v1/info"}, turnedAway)...)
			if err := upgraded(); err != nil {
				t.Fatal(err)
			}
			for i := range turnedAway {
				if errs[i] == nil || !strings.Contains(outs[i], "503") {
					t.Fatalf("during the warm-up: %v\n%s", errs[i], outs[i])
				}
			}
			fresh = c.waitSettled(t, mainNamespace, mainRelease, replicas)
			q := fmt.Sprintf(`berth_http_requests_turned_away_total{job="berth", pod=%q}`, warming.Name)
			waitFor(t, q+" to be 3", time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, q)
				return err == nil && sum(v) == turnedAway, nil
			})
			return ctx
		}).
		Assess("a rolling update under load: shutdowns pushed, startups scraped, requests served equal to the load's", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			old := podNames(fresh) // pods that have served nothing yet
			tl := c.recordTimeline(t, "rolling update, figures in Prometheus")
			began := time.Now()
			ld := startLoad(t, apiURL)
			c.waitServing(t, mainNamespace, fresh) // a baseline: the load reaches every pod before the rollout
			// The drain values here reach only the pods this rollout makes:
			// the pods it replaces keep the drain they started with, the
			// chart's as the data scenario left it (the scenarios run in
			// file order; a -count or -shuffle run that puts
			// TestZeroDowntime's control, which has none, right before
			// this would see requests cut off).
			if err := c.upgrade(mainRelease, mainNamespace, "podAnnotations.rollout=prom-1", "drain.delaySeconds=5", "drain.quietSeconds=0"); err != nil {
				t.Fatal(err) // helm's own error (the load and the timeline stop in cleanup)
			}
			current := c.waitSettled(t, mainNamespace, mainRelease, replicas)
			rep := ld.stop(began)
			defer tl.finish(t, rep.Outcomes)
			rep.check(t, "rolling update", false)
			born := podNames(current)
			oldRe, bornRe := strings.Join(old, "|"), strings.Join(born, "|")

			pushed := fmt.Sprintf(`berth_shutdown_duration_seconds{job="berth-exit", pod=~%q}`, oldRe)
			waitFor(t, "every replaced pod's shutdown in Prometheus", time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, pushed)
				return err == nil && len(v) == len(old), nil
			})
			durations, err := p.query(ctx, pushed)
			if err != nil || len(durations) != len(old) {
				t.Fatalf("the replaced pods' shutdown durations: %v, %v; want %d", durations, err, len(old))
			}
			grace, err := p.query(ctx, fmt.Sprintf(`berth_grace_period_seconds{job="berth-exit", pod=~%q}`, oldRe))
			if err != nil {
				t.Fatal(err)
			}
			for pod, d := range byPod(durations) {
				if g := byPod(grace)[pod]; g == 0 || d <= 0 || d > g {
					t.Errorf("pod %s: shutdown %.3fs, grace period %.0fs", pod, d, g)
				}
			}
			for _, check := range []struct {
				what, q string
				want    int
			}{
				{"nothing cut off", fmt.Sprintf(`berth_drain_cut_off_requests{job="berth-exit", pod=~%q} == 0`, oldRe), len(old)},
				{"every lifecycle signal's time", fmt.Sprintf(`berth_lifecycle_signal_timestamp_seconds{job="berth-exit", pod=~%q}`, oldRe), 9 * len(old)},
				{"each stop hook's duration", fmt.Sprintf(`berth_hook_duration_seconds{job="berth-exit", phase="stop", pod=~%q}`, oldRe), 4 * len(old)},
				{"each stop hook's outcome", fmt.Sprintf(`berth_hook_failures_total{job="berth-exit", phase="stop", pod=~%q} == 0`, oldRe), 4 * len(old)},
				{"each new pod's startup", fmt.Sprintf(`berth_startup_duration_seconds{job="berth", pod=~%q} > 0`, bornRe), len(born)},
				{"each new pod's hooks", fmt.Sprintf(`berth_hook_duration_seconds{job="berth", phase="start", pod=~%q}`, bornRe), 4 * len(born)},
			} {
				v, err := p.query(ctx, check.q)
				if err != nil || len(v) != check.want {
					t.Errorf("%s: %s gave %d series (%v), want %d", check.what, check.q, len(v), err, check.want)
				}
			}
			served := fmt.Sprintf(`sum(berth_http_requests_total{job="berth-exit", code=~"2..", pod=~%q}) + sum(berth_http_requests_total{job="berth", code=~"2..", pod=~%q})`, oldRe, bornRe)
			succeeded := float64(rep.Total - rep.Failed)
			got := -1.0
			waitFor(t, "Prometheus's count of requests served to reach the load's", time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, served)
				if err != nil {
					return false, err
				}
				if s := sum(v); s != got {
					got = s
					t.Logf("Prometheus counts %v requests served; the load saw %v succeed (%d of them retried by the client)", got, succeeded, rep.Retried)
				}
				return got == succeeded, nil
			})
			t.Logf("the load saw %v requests succeed; berth's pods report %v served (%d replaced pods, pushed at exit, and %d new ones, scraped)", succeeded, got, len(old), len(born))
			return ctx
		}).
		Assess("the chart's alert rules are loaded and none fires", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			rules, err := p.api.Rules(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Every alert the chart ships, as the chart renders it today,
			// loaded once for each release (ruleReleases).
			text, err := chartRules(cfg.KubeconfigFile(), mainRelease, mainNamespace)
			if err != nil {
				t.Fatal(err)
			}
			var shipped struct {
				Groups []struct{ Rules []struct{ Alert string } }
			}
			if err := yaml.Unmarshal([]byte(text), &shipped); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, g := range shipped.Groups {
				for _, r := range g.Rules {
					want = append(want, r.Alert)
				}
			}
			files := map[string][]string{} // rule file: its healthy alerts
			for _, g := range rules.Groups {
				for _, r := range g.Rules {
					if a, ok := r.(promv1.AlertingRule); ok {
						if a.Health != promv1.RuleHealthGood {
							t.Errorf("rule %s (%s): health %s, %s", a.Name, g.File, a.Health, a.LastError)
						}
						if a.State == "firing" {
							for _, al := range a.Alerts {
								t.Errorf("alert %s firing: %v (value %s, active since %v)", a.Name, al.Labels, al.Value, al.ActiveAt)
							}
						}
						files[g.File] = append(files[g.File], a.Name)
					}
				}
			}
			if len(want) == 0 || len(files) != len(ruleReleases) {
				t.Errorf("rule files loaded %v, want one for each of %v", slices.Collect(maps.Keys(files)), ruleReleases)
			}
			for file, healthy := range files {
				if !slices.Equal(healthy, want) {
					t.Errorf("%s: alerting rules loaded %v, the chart ships %v", file, healthy, want)
				}
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}
