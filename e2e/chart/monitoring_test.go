package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/httpurl"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/common/model"
	promlabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	serviceMonitorAPI = "monitoring.coreos.com/v1/ServiceMonitor"
	prometheusRuleAPI = "monitoring.coreos.com/v1/PrometheusRule"
)

func TestScrapeAnnotationsAndPushAtExit(t *testing.T) {
	r := mustRender(t, nil)
	tmpl := r.deployment.Spec.Template
	for k, v := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"} {
		if tmpl.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, tmpl.Annotations[k], v)
		}
	}
	e := env(container(t, tmpl.Spec.Containers, "server"))
	if _, ok := e["BERTH_PUSHGATEWAY_URL"]; ok {
		t.Error("a push configured by default")
	}
	r = mustRender(t, map[string]any{"metrics": map[string]any{"scrapeAnnotations": false,
		"pushgateway": map[string]any{"url": "http://pushgateway.monitoring:9091", "timeoutSeconds": 3}}})
	tmpl = r.deployment.Spec.Template
	e = env(container(t, tmpl.Spec.Containers, "server"))
	if e["BERTH_PUSHGATEWAY_URL"] != "http://pushgateway.monitoring:9091" || e["BERTH_PUSH_TIMEOUT"] != "3s" {
		t.Errorf("push env %v", e)
	}
	if *tmpl.Spec.TerminationGracePeriodSeconds != 40 {
		t.Errorf("grace %d, want 37 + the 3s push", *tmpl.Spec.TerminationGracePeriodSeconds)
	}
	if _, ok := tmpl.Annotations["prometheus.io/scrape"]; ok {
		t.Error("scrape annotations without metrics.scrapeAnnotations")
	}
}

// The chart takes the Pushgateway URLs the service takes (httpurl.Valid,
// which config.Load applies to BERTH_PUSHGATEWAY_URL), and refuses at
// install the ones it refuses (the pods exited 2 and crash-looped): a
// stray space, a port that is no number or out of range, no host, a bad
// escape. Each URL is judged by the service's own check, so the schema's
// pattern cannot drift from it in either direction on these.
func TestPushgatewayURLsAreTheServices(t *testing.T) {
	for _, url := range []string{
		"http://pushgateway.monitoring:9091", "https://push.example.com", "http://pushgateway:9091/prefix/", "http://[::1]:9091",
		"http://user:s3cret@pushgateway:65535", "HTTP://pushgateway/", "http://u:p@ss@pg:9091", "http://[fe80::1%25en0]:9091",
		"http://pg:09091", "http://bücher.de/", "http://h/p x", "http://h/p%20x", "http://h?x=%zz", "http://h:9091/%41", "http://@h/",
		"http://pushgateway.monitoring:9091 ", "http://pushgateway:9O91", "http://:9091", "http://pg:0", "http://pg:65536", "http://pg:",
		"pushgateway:9091", "ftp://pg/", "http://h/%zz", "http://a%41b/", "http://h/a\x7fb", "http://h#%zz", "http://a b/", "http://h/\tx",
		"http://[::1%zz]:1", "http://h%2f/", "http://h:00000/", "http://h:0065536", "http://u%zz@h/", "http://h/%",
		"http://admin:Pa^ss{1}@push.example.com:9091", "http://admin:pässword@pg:9091", "http://u:p%5Ess@h/", "http://svc.ns.svc.cluster.local:9091",
	} {
		t.Run(url, func(t *testing.T) {
			values := map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": url}}}
			if httpurl.Valid(url) {
				accepted(t, values, "BERTH_PUSHGATEWAY_URL")
			} else {
				refused(t, values, "metrics.pushgateway.url")
			}
		})
	}
}

