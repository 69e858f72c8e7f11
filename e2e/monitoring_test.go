//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// ruleReleases are the releases whose alerts the suite asserts, by
// namespace: the chart's rules judge their own release's pods, so
// Prometheus loads them once for each, as it would one PrometheusRule per
// release.
var ruleReleases = map[string]string{mainNamespace: mainRelease, failureNamespace: failureRelease}

// deployMonitoring renders testdata/monitoring.yaml with the images and
// the chart's alert rules for each of ruleReleases, applies it, and waits
// for Prometheus and the Pushgateway.
func deployMonitoring(kubeconfig string) error {
	rules := map[string]string{}
	for ns, release := range ruleReleases {
		r, err := chartRules(kubeconfig, release, ns)
		if err != nil {
			return err
		}
		rules[ns] = r
	}
	tmpl, err := template.New("monitoring.yaml").Funcs(template.FuncMap{"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
	}}).ParseFiles("testdata/monitoring.yaml")
	if err != nil {
		return err
	}
	var manifest bytes.Buffer
	if err := tmpl.Execute(&manifest, map[string]any{"Rules": rules, "PrometheusImage": prometheusImage, "PushgatewayImage": pushgatewayImage}); err != nil {
		return err
	}
	env := []string{"KUBECONFIG=" + kubeconfig}
	if err := commandIn(env, &manifest, "kubectl", "apply", "-f", "-"); err != nil {
		return err
	}
	for _, d := range []string{"prometheus", "pushgateway"} {
		if err := command(env, "kubectl", "-n", "monitoring", "rollout", "status", "deployment/"+d, "--timeout=3m"); err != nil {
			return err
		}
	}
	return nil
}

// chartRules renders the PrometheusRule of release in namespace ns and
// returns its groups as a Prometheus rule file.
func chartRules(kubeconfig, release, ns string) (string, error) {
	cmd := exec.Command("helm", "template", release, chartPath, "-n", ns, "--set", "metrics.prometheusRule.enabled=true",
		"--api-versions", "monitoring.coreos.com/v1/PrometheusRule", "--show-only", "templates/prometheusrule.yaml")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("helm template the PrometheusRule: %w", err)
	}
	var rule struct{ Spec any }
	if err := yaml.Unmarshal(out, &rule); err != nil {
		return "", err
	}
	b, err := yaml.Marshal(rule.Spec)
	return string(b), err
}

// prom is the e2e's Prometheus.
type prom struct{ api promv1.API }

func newProm(t *testing.T) *prom {
	t.Helper()
	client, err := api.NewClient(api.Config{Address: prometheusURL})
	if err != nil {
		t.Fatal(err)
	}
	return &prom{api: promv1.NewAPI(client)}
}

// query runs an instant PromQL query.
func (p *prom) query(ctx context.Context, q string) (model.Vector, error) {
	v, _, _, err := p.api.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s: a %s, not a vector", q, v.Type())
	}
	return vec, nil
}

// byPod maps a vector's samples by their pod label.
func byPod(v model.Vector) map[string]float64 {
	out := map[string]float64{}
	for _, s := range v {
		out[string(s.Metric["pod"])] = float64(s.Value)
	}
	return out
}

// sum adds a vector's samples.
func sum(v model.Vector) float64 {
	var total float64
	for _, s := range v {
		total += float64(s.Value)
	}
	return total
}
