//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	"sigs.k8s.io/yaml"
)

// TestChartVariantsPassTheAPIServer renders each of the chart's ci/
// variants as helm would for this cluster and applies them with a
// server-side dry run and strict field validation, in a Pod Security
// "restricted" namespace: the API server's own validation and admission
// (the helm test Pod included) accept every object. Kinds this cluster does
// not serve (the Prometheus Operator's and the Gateway API's, whose CRDs it
// lacks) are rendered all the same and named in the log; make test decodes
// them.
func TestChartVariantsPassTheAPIServer(t *testing.T) {
	const ns = "berth-e2e-dryrun"
	var c *cluster
	f := features.New("chart variants").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c = newCluster(t, cfg)
			c.createNamespace(t, ns)
			return ctx
		}).
		Assess("every ci variant passes a strict server-side dry run", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			version, err := c.cs.Discovery().ServerVersion()
			if err != nil {
				t.Fatal(err)
			}
			_, lists, err := c.cs.Discovery().ServerGroupsAndResources()
			if err != nil {
				t.Fatal(err)
			}
			served := map[string]bool{}
			for _, l := range lists {
				for _, r := range l.APIResources {
					served[l.GroupVersion+"/"+r.Kind] = true
				}
			}
			files, _ := filepath.Glob(chartPath + "/ci/*-values.yaml")
			if len(files) == 0 {
				t.Fatal("no ci/*-values.yaml")
			}
			env := append(os.Environ(), "KUBECONFIG="+cfg.KubeconfigFile())
			for _, file := range files {
				t.Run(filepath.Base(file), func(t *testing.T) {
					args := []string{"template", "dryrun", chartPath, "-n", ns, "-f", file, "--kube-version", version.GitVersion,
						"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
						"--api-versions", "gateway.networking.k8s.io/v1/HTTPRoute"}
					args = append(args, c.imageArgs()...)
					cmd := exec.CommandContext(ctx, "helm", args...)
					cmd.Env = env
					out, err := cmd.Output()
					if err != nil {
						t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderrOf(err))
					}
					var apply bytes.Buffer
					var applied int
					var unserved []string
					for _, doc := range strings.Split(string(out), "\n---") {
						var meta struct{ APIVersion, Kind string }
						if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
							t.Fatal(err)
						}
						if meta.Kind == "" {
							continue
						}
						if !served[meta.APIVersion+"/"+meta.Kind] {
							unserved = append(unserved, meta.Kind)
							continue
						}
						apply.WriteString("---\n" + doc + "\n")
						applied++
					}
					kubectl := exec.CommandContext(ctx, "kubectl", "apply", "-n", ns, "--dry-run=server", "--validate=strict", "-f", "-")
					kubectl.Env, kubectl.Stdin = env, &apply
					res, err := kubectl.CombinedOutput()
					if err != nil {
						t.Fatalf("kubectl apply --dry-run=server --validate=strict: %v\n%s", err, res)
					}
					if got := strings.Count(string(res), "(server dry run)"); got != applied {
						t.Fatalf("the API server accepted %d of %d objects:\n%s", got, applied, res)
					}
					// Enforcement admits a workload whatever its pod
					// template; the namespace's warn label has the API
					// server say which template breaks the profile.
					if strings.Contains(string(res), "would violate PodSecurity") {
						t.Fatalf("a pod template breaks the restricted Pod Security profile:\n%s", res)
					}
					slices.Sort(unserved)
					t.Logf("%d objects accepted by the API server; not served by this cluster: %v", applied, slices.Compact(unserved))
				})
			}
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c.keepLogsIfFailed(t, ns)
			c.deleteNamespace(ns)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// stderrOf returns what a failed command wrote to stderr.
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