func TestMonitoringObjectsNeedTheirCRDs(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		apis   []string
		want   string // an error, or "" for the kind that must render
		kind   string
	}{
		{"ServiceMonitor without its CRD", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}, nil,
			"metrics.serviceMonitor.enabled=true, but the cluster has no monitoring.coreos.com/v1 ServiceMonitor CRD", ""},
		{"ServiceMonitor", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}, []string{serviceMonitorAPI}, "", "ServiceMonitor"},
		{"PrometheusRule without its CRD", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}, nil,
			"metrics.prometheusRule.enabled=true, but the cluster has no monitoring.coreos.com/v1 PrometheusRule CRD", ""},
		{"PrometheusRule", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}, []string{prometheusRuleAPI}, "", "PrometheusRule"},
		{"dashboard", map[string]any{"metrics": map[string]any{"dashboard": map[string]any{"enabled": true}}}, nil, "", "ConfigMap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, tt.values, tt.apis...)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(r.kinds, tt.kind) {
				t.Fatalf("kinds %v lack %s", r.kinds, tt.kind)
			}
		})
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if slices.Contains(mustRender(t, nil, serviceMonitorAPI, prometheusRuleAPI).kinds, kind) {
			t.Errorf("%s rendered by default", kind)
		}
	}
}

// renderedRules returns the PrometheusRule's groups as a Prometheus rule
// file.
func renderedRules(t *testing.T, values map[string]any) []byte {
	t.Helper()
	values = maps.Clone(values)
	if values == nil {
		values = map[string]any{}
	}
	values["metrics"] = map[string]any{"prometheusRule": map[string]any{"enabled": true}}
	b, err := yaml.Marshal(mustRender(t, values, prometheusRuleAPI).customOf(t, "PrometheusRule")["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rateIntervalStandIn stands in for Grafana's $__rate_interval, which is
// at least four of the data source's Scrape interval setting (the chart
// README says to set it to the real one): for Prometheus's default
// interval of a minute, four minutes.
const rateIntervalStandIn = 4 * time.Minute

// dashboardQueries returns every PromQL expression of the dashboard, with
// its $namespace and $__rate_interval variables filled in.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	r := mustRender(t, map[string]any{"metrics": map[string]any{"dashboard": map[string]any{"enabled": true}}})
	if len(r.configMaps) != 1 || r.configMaps[0].Labels["grafana_dashboard"] != "1" {
		t.Fatalf("dashboard ConfigMaps %+v, want one labelled grafana_dashboard=1", r.configMaps)
	}
	text := r.configMaps[0].Data["berth.json"]
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Name, Query string }
		}
	}
	if err := json.Unmarshal([]byte(text), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			expr := strings.ReplaceAll(q.Expr, "$namespace", "berth")
			out = append(out, strings.ReplaceAll(expr, "$__rate_interval", rateIntervalStandIn.String()))
		}
	}
	for _, v := range dash.Templating.List {
		if strings.HasPrefix(v.Query, "label_values(") { // label_values(berth_ready, namespace)
			metric, _, _ := strings.Cut(strings.TrimPrefix(v.Query, "label_values("), ",")
			out = append(out, metric)
		}
	}
	return out
}

// exported gathers every series family berth exports, from a server run
// through a whole shutdown, with a check run and a request observed.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := metrics.NewRegistry()
	lm, err := metrics.NewLifespan(reg)
	if err != nil {
		t.Fatal(err)
	}
	hm, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	hm.ObserveRequest("GET", "/api/v1/info", 200, time.Millisecond)
	checks := probes.New()
	if err := metrics.RegisterChecks(reg, checks); err != nil {
		t.Fatal(err)
	}
	app := &lifespan.App{Name: "berth", Observer: lm.OnEvent}
	app.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		s.Go("job", func(ctx context.Context) error { <-ctx.Done(); return nil })
		return nil, nil
	}})
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{app}, API: http.NotFoundHandler(), Probes: checks, APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, GracePeriod: time.Minute, ShutdownOn: []os.Signal{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	<-srv.Signals().StartupComplete.Done()
	checks.Evaluate(t.Context(), probes.Readiness, "", nil)
	srv.Shutdown()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+suffix] = true
			}
		}
	}
	return names
}

// releasePods matches the names of release rel's pods: its Deployment
// rel-berth's, NAME-HASH-XXXXX.
const releasePods = "rel-berth-[a-z0-9]{0,10}-?[a-z0-9]{5}"

// Every rule and dashboard query parses with Prometheus's own parser and
// names only series berth exports, or push_time_seconds, which the
// Pushgateway adds to each pushed group; every series a rule selects is of
// the release's (rel's, rendered in ns: its namespace and its
// Deployment's pods), so a release's rules judge its own pods only.
func TestRulesAndDashboardNameOnlyBerthsSeries(t *testing.T) {
	names := exported(t)
	names["push_time_seconds"] = true
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(renderedRules(t, nil), false, model.UTF8Validation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatalf("the rules do not parse: %v", errs)
	}
	var queries []string
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			queries = append(queries, r.Expr)
			alerts = append(alerts, r.Alert)
		}
	}
	for i, q := range queries {
		expr, err := p.ParseExpr(q)
		if err != nil {
			continue // reported below
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			if !slices.ContainsFunc(vs.LabelMatchers, func(m *promlabels.Matcher) bool {
				return m.Name == "namespace" && m.Type == promlabels.MatchEqual && m.Value == "ns"
			}) || !slices.ContainsFunc(vs.LabelMatchers, func(m *promlabels.Matcher) bool {
				return m.Name == "pod" && m.Type == promlabels.MatchRegexp && m.Value == releasePods
			}) {
				t.Errorf("%s selects %s, want only the release's pods (namespace=\"ns\", pod=~%q)", alerts[i], vs, releasePods)
			}
			return nil
		})
	}
	if want := []string{"BerthShutdownNearGracePeriod", "BerthRequestsCutOff", "BerthHookFailed", "BerthTaskFailed", "BerthStartupSlow", "BerthNotReady", "BerthDatabaseDown"}; !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
	queries = append(queries, dashboardQueries(t)...)
	for _, q := range queries {
		expr, err := p.ParseExpr(q)
		if err != nil {
			t.Errorf("%q does not parse: %v", q, err)
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok && !names[vs.Name] {
				t.Errorf("%q names %s, which berth does not export", q, vs.Name)
			}
			return nil
		})
	}
}

// Every range a dashboard query reads over (rate, increase) is Grafana's
// $__rate_interval, which follows the data source's scrape interval, or a
// fixed range that holds at least four scrapes at Prometheus's default
// interval of a minute. A panel that rates over [1m] is empty at that
// interval, where a range holds at most one sample.
func TestDashboardRangesHoldSeveralScrapes(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, q := range dashboardQueries(t) {
		expr, err := p.ParseExpr(q)
		if err != nil {
			t.Fatalf("%q does not parse: %v", q, err)
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if ms, ok := node.(*parser.MatrixSelector); ok && ms.Range < rateIntervalStandIn {
				t.Errorf("%q reads over %v: fewer than four scrapes at a one-minute interval; use [$__rate_interval]", q, ms.Range)
			}
			return nil
		})
	}
}

// A release whose full name is long has pods whose names Kubernetes cuts
// to 58 characters before the five random ones: its rules match those.
func TestRulesMatchTheCutNamesOfALongReleasesPods(t *testing.T) {
	long := strings.Repeat("a", 60)
	rules := string(renderedRules(t, map[string]any{"fullnameOverride": long}))
	if want := fmt.Sprintf("pod=~%q", long[:58]+"[a-z0-9]{5}"); !strings.Contains(rules, want) {
		t.Errorf("rules of release %s lack %s:\n%.300s", long, want, rules)
	}
}

// Each alert fires on the series that should fire it and not on the rest:
// promtool's own rule unit tests (testdata/rules_test.yaml), run with the
// promtool of PROMETHEUS_IMAGE (default prom/prometheus:v3.16.0). With
// BERTHTEST_REQUIRE_PROMTOOL set (CI sets it), no Docker fails the test instead
// of skipping it.
func TestAlertRulesUnitTests(t *testing.T) {
	image := os.Getenv("PROMETHEUS_IMAGE")
	if image == "" {
		image = "prom/prometheus:v3.16.0"
	}
	if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
		if os.Getenv("BERTHTEST_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("BERTHTEST_REQUIRE_PROMTOOL is set but %s is not available to docker: %v", image, err)
		}
		t.Skipf("no %s image to run promtool from (set BERTHTEST_REQUIRE_PROMTOOL to fail instead): %v", image, err)
	}
	// Each suite runs against the rules rendered with its values: the
	// defaults, and a 5s preStop sleep (which must not change the rules:
	// they judge each pod of the release's namespace by the sleep it reports).
	for _, suite := range []struct {
		tests  string
		values map[string]any
	}{
		{"rules_test.yaml", nil},
		{"rules_prestop_test.yaml", map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 5}}},
	} {
		t.Run(suite.tests, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tests, err := os.ReadFile(filepath.Join("testdata", suite.tests))
			if err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{"rules.yaml": renderedRules(t, suite.values), "rules_test.yaml": tests} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command("docker", "run", "--rm", "-v", dir+":/rules:ro", "--entrypoint", "/bin/promtool", image,
				"test", "rules", "/rules/rules_test.yaml").CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules: %v\n%s", err, out)
			}
			t.Logf("promtool test rules:\n%s", out)
		})
	}
}

// With a Pushgateway, a CronJob deletes the namespace's groups of pods
// that exited long ago: the service's own image, with the variables its
// prune-pushgateway command reads (and that the service's loader accepts),
// in pods the service's selector does not take for its own.
func TestPushgatewayPruneCronJob(t *testing.T) {
	if r := mustRender(t, nil); r.cronJob != nil {
		t.Error("a prune CronJob without a Pushgateway")
	}
	pushing := map[string]any{"url": "http://pushgateway.monitoring:9091"}
	off := mustRender(t, map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": pushing["url"], "prune": map[string]any{"enabled": false}}}})
	if off.cronJob != nil {
		t.Error("a prune CronJob with prune.enabled=false")
	}

	r := mustRender(t, map[string]any{"metrics": map[string]any{"pushgateway": pushing}})
	cj := r.cronJob
	if cj == nil {
		t.Fatal("no prune CronJob with metrics.pushgateway.url set")
	}
	if cj.Spec.Schedule != "17 * * * *" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("schedule %q, concurrency %q", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.Spec.JobTemplate.Spec.Template
	c := container(t, pod.Spec.Containers, "prune")
	if !slices.Equal(c.Args, []string{"prune-pushgateway", "180m", "rel-berth"}) || c.Image != r.deployment.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("args %q image %q; want prune-pushgateway 180m rel-berth (its own Deployment's pods only) in the service's image", c.Args, c.Image)
	}
	e := env(c)
	i := slices.IndexFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == "POD_NAMESPACE" })
	if e["BERTH_PUSHGATEWAY_URL"] != pushing["url"] || i < 0 || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("env %+v", c.Env)
	}
	e["POD_NAMESPACE"] = "ns"
	if cfg, err := config.Load(e); err != nil || cfg.PushgatewayURL != pushing["url"] {
		t.Errorf("the service's loader reads the CronJob's env as %+v, %v", cfg, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(r.deployment.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if selector.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector %v takes the prune pods %v for its own", selector, pod.Labels)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("pod spec %+v", pod.Spec)
	}

	// A CronJob's name has at most 52 characters (its Jobs add 11), even
	// where the release's full name has its 63.
	long := mustRender(t, map[string]any{"fullnameOverride": strings.Repeat("x", 63), "metrics": map[string]any{"pushgateway": pushing}})
	if n := len(long.cronJob.Name); n > 52 {
		t.Errorf("CronJob name %q has %d characters, over the 52 Kubernetes allows", long.cronJob.Name, n)
	}

	for _, tt := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"kept shorter than the alerts read", map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": pushing["url"], "prune": map[string]any{"olderThanMinutes": 30}},
			"prometheusRule": map[string]any{"enabled": true}}},
			"metrics.pushgateway.prune.olderThanMinutes (30) is shorter than metrics.prometheusRule.pushedFiguresMinutes (60)"},
		{"kept shorter than the alerts read, rules loaded elsewhere", map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": pushing["url"], "prune": map[string]any{"olderThanMinutes": 30}}}},
			"metrics.pushgateway.prune.olderThanMinutes (30) is shorter than metrics.prometheusRule.pushedFiguresMinutes (60)"},
		{"kept less than a scrape", map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": pushing["url"], "prune": map[string]any{"olderThanMinutes": 1}}}},
			"olderThanMinutes"},
		{"no schedule", map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": pushing["url"], "prune": map[string]any{"schedule": ""}}}},
			"schedule"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values, prometheusRuleAPI)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it refused naming %q", err, tt.want)
			}
		})
	}
}

// The longest age the chart keeps groups for is the longest the prune
// command takes: at it the CronJob passes an OLDER_THAN the command
// accepts, and a minute more is refused at install, naming the key.
func TestPruneAgeIsTheCommands(t *testing.T) {
	most := int(config.MaxPruneAge / time.Minute)
	prune := func(minutes any) map[string]any {
		return map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"url": "http://pushgateway.monitoring:9091",
			"prune": map[string]any{"enabled": true, "olderThanMinutes": minutes}}}}
	}
	// A values file hands helm every number as a float64.
	for _, minutes := range []any{most, float64(most)} {
		t.Run(fmt.Sprintf("%T %v", minutes, minutes), func(t *testing.T) {
			r, err := render(t, prune(minutes))
			if err != nil {
				t.Fatalf("olderThanMinutes=%v, the prune command's bound, refused: %v", minutes, err)
			}
			args := container(t, r.cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers, "prune").Args
			if len(args) < 2 || args[0] != "prune-pushgateway" {
				t.Fatalf("args %q, want prune-pushgateway OLDER_THAN ...", args)
			}
			// As the command reads it: a Go duration from 0s to config.MaxPruneAge.
			age, err := time.ParseDuration(args[1])
			if err != nil || age < 0 || age > config.MaxPruneAge {
				t.Fatalf("OLDER_THAN=%q (%v): the command takes a Go duration from 0s to %v", args[1], err, config.MaxPruneAge)
			}
			if age != time.Duration(most)*time.Minute {
				t.Errorf("OLDER_THAN=%q, want the %d minutes given", args[1], most)
			}
		})
	}
	refused(t, prune(most+1), "metrics.pushgateway.prune.olderThanMinutes")
}

// The ServiceMonitor scrapes the admin listener, which serves /metrics: its
// endpoint names a port of the Services it selects, and that port sends to
// the server's BERTH_ADMIN_ADDR. A port the selected Service lacks is
// skipped by the Prometheus Operator without a word, and nothing would be
// scraped; the API port serves no /metrics.
func TestServiceMonitorScrapesTheAdminPort(t *testing.T) {
	r := mustRender(t, map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}, serviceMonitorAPI)
	sm := r.customOf(t, "ServiceMonitor")
	raw, err := json.Marshal(sm["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Selector  metav1.LabelSelector
		Endpoints []struct{ Port, Path string }
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	selector, err := metav1.LabelSelectorAsSelector(&spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	server := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	admin := listensOn(t, env(server)["BERTH_ADMIN_ADDR"])
	if len(spec.Endpoints) == 0 {
		t.Fatal("the ServiceMonitor has no endpoint")
	}
	for _, ep := range spec.Endpoints {
		if ep.Path != "/metrics" {
			t.Errorf("endpoint path %q, want /metrics", ep.Path)
		}
		scraped := 0
		for _, s := range r.services {
			if !selector.Matches(labels.Set(s.Labels)) {
				continue
			}
			for _, p := range s.Spec.Ports {
				if p.Name != ep.Port {
					continue
				}
				scraped++
				if got := targetOf(p, server); got != admin {
					t.Errorf("endpoint port %q: Service %s's port sends to %d, not the admin listener's %d", ep.Port, s.Name, got, admin)
				}
			}
		}
		if scraped == 0 {
			t.Errorf("endpoint port %q is a port of no Service the ServiceMonitor selects (%v): nothing would be scraped", ep.Port, selector)
		}
	}
}
