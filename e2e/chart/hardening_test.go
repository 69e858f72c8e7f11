package chart

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// crdAPIs are the API versions of the custom resources the chart can
// render (the Prometheus Operator's and the Gateway API's), for renders
// that enable them.
var crdAPIs = []string{"monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule",
	"gateway.networking.k8s.io/v1/HTTPRoute"}

// ciValues returns the chart's ci/*-values.yaml variants by file name.
func ciValues(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob(chartDir + "/ci/*-values.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml in the chart (%v)", err)
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = v.AsMap()
	}
	return out
}

// TestCIValuesRenderStrictly renders every ci/ variant; render decodes
// each object strictly into the Kubernetes API types, so an unknown or
// misspelt field fails. The variants together cover every object the
// chart can render.
func TestCIValuesRenderStrictly(t *testing.T) {
	seen := map[string]bool{}
	for name, values := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values, crdAPIs...)
			for _, k := range r.kinds {
				seen[k] = true
			}
		})
	}
	want := []string{"ConfigMap", "Deployment", "HTTPRoute", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy",
		"PersistentVolumeClaim", "Pod", "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount",
		"ServiceMonitor", "StatefulSet"}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("no ci/ variant renders a %s", k)
		}
	}
}

// claimedMinors are the Kubernetes minor versions the tests render for:
// the chart's floor up to one past the kind nodes' version.
var claimedMinors = []int{30, 31, 32, 33, 34, 35}

// TestEveryClaimedKubernetesVersion renders every ci/ variant for every
// minor version the chart claims, and checks that no object uses a field
// that version does not accept. Below the floor, the install is refused.
func TestEveryClaimedKubernetesVersion(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.Metadata.KubeVersion; got != ">=1.30.0-0" {
		t.Fatalf("kubeVersion %q: the tests below render for 1.30 and later", got)
	}
	if _, err := renderAt(t, "v1.29.9", nil); err == nil || !strings.Contains(err.Error(), "incompatible with Kubernetes v1.29.9") {
		t.Errorf("rendering for 1.29: %v; want it refused", err)
	}
	variants := ciValues(t)
	variants["preStop with no delay"] = map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 0}}
	for _, minor := range claimedMinors {
		for name, values := range variants {
			t.Run(fmt.Sprintf("1.%d/%s", minor, name), func(t *testing.T) {
				r, err := renderAt(t, fmt.Sprintf("v1.%d.0", minor), values, crdAPIs...)
				if err != nil {
					t.Fatal(err)
				}
				for owner, pod := range r.pods() {
					for _, problem := range unsupported(pod.Spec, minor) {
						t.Errorf("%s on Kubernetes 1.%d: %s", owner, minor, problem)
					}
				}
			})
		}
	}
}

// unsupported lists the fields of spec that Kubernetes 1.minor rejects or
// ignores (features off by default there).
func unsupported(spec corev1.PodSpec, minor int) []string {
	var problems []string
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Lifecycle == nil {
			continue
		}
		for hook, h := range map[string]*corev1.LifecycleHandler{"preStop": c.Lifecycle.PreStop, "postStart": c.Lifecycle.PostStart} {
			switch {
			case h == nil || h.Sleep == nil:
			case minor < 30:
				problems = append(problems, fmt.Sprintf("container %s: a %s sleep action needs 1.30", c.Name, hook))
			case h.Sleep.Seconds == 0 && minor < 33:
				problems = append(problems, fmt.Sprintf("container %s: a %s sleep of 0 seconds needs 1.33", c.Name, hook))
			}
		}
	}
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && minor < 29 {
			problems = append(problems, fmt.Sprintf("init container %s: restartPolicy (native sidecars) needs 1.29", c.Name))
		}
	}
	return problems
}

// TestPreStopWithNoDelayRendersNoHook: a sleep of 0 would be refused
// before 1.33, and sleeps for nothing anyway.
func TestPreStopWithNoDelayRendersNoHook(t *testing.T) {
	r := mustRender(t, map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 0}})
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	if app.Lifecycle != nil {
		t.Fatalf("lifecycle %+v; want none for a zero delay", app.Lifecycle)
	}
	if e := env(app); e["BERTH_DRAIN_DELAY"] != "0s" || e["BERTH_PRESTOP_DELAY"] != "0s" {
		t.Fatalf("env %v", e)
	}
}

// TestNullIsRefused sets every key of values.yaml the templates read to
// null in turn (what --set key=null does: it deletes the default) and
// expects the schema to refuse it, naming the key. Keys whose default is
// null, empty or a map the user fills (labels, annotations) may be null.
func TestNullIsRefused(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var paths [][]string
	var walk func(prefix []string, v map[string]any, schema map[string]any)
	walk = func(prefix []string, v map[string]any, schema map[string]any) {
		props, _ := schema["properties"].(map[string]any)
		for key, def := range v {
			sub, declared := props[key].(map[string]any)
			if !declared || empty(def) {
				continue
			}
			path := append(slices.Clone(prefix), key)
			paths = append(paths, path)
			if m, ok := def.(map[string]any); ok {
				walk(path, m, sub)
			}
		}
	}
	var schema map[string]any
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	walk(nil, ch.Values, schema)
	if len(paths) < 50 {
		t.Fatalf("only %d keys found; the walk is broken", len(paths))
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Join(paths[i], ".") < strings.Join(paths[j], ".") })
	// Keys newer than the chart's first release take their default when
	// absent (helm deletes a key set to null): values kept from an older
	// release by helm upgrade --reuse-values lack them.
	fallsBack := map[string][2]string{"database.migrateTimeoutSeconds": {"BERTH_MIGRATE_TIMEOUT", "60s"},
		"postgresql.poolSize": {"BERTH_DATABASE_URL", "&pool_max_conns=8"}}
	for _, path := range paths {
		key := strings.Join(path, ".")
		t.Run(key, func(t *testing.T) {
			values := map[string]any{path[len(path)-1]: nil}
			for i := len(path) - 2; i >= 0; i-- {
				values = map[string]any{path[i]: values}
			}
			if fb, ok := fallsBack[key]; ok {
				r := mustRender(t, values)
				if got := env(container(t, r.deployment.Spec.Template.Spec.Containers, "server"))[fb[0]]; !strings.HasSuffix(got, fb[1]) {
					t.Fatalf("--set %s=null: %s=%q, want its default (ending %s)", key, fb[0], got, fb[1])
				}
				return
			}
			_, err := render(t, values)
			if err == nil || !strings.Contains(err.Error(), path[len(path)-1]) {
				t.Fatalf("--set %s=null: %v; want the schema to refuse it, naming %s", key, err, path[len(path)-1])
			}
		})
	}
}

// empty reports whether a default leaves the key optional: null, "", or
// an empty map or list.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// TestRefusedAtInstall: values a user would plausibly write that cannot
// work are refused by helm install with a message that names them.
func TestRefusedAtInstall(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"maxSurge neither a count nor a percentage", map[string]any{"rollingUpdate": map[string]any{"maxSurge": "25"}}, "maxSurge"},
		{"negative maxUnavailable", map[string]any{"rollingUpdate": map[string]any{"maxUnavailable": -1}}, "maxUnavailable"},
		{"maxUnavailable over 100%", map[string]any{"rollingUpdate": map[string]any{"maxUnavailable": "150%"}}, "maxUnavailable"},
		{"a percentage with a leading zero", map[string]any{"rollingUpdate": map[string]any{"maxSurge": "00%", "maxUnavailable": 0}}, "maxSurge"},
		{"a budget over 100%", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "101%"}}, "'101%' does not match pattern"},
		{"a rollout that can make no progress", map[string]any{"rollingUpdate": map[string]any{"maxSurge": 0, "maxUnavailable": "0%"}},
			"rollingUpdate.maxSurge and rollingUpdate.maxUnavailable are both 0: the rollout could never replace a pod"},
		{"PDB neither a count nor a percentage", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "half"}}, "maxUnavailable"},
		{"PDB that lets every pod go", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": 3}},
			"podDisruptionBudget.maxUnavailable=3 lets all 3 pods be evicted at once"},
		{"PDB of 100%", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "100%"}},
			"podDisruptionBudget.maxUnavailable=100% lets all 3 pods be evicted at once; keep it below 3, or a percentage of at most 66%"},
		{"PDB percentage that rounds up to every pod", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "67%"}},
			"podDisruptionBudget.maxUnavailable=67% lets all 3 pods be evicted at once"},
		{"PDB that lets no pod go", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": 0}},
			"podDisruptionBudget.maxUnavailable=0 lets no pod be evicted: every node drain and upgrade would wait on it for good"},
		{"PDB of 0%", map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "0%"}}, "podDisruptionBudget.maxUnavailable=0% lets no pod be evicted"},
		// From a floor of one pod the budget is rendered, and must hold
		// once the autoscaler runs two.
		{"PDB of 100% from an autoscaler's floor of one", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 1}, "podDisruptionBudget": map[string]any{"maxUnavailable": "100%"},
			"postgresql": map[string]any{"poolSize": 8}},
			"podDisruptionBudget.maxUnavailable=100% lets all 2 pods be evicted at once (the autoscaler's, once it scales up from autoscaling.minReplicas=1); keep it below 2, or a percentage of at most 50%"},
		{"PDB of 51% from an autoscaler's floor of one", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 1}, "podDisruptionBudget": map[string]any{"maxUnavailable": "51%"},
			"postgresql": map[string]any{"poolSize": 8}}, "podDisruptionBudget.maxUnavailable=51% lets all 2 pods be evicted at once"},
		{"PDB of 2 from an autoscaler's floor of one", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 1}, "podDisruptionBudget": map[string]any{"maxUnavailable": 2},
			"postgresql": map[string]any{"poolSize": 8}}, "podDisruptionBudget.maxUnavailable=2 lets all 2 pods be evicted at once"},
		{"PDB against the autoscaler's floor", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 2}, "podDisruptionBudget": map[string]any{"maxUnavailable": 2},
			"postgresql": map[string]any{"poolSize": 8}},
			"podDisruptionBudget.maxUnavailable=2 lets all 2 pods be evicted at once"},
		{"API and admin on one port", map[string]any{"ports": map[string]any{"http": 9090, "admin": 9090}},
			"ports.http and ports.admin are both 9090: each server needs a port of its own"},
		{"sidecar on the API's port", map[string]any{"sidecar": map[string]any{"enabled": true, "port": 8080}},
			"sidecar.port=8080 is also ports.http"},
		{"sidecar on the admin port", map[string]any{"sidecar": map[string]any{"enabled": true, "port": 9090}},
			"sidecar.port=9090 is also ports.admin"},
		{"podLabels over the selector", map[string]any{"podLabels": map[string]any{"app.kubernetes.io/name": "web"}},
			"podLabels sets app.kubernetes.io/name, one of the selector's labels: the Deployment would lose its pods"},
		{"commonLabels over the selector", map[string]any{"commonLabels": map[string]any{"app.kubernetes.io/instance": "x"}},
			"commonLabels sets app.kubernetes.io/instance, one of the selector's labels"},
		{"an autoscaled embedded database", map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}, "autoscaling": map[string]any{"enabled": true}},
			"the embedded SQLite database serves one replica only: autoscaling.enabled would start more"},
		{"autoscaler bounds reversed", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 5, "maxReplicas": 3}},
			"autoscaling.minReplicas=5 is above autoscaling.maxReplicas=3"},
		{"autoscaler with no target", map[string]any{"autoscaling": map[string]any{"enabled": true, "targetCPUUtilizationPercentage": nil}},
			"targetCPUUtilizationPercentage"},
		{"an HTTPRoute without the Gateway API", map[string]any{"httpRoute": map[string]any{"enabled": true, "parentRefs": []any{map[string]any{"name": "gw"}}}},
			"httpRoute.enabled=true, but the cluster has no gateway.networking.k8s.io/v1 HTTPRoute CRD"}, // rendered without the CRDs
		{"an HTTPRoute attached to nothing", map[string]any{"httpRoute": map[string]any{"enabled": true}}, "httpRoute.enabled=true needs httpRoute.parentRefs"},
		{"ingress without hosts", map[string]any{"ingress": map[string]any{"enabled": true, "hosts": []any{}}}, "hosts"},
		// Values the schema let through and the API server refuses: a
		// pull secret given as a bare name, a map value that is no string.
		{"a pull secret as a bare name", map[string]any{"imagePullSecrets": []any{"regcred"}}, "imagePullSecrets/0"},
		{"a nodeSelector value that is no string", map[string]any{"nodeSelector": map[string]any{"dedicated": true}}, "nodeSelector/dedicated"},
		{"a ServiceAccount annotation that is no string", map[string]any{"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/sts-regional-endpoints": true}}},
			"serviceAccount/annotations/eks.amazonaws.com~1sts-regional-endpoints"},
		{"a ServiceMonitor label that is no string", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"labels": map[string]any{"release": 1}}}}, "serviceMonitor/labels/release"},
		{"a database wait past the startup probe", map[string]any{"database": map[string]any{"waitSeconds": 1200}},
			"probes.startup allows 299s (periodSeconds 1 x (failureThreshold 300 - 1), as the first probe can come as the container starts), less than the service may take to start: database.waitSeconds 1200 + 7s for the database's first answer (database.timeout + 5s) + database.migrateTimeoutSeconds 60 + config.demoWarmup 1s + sidecar wait 0s + 7s for the cache's first load (database.timeout + 5s) = 1275s"},
		{"a migration past the startup probe", map[string]any{"database": map[string]any{"migrateTimeoutSeconds": 600}},
			"database.waitSeconds 60 + 7s for the database's first answer (database.timeout + 5s) + database.migrateTimeoutSeconds 600 + config.demoWarmup 1s + sidecar wait 0s + 7s for the cache's first load (database.timeout + 5s) = 675s"},
		{"an absent migration bound counts its default", map[string]any{"database": map[string]any{"migrateTimeoutSeconds": nil},
			"probes": map[string]any{"startup": map[string]any{"failureThreshold": 134}}}, "database.migrateTimeoutSeconds 60"},
		{"a warm-up past the startup probe", map[string]any{"config": map[string]any{"demoWarmup": "5m"}}, "Raise probes.startup.failureThreshold to at least 435"},
		{"a classic sidecar slower than the service waits", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic", "readyDelay": "61s"}},
			"sidecar.readyDelay=61s: the service waits 60s for its sidecars (BERTH_SIDECAR_TIMEOUT) and would exit 1"},
		{"a native sidecar slower than its startup probe", map[string]any{"sidecar": map[string]any{"enabled": true, "readyDelay": "2m"}},
			"sidecar.readyDelay=2m: the native sidecar's startupProbe allows 120s"},
		{"a classic sidecar's wait past the startup probe", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic"},
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_TIMEOUT", "value": "10m"}}, "probes": map[string]any{"startup": map[string]any{"failureThreshold": 160}}},
			"database.waitSeconds 60 + 7s for the database's first answer (database.timeout + 5s) + database.migrateTimeoutSeconds 60 + config.demoWarmup 1s + sidecar wait 600s + 7s for the cache's first load (database.timeout + 5s) = 735s"},
		// A sidecar the chart does not run, set through extraEnv: its wait
		// counts in the startup allowance, its quit in the grace period
		// (the service refused it at start, and crash-looped).
		{"a listed sidecar's wait past the startup probe", map[string]any{"database": map[string]any{"waitSeconds": 200},
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECARS", "value": "http://127.0.0.1:15021/healthz/ready"}}},
			"database.migrateTimeoutSeconds 60 + config.demoWarmup 1s + sidecar wait 60s + 7s for the cache's first load (database.timeout + 5s) = 335s"},
		{"a quit call past the grace period", map[string]any{"terminationGracePeriodSeconds": 37,
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_QUIT", "value": "http://127.0.0.1:15020/quitquitquit"}}},
			"terminationGracePeriodSeconds=37 cannot fit the shutdown budget of 42 seconds (drain delay 5 + drain timeout 20 + stop timeout 10 + sidecar quit timeout 5 (extraEnv's BERTH_SIDECAR_QUIT) + margin 2)"},
		{"a quit call from a ConfigMap past the grace period", map[string]any{"terminationGracePeriodSeconds": 37,
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_QUIT", "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "mesh", "key": "quit"}}}}},
			"cannot fit the shutdown budget of 42 seconds"},
		{"a listed sidecar from a ConfigMap past the startup probe", map[string]any{"database": map[string]any{"waitSeconds": 200},
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECARS", "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "mesh", "key": "sidecars"}}}}},
			"sidecar wait 60s + 7s for the cache's first load (database.timeout + 5s) = 335s"},
		{"a quit call with its own timeout past the grace period", map[string]any{"terminationGracePeriodSeconds": 40,
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_QUIT", "value": "http://127.0.0.1:15020/quitquitquit"},
				map[string]any{"name": "BERTH_SIDECAR_QUIT_TIMEOUT", "value": "3500ms"}}},
			"cannot fit the shutdown budget of 41 seconds"},
		{"failing a hook that does not run", map[string]any{"config": map[string]any{"demoFail": "sidecars"}},
			"config.demoFail=sidecars fails the sidecars hook, which runs only with sidecar.enabled=true"},
		{"extraEnv over a variable the chart sets", map[string]any{"extraEnv": []any{map[string]any{"name": "BERTH_DRAIN_DELAY", "value": "30s"}}},
			"extraEnv sets BERTH_DRAIN_DELAY, which the chart already sets from drain.mode and drain.delaySeconds"},
		{"extraEnv with a misspelt variable", map[string]any{"extraEnv": []any{map[string]any{"name": "BERTH_DRAIN_DELY", "value": "1s"}}},
			"extraEnv sets BERTH_DRAIN_DELY, which is not a berth variable: the service would refuse to start"},
		{"commonLabels over a label the chart sets", map[string]any{"commonLabels": map[string]any{"app.kubernetes.io/component": "x"}},
			"commonLabels sets app.kubernetes.io/component, which the chart sets itself"},
		{"podLabels over a label the chart sets", map[string]any{"podLabels": map[string]any{"app.kubernetes.io/version": "x"}},
			"podLabels sets app.kubernetes.io/version, which the chart sets itself"},
		{"a label in podLabels and commonLabels", map[string]any{"podLabels": map[string]any{"team": "b"}, "commonLabels": map[string]any{"team": "a"}},
			"podLabels and commonLabels both set team"},
		{"a label in service.labels and commonLabels", map[string]any{"service": map[string]any{"labels": map[string]any{"team": "b"}}, "commonLabels": map[string]any{"team": "a"}},
			"service.labels and commonLabels both set team"},
		{"serviceMonitor labels over a label the chart sets", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"helm.sh/chart": "x"}}}},
			"metrics.serviceMonitor.labels sets helm.sh/chart, which the chart sets itself"},
		{"extraEnv with one listener for the admin port the probes use", map[string]any{"extraEnv": []any{map[string]any{"name": "BERTH_SINGLE_LISTENER", "value": "true"}}},
			"extraEnv sets BERTH_SINGLE_LISTENER, which would serve the probes on the API port"},
		{"a drain timeout shorter than a database call", map[string]any{"drain": map[string]any{"timeoutSeconds": 1}, "config": map[string]any{"workMaxSeconds": 1}},
			"drain.timeoutSeconds (1) is shorter than database.timeout (1500ms)"},
		// The service refuses BERTH_WORK_MAX past BERTH_DRAIN_TIMEOUT at
		// start: a request it accepted could be cut off by its own drain.
		{"a work cap past the drain timeout", map[string]any{"config": map[string]any{"workMaxSeconds": 21}},
			"config.workMaxSeconds (21) is longer than drain.timeoutSeconds (20)"},
		// What the API server or a CRD would refuse, refused at install
		// with the key named.
		{"an extraEnv value that is a number", map[string]any{"extraEnv": []any{map[string]any{"name": "GOMAXPROCS", "value": 2}}}, "extraEnv"},
		{"an extraEnv value that is a boolean", map[string]any{"extraEnv": []any{map[string]any{"name": "GODEBUG", "value": true}}}, "extraEnv"},
		{"an empty topology key", map[string]any{"topologySpread": map[string]any{"topologyKey": ""}}, "topologyKey"},
		{"a scrape interval without a unit", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "15"}}}, "interval"},
		{"a scrape interval the Prometheus Operator refuses", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "30s1m"}}}, "interval"},
		{"a prune schedule that is no cron line", map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"prune": map[string]any{"schedule": "every hour"}}}}, "schedule"},
		{"an extra volume mount without its path", map[string]any{"extraVolumes": []any{map[string]any{"name": "x", "emptyDir": map[string]any{}}},
			"extraVolumeMounts": []any{map[string]any{"name": "x"}}}, "at '/extraVolumeMounts/0': missing property 'mountPath'"},
		// Names the pod already has.
		{"an extra volume named as the embedded database's", map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}, "extraVolumes": []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}},
			`extraVolumes has a volume named "data", which the pod already has`},
		{"two extra volumes of one name", map[string]any{"extraVolumes": []any{map[string]any{"name": "x", "emptyDir": map[string]any{}}, map[string]any{"name": "x", "emptyDir": map[string]any{}}}},
			`extraVolumes has a volume named "x", which the pod already has`},
		{"an extra mount at the embedded database's path", map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}, "extraVolumes": []any{map[string]any{"name": "x", "emptyDir": map[string]any{}}},
			"extraVolumeMounts": []any{map[string]any{"name": "x", "mountPath": "/data/"}}}, "extraVolumeMounts mounts /data/, where the service container already mounts a volume"},
		{"an extra container named server", map[string]any{"extraContainers": []any{map[string]any{"name": "server", "image": "busybox"}}},
			`extraContainers has a container named "server", which the pod already has`},
		{"an init container named as the native sidecar", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "native"}, "initContainers": []any{map[string]any{"name": "sidecar", "image": "busybox"}}},
			`initContainers has a container named "sidecar", which the pod already has`},
		// The autoscaler reads utilisation against every container's request.
		{"an autoscaler over a server without a CPU request", map[string]any{"autoscaling": map[string]any{"enabled": true}, "postgresql": map[string]any{"poolSize": 8},
			"resources": map[string]any{"requests": map[string]any{"cpu": nil}}}, "autoscaling.enabled: resources request no cpu"},
		{"an autoscaler over a sidecar without a CPU request", map[string]any{"autoscaling": map[string]any{"enabled": true}, "postgresql": map[string]any{"poolSize": 8},
			"sidecar": map[string]any{"enabled": true, "resources": map[string]any{"requests": map[string]any{"cpu": nil}}}}, "autoscaling.enabled: sidecar.resources request no cpu"},
		{"an autoscaler over an extra container without a CPU request", map[string]any{"autoscaling": map[string]any{"enabled": true}, "postgresql": map[string]any{"poolSize": 8},
			"extraContainers": []any{map[string]any{"name": "log", "image": "busybox"}}}, `autoscaling.enabled: extraContainers "log"'s resources request no cpu`},
		// The autoscaler sums a restartable init container's request too
		// (a native sidecar): without one it fails "missing request for
		// cpu" and never scales. An init container that runs to completion
		// first is not summed, and needs none.
		{"an autoscaler over a native sidecar of the user's without a CPU request", map[string]any{"autoscaling": map[string]any{"enabled": true}, "postgresql": map[string]any{"poolSize": 8},
			"initContainers": []any{map[string]any{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}}},
			`autoscaling.enabled: initContainers "proxy"'s resources (a native sidecar: restartPolicy Always) request no cpu`},
		{"an autoscaler on memory over a server without a memory request", map[string]any{"postgresql": map[string]any{"poolSize": 8},
			"autoscaling": map[string]any{"enabled": true, "targetMemoryUtilizationPercentage": 80},
			"resources":   map[string]any{"requests": map[string]any{"memory": nil}, "limits": map[string]any{"memory": nil}}}, "autoscaling.enabled: resources request no memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apis := crdAPIs
			if strings.HasSuffix(tt.name, "without the Gateway API") {
				apis = nil
			}
			_, err := render(t, tt.values, apis...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A port below 1024 is bound by a process without capabilities only where
// the runtime lowers net.ipv4.ip_unprivileged_port_start (containerd 1.x
// keeps 1024, and the pod crash-looped): the chart sets that safe sysctl
// to the lowest such port, keeping the user's sysctls, or theirs for it.
func TestPrivilegedPortsGetTheirSysctl(t *testing.T) {
	own := map[string]any{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
	other := map[string]any{"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}
	for _, tt := range []struct {
		name   string
		values map[string]any
		want   []corev1.Sysctl
	}{
		{"defaults", nil, nil},
		{"the API on 80", map[string]any{"ports": map[string]any{"http": 80}}, []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}},
		{"the admin port on 443, the API on 80", map[string]any{"ports": map[string]any{"http": 80, "admin": 443}}, []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}},
		{"the sidecar on 15", map[string]any{"sidecar": map[string]any{"enabled": true, "port": 15}}, []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "15"}}},
		{"the admin port alone on 443", map[string]any{"ports": map[string]any{"admin": 443}}, []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "443"}}},
		{"the API on 1023", map[string]any{"ports": map[string]any{"http": 1023}}, []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "1023"}}},
		{"the API on 1024", map[string]any{"ports": map[string]any{"http": 1024}}, nil},
		{"a sidecar not run on 15", map[string]any{"sidecar": map[string]any{"enabled": false, "port": 15}}, nil},
		{"the user's other sysctl kept", map[string]any{"ports": map[string]any{"http": 80}, "podSecurityContext": map[string]any{"sysctls": []any{other}}},
			[]corev1.Sysctl{{Name: "net.ipv4.ping_group_range", Value: "0 2147483647"}, {Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}},
		{"the user's own setting", map[string]any{"ports": map[string]any{"http": 80}, "podSecurityContext": map[string]any{"sysctls": []any{own}}},
			[]corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.values)
			got := r.deployment.Spec.Template.Spec.SecurityContext
			if !reflect.DeepEqual(got.Sysctls, tt.want) || got.RunAsUser == nil || *got.RunAsUser != 65532 {
				t.Fatalf("pod securityContext %+v, want sysctls %+v beside the restricted defaults", got, tt.want)
			}
		})
	}
}

// TestIntOrPercentAccepted: counts and percentages both work where
// Kubernetes takes either.
func TestIntOrPercentAccepted(t *testing.T) {
	r := mustRender(t, map[string]any{"rollingUpdate": map[string]any{"maxSurge": "25%", "maxUnavailable": 0},
		"podDisruptionBudget": map[string]any{"maxUnavailable": "34%"}})
	ru := r.deployment.Spec.Strategy.RollingUpdate
	if ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.IntValue() != 0 || r.pdb.Spec.MaxUnavailable.String() != "34%" {
		t.Fatalf("maxSurge %v maxUnavailable %v pdb %v", ru.MaxSurge, ru.MaxUnavailable, r.pdb.Spec.MaxUnavailable)
	}
}

// TestEveryContainerRequestsResources: a namespace with a ResourceQuota
// (which demands requests, and ephemeral-storage ones when it bounds
// them) accepts every pod the chart renders, the helm test pod included.
func TestEveryContainerRequestsResources(t *testing.T) {
	for name, values := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values, crdAPIs...)
			var extra []string // the user's own containers are theirs to size
			for _, key := range []string{"extraContainers", "initContainers"} {
				list, _ := values[key].([]any)
				for _, c := range list {
					extra = append(extra, c.(map[string]any)["name"].(string))
				}
			}
			for owner, pod := range r.pods() {
				for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
					if slices.Contains(extra, c.Name) {
						continue
					}
					for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
						if q, ok := c.Resources.Requests[res]; !ok || q.IsZero() {
							t.Errorf("%s container %s: no %s request", owner, c.Name, res)
						}
					}
					for _, res := range []corev1.ResourceName{corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
						if q, ok := c.Resources.Limits[res]; !ok || q.IsZero() {
							t.Errorf("%s container %s: no %s limit", owner, c.Name, res)
						}
					}
				}
			}
		})
	}
}

// A resource quantity Kubernetes accepts is accepted in every resources
// value the chart takes (P and E, their binary forms, micro and nano,
// exponents), and reaches the pod as that quantity; what Kubernetes
// refuses (a negative, a unit of its own, a space) is refused at install,
// naming the key.
func TestResourceQuantitiesFollowKubernetes(t *testing.T) {
	for _, q := range []string{"1Pi", "2E", "1Ei", "1e3", "1.5E3", "500u", "250n", ".5", "+1Gi", "128974848", "129e6", "100m"} {
		t.Run(q, func(t *testing.T) {
			r := mustRender(t, map[string]any{"resources": map[string]any{
				"requests": map[string]any{"cpu": q, "memory": q, "ephemeral-storage": q},
				"limits":   map[string]any{"memory": q, "ephemeral-storage": q}}})
			c := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
			if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse(q)) != 0 {
				t.Errorf("memory limit %s, want %s", got.String(), q)
			}
		})
	}
	for _, key := range []string{"resources", "postgresql.resources", "sidecar.resources", "metrics.pushgateway.prune.resources", "testResources"} {
		for _, q := range []string{"-1Gi", "1KB", "1 Gi", "Gi", "1Gib", "0x10", "1e1.5", "1e.5"} {
			t.Run(key+" "+q, func(t *testing.T) {
				values := map[string]any{"limits": map[string]any{"memory": q}}
				parts := strings.Split(key, ".")
				for i := len(parts) - 1; i >= 0; i-- {
					values = map[string]any{parts[i]: values}
				}
				refused(t, values, key+".limits.memory")
			})
		}
	}
}

// TestImageTagIsWhatTheBuildTags: the chart's default image is the one
// make image builds, so the chart README's install works as written.
func TestImageTagIsWhatTheBuildTags(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", "../..", "image-ref")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "IMAGE_REPO=") || strings.HasPrefix(kv, "IMAGE_TAG=")
	})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make image-ref: %v", err)
	}
	built := strings.TrimSpace(string(out))
	r := mustRender(t, nil)
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	if app.Image != built || built != "berth:"+ch.Metadata.AppVersion {
		t.Fatalf("the chart runs %s, make image builds %s, appVersion is %s", app.Image, built, ch.Metadata.AppVersion)
	}
}

// TestOptionalKeys checks what each optional key of the "everything"
// variant renders.
func TestOptionalKeys(t *testing.T) {
	values := ciValues(t)["everything-values.yaml"]
	r := mustRender(t, values, crdAPIs...)
	for _, o := range r.objects {
		if o.GetLabels()["team"] != "platform" {
			t.Errorf("%T %s lacks commonLabels", o, o.GetName())
		}
	}
	for _, m := range r.custom {
		labels, _ := m["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["team"] != "platform" {
			t.Errorf("%s lacks commonLabels", m["kind"])
		}
	}
	for owner, pod := range r.pods() {
		meta := pod.ObjectMeta
		want := map[bool]string{true: "example.com/backup", false: "example.com/owner"}[owner == "StatefulSet"]
		if _, ok := meta.Annotations[want]; !ok || len(meta.Annotations) != 1 && owner == "StatefulSet" {
			t.Errorf("%s pods: annotations %v, want %s", owner, meta.Annotations, want)
		}
		if meta.Labels["team"] != "platform" {
			t.Errorf("%s pods lack commonLabels", owner)
		}
	}
	d := r.deployment
	spec := d.Spec.Template.Spec
	if d.Spec.Replicas != nil {
		t.Errorf("replicas %d set beside an autoscaler: each helm upgrade would undo its scaling", *d.Spec.Replicas)
	}
	if h := r.hpa; h == nil || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 6 || h.Spec.ScaleTargetRef.Name != d.Name || len(h.Spec.Metrics) != 2 {
		t.Errorf("hpa %+v", r.hpa)
	}
	if r.pdb == nil {
		t.Error("no PodDisruptionBudget for an autoscaler with a floor of 3")
	}
	if *d.Spec.RevisionHistoryLimit != 5 || *r.statefulSet.Spec.RevisionHistoryLimit != 5 {
		t.Error("revisionHistoryLimit not applied")
	}
	if spec.PriorityClassName != "system-cluster-critical" || r.statefulSet.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Error("priorityClassName not applied")
	}
	if d.Spec.Template.Labels["tier"] != "api" {
		t.Error("podLabels not applied")
	}
	api := service(t, r, "rel-berth")
	if api.Annotations["example.com/lb"] != "internal" || api.Labels["exposure"] != "internal" {
		t.Errorf("service metadata %+v", api.ObjectMeta)
	}
	if ing := r.ingress; ing == nil || *ing.Spec.IngressClassName != "nginx" || ing.Spec.Rules[0].Host != "berth.example.com" ||
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != api.Name || ing.Spec.TLS[0].SecretName != "berth-tls" {
		t.Errorf("ingress %+v", r.ingress)
	}
	var names []string
	for _, c := range spec.InitContainers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"sidecar", "migrate-check"}) {
		t.Errorf("init containers %v: the native sidecar must start first", names)
	}
	names = nil
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"server", "logger"}) {
		t.Errorf("containers %v", names)
	}
	app := container(t, spec.Containers, "server")
	if len(app.EnvFrom) != 1 || app.EnvFrom[0].ConfigMapRef.Name != "berth-extra" || env(app)["EXTRA"] != "1" {
		t.Errorf("envFrom %+v", app.EnvFrom)
	}
	if len(app.VolumeMounts) != 1 || app.VolumeMounts[0].MountPath != "/scratch" || len(spec.Volumes) != 1 || spec.Volumes[0].Name != "scratch" {
		t.Errorf("volumes %+v mounts %+v", spec.Volumes, app.VolumeMounts)
	}
	if len(r.policies) != 2 {
		t.Fatalf("%d NetworkPolicies, want the service's and PostgreSQL's", len(r.policies))
	}
	for _, p := range r.policies {
		switch p.Name {
		case "rel-berth":
			if len(p.Spec.Ingress) != 3 || p.Spec.Ingress[0].Ports[0].Port.String() != "http" || p.Spec.Ingress[1].Ports[0].Port.String() != "admin" ||
				p.Spec.Ingress[1].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
				p.Spec.Ingress[2].Ports[0].Port.String() != "logs" { // networkPolicy.extraIngress, for the logger's port
				t.Errorf("service policy %+v", p.Spec)
			}
		case "rel-berth-postgresql":
			if from := p.Spec.Ingress[0].From; len(from) != 1 || from[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "berth" {
				t.Errorf("PostgreSQL policy %+v", p.Spec)
			}
		default:
			t.Errorf("unexpected NetworkPolicy %s", p.Name)
		}
	}
	route := r.customOf(t, "HTTPRoute")
	backend := route["spec"].(map[string]any)["rules"].([]any)[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any)
	if backend["name"] != api.Name || backend["port"] != float64(80) {
		t.Errorf("HTTPRoute backend %v", backend)
	}
}

// The Ingress and the HTTPRoute send traffic to a port the API's Service
// has, by name or number, and that port to the server's API listener
// (BERTH_HTTP_ADDR): a backend naming a port the Service lacks (the
// container's, say) leaves the controller without endpoints, and every
// request answered 503. The Service's port differs from the container's
// here, so that one cannot pass for the other.
func TestRoutesReachTheAPI(t *testing.T) {
	r := mustRender(t, map[string]any{"service": map[string]any{"port": 8000},
		"ingress": map[string]any{"enabled": true, "hosts": []any{map[string]any{"host": "a.example.com", "paths": []any{map[string]any{"path": "/", "pathType": "Prefix"}}},
			map[string]any{"host": "b.example.com", "paths": []any{map[string]any{"path": "/api", "pathType": "Prefix"}}}}},
		"httpRoute": map[string]any{"enabled": true, "parentRefs": []any{map[string]any{"name": "gw"}}}}, crdAPIs...)
	api := service(t, r, "rel-berth")
	server := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	listener := listensOn(t, env(server)["BERTH_HTTP_ADDR"])
	// reaches checks one backend: the API's Service, a port of it, that
	// port sending to the listener.
	reaches := func(what, name, portName string, portNumber int32) {
		t.Helper()
		if name != api.Name {
			t.Errorf("%s: backend Service %q, want the API's %q", what, name, api.Name)
			return
		}
		i := slices.IndexFunc(api.Spec.Ports, func(p corev1.ServicePort) bool {
			return portName != "" && p.Name == portName || portNumber != 0 && p.Port == portNumber
		})
		if i < 0 {
			t.Errorf("%s: backend port %q/%d is none of the Service's ports %+v", what, portName, portNumber, api.Spec.Ports)
			return
		}
		if got := targetOf(api.Spec.Ports[i], server); got != listener {
			t.Errorf("%s: the Service's port %s sends to port %d, not the API's %d", what, api.Spec.Ports[i].Name, got, listener)
		}
	}
	if r.ingress == nil {
		t.Fatal("no Ingress")
	}
	paths := 0
	for _, rule := range r.ingress.Spec.Rules {
		for _, path := range rule.HTTP.Paths {
			paths++
			b := path.Backend.Service
			if b == nil {
				t.Errorf("Ingress %s%s: no Service backend", rule.Host, path.Path)
				continue
			}
			reaches("Ingress "+rule.Host+path.Path, b.Name, b.Port.Name, b.Port.Number)
		}
	}
	if paths != 2 {
		t.Errorf("the Ingress routes %d paths, want the 2 given", paths)
	}
	route := r.customOf(t, "HTTPRoute")
	refs := 0
	for _, rule := range route["spec"].(map[string]any)["rules"].([]any) {
		for _, ref := range rule.(map[string]any)["backendRefs"].([]any) {
			refs++
			ref := ref.(map[string]any)
			port, _ := ref["port"].(float64) // a Gateway API backend names its port by number
			name, _ := ref["name"].(string)
			reaches("HTTPRoute", name, "", int32(port))
		}
	}
	if refs == 0 {
		t.Error("the HTTPRoute has no backend")
	}
}

// TestRollingTheServiceLeavesTheDatabaseAlone: the usual way to roll the
// service (a pod annotation, as the e2e does) must not change PostgreSQL's
// pod template, or every rollout of the service would restart its database.
func TestRollingTheServiceLeavesTheDatabaseAlone(t *testing.T) {
	before := mustRender(t, nil).statefulSet.Spec.Template
	for _, values := range []map[string]any{
		{"podAnnotations": map[string]any{"rollout": "2"}},
		{"podLabels": map[string]any{"tier": "api"}},
		{"config": map[string]any{"demoWarmup": "2s"}},
		{"image": map[string]any{"tag": "0.2.0"}},
	} {
		r := mustRender(t, values)
		if !reflect.DeepEqual(r.statefulSet.Spec.Template, before) {
			t.Errorf("%v changes PostgreSQL's pod template: the upgrade would restart the database", values)
		}
		if reflect.DeepEqual(r.deployment.Spec.Template, mustRender(t, nil).deployment.Spec.Template) {
			t.Errorf("%v does not roll the service", values)
		}
	}
	// Nor does a new version of the chart.
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	ch.Metadata.Version += "-next"
	r, err := renderChart(t, ch, nil, kindVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.statefulSet.Spec.Template, before) {
		t.Errorf("chart version %s changes PostgreSQL's pod template: the upgrade would restart the database", ch.Metadata.Version)
	}
}

// A podAnnotations key that is also a scrape annotation is written once,
// with the user's value (on the helm test pod, one of the hook's, with the
// hook's): a key twice in one map is refused by strict
// decoders (and by kustomize and Flux after helm).
func TestPodAnnotationsOverrideScrapeAnnotations(t *testing.T) {
	r := mustRender(t, map[string]any{"podAnnotations": map[string]any{"prometheus.io/scrape": "false", "team": "x"}})
	got := r.deployment.Spec.Template.Annotations
	if got["prometheus.io/scrape"] != "false" || got["team"] != "x" || got["prometheus.io/port"] != "9090" {
		t.Errorf("pod annotations %v: want the user's scrape=false beside team=x and the chart's port", got)
	}
	// On the helm test pod, a key the hook sets too is written once:
	// helm.sh/hook stays the test's (the pod must stay helm test's), a
	// delete policy (a user cleaning up test pods) is the user's.
	r = mustRender(t, map[string]any{"podAnnotations": map[string]any{"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "hook-succeeded", "team": "x"}})
	got = r.testPod.Annotations
	if got["helm.sh/hook"] != "test" || got["helm.sh/hook-delete-policy"] != "hook-succeeded" || got["team"] != "x" {
		t.Errorf("test pod annotations %v: want the test hook, the user's delete policy and team=x", got)
	}
	if got := mustRender(t, nil).testPod.Annotations["helm.sh/hook-delete-policy"]; got != "before-hook-creation" {
		t.Errorf("test pod's delete policy %q by default, want before-hook-creation", got)
	}
}

// extraEnv may set what the chart leaves alone (BERTH_SIDECAR_TIMEOUT,
// GOMEMLIMIT); every variable the chart sets, in any of the ci/ variants,
// is refused there with the values that set it named.
func TestExtraEnvLeavesTheChartsVariablesAlone(t *testing.T) {
	extra := func(name string) map[string]any {
		return map[string]any{"extraEnv": []any{map[string]any{"name": name, "value": "1"}}}
	}
	for name, value := range map[string]string{"BERTH_SIDECAR_TIMEOUT": "90s", "GOMEMLIMIT": "100MiB", "TZ": "UTC"} {
		with := map[string]any{"extraEnv": []any{map[string]any{"name": name, "value": value}}}
		if _, err := render(t, with); err != nil {
			t.Errorf("extraEnv %s=%s refused: %v", name, value, err)
		}
	}
	// From a ConfigMap, a value the chart cannot read: not checked, and
	// the service's default wait stands in for it.
	fromConfigMap := map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic"}, "extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_TIMEOUT",
		"valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "tuning", "key": "sidecar-timeout"}}}}}
	if _, err := render(t, fromConfigMap); err != nil {
		t.Errorf("extraEnv BERTH_SIDECAR_TIMEOUT from a ConfigMap refused: %v", err)
	}
	set := map[string]map[string]any{} // a name the chart sets -> values that render it
	for file, values := range ciValues(t) {
		r, err := render(t, values, crdAPIs...)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, e := range r.deployment.Spec.Template.Spec.Containers[0].Env {
			if _, ok := set[e.Name]; !ok && !slices.ContainsFunc(extraEnvOf(values), func(x string) bool { return x == e.Name }) {
				set[e.Name] = values
			}
		}
	}
	if len(set) < 20 {
		t.Fatalf("only %d variables found in the ci/ variants", len(set))
	}
	for name, values := range set {
		with := maps.Clone(values)
		maps.Copy(with, extra(name))
		_, err := render(t, with, crdAPIs...)
		if err == nil || !strings.Contains(err.Error(), "extraEnv sets "+name+", which the chart already sets from ") || strings.Contains(err.Error(), "from the chart's values") {
			t.Errorf("extraEnv %s: err = %v; want it refused, naming the values that set it", name, err)
		}
	}
}

// extraEnvOf lists the names a values map's extraEnv sets.
func extraEnvOf(values map[string]any) []string {
	var names []string
	list, _ := values["extraEnv"].([]any)
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["name"]))
		}
	}
	return names
}

// The chart's list of the service's variables (berth.variables, what
// extraEnv may set) is internal/config's.
func TestChartKnowsTheServicesVariables(t *testing.T) {
	raw, err := os.ReadFile(chartDir + "/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)define "berth.variables" -\}\}\n(.*?)\n\{\{- end`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("no berth.variables in _helpers.tpl")
	}
	if got, want := strings.Fields(string(m[1])), config.Variables(); !slices.Equal(got, want) {
		t.Fatalf("berth.variables = %v\nthe service reads %v", got, want)
	}
}

// With NetworkPolicy peers set, the chart's helm test pod still reaches
// both ports, also when commonLabels adds a label of the app.kubernetes.io
// family (part-of once replaced the one it was admitted by); and
// imagePullSecrets reach every pod the chart makes.
func TestHelmTestPodIsAdmittedAndPulls(t *testing.T) {
	r := mustRender(t, map[string]any{
		"commonLabels":     map[string]any{"app.kubernetes.io/part-of": "platform"},
		"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
		"networkPolicy": map[string]any{"enabled": true,
			"apiFrom":   []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"ingress": "true"}}}},
			"adminFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"monitoring": "true"}}}}},
	})
	testLabels := labels.Set(r.testPod.Labels)
	var service *networkingv1.NetworkPolicy
	for i := range r.policies {
		if r.policies[i].Name == r.deployment.Name {
			service = &r.policies[i]
		}
	}
	if service == nil {
		t.Fatal("no NetworkPolicy for the service")
	}
	for _, rule := range service.Spec.Ingress {
		admitted := slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool {
			if p.PodSelector == nil || p.NamespaceSelector != nil {
				return false
			}
			sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			return err == nil && sel.Matches(testLabels)
		})
		if !admitted {
			t.Errorf("rule for port %v does not admit the helm test pod (labels %v): %+v", rule.Ports[0].Port, r.testPod.Labels, rule.From)
		}
	}
	pods := map[string][]corev1.LocalObjectReference{
		"Deployment":  r.deployment.Spec.Template.Spec.ImagePullSecrets,
		"StatefulSet": r.statefulSet.Spec.Template.Spec.ImagePullSecrets,
		"test Pod":    r.testPod.Spec.ImagePullSecrets,
	}
	for what, secrets := range pods {
		if len(secrets) != 1 || secrets[0].Name != "regcred" {
			t.Errorf("%s: imagePullSecrets %v, want regcred", what, secrets)
		}
	}
}

// Each NetworkPolicy governs its own workload's pods, and only them: the
// bundled PostgreSQL's selects the StatefulSet's pods and admits the
// service's on the database port; the service's selects the Deployment's.
// A PostgreSQL policy that selected the service's pods would leave the
// database open to every pod, and cut the service off from its clients.
func TestNetworkPoliciesGovernTheirOwnPods(t *testing.T) {
	r := mustRender(t, map[string]any{"networkPolicy": map[string]any{"enabled": true}})
	pods := map[string]corev1.PodTemplateSpec{"Deployment": r.deployment.Spec.Template, "StatefulSet": r.statefulSet.Spec.Template}
	for _, tt := range []struct {
		policy, owner string // owner: the workload whose pods it governs
		from          string // the workload whose pods it admits, "" for any
	}{
		{r.deployment.Name, "Deployment", ""},
		{r.statefulSet.Name, "StatefulSet", "Deployment"},
	} {
		t.Run(tt.owner, func(t *testing.T) {
			i := slices.IndexFunc(r.policies, func(p networkingv1.NetworkPolicy) bool { return p.Name == tt.policy })
			if i < 0 {
				t.Fatalf("no NetworkPolicy %s", tt.policy)
			}
			p := r.policies[i]
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			for owner, pod := range pods {
				if got, want := sel.Matches(labels.Set(pod.Labels)), owner == tt.owner; got != want {
					t.Errorf("NetworkPolicy %s selects the %s's pods: %v, want %v (selector %v, labels %v)", p.Name, owner, got, want, sel, pod.Labels)
				}
			}
			// Every port it opens is one its own pods listen on.
			var named []string
			for _, c := range pods[tt.owner].Spec.Containers {
				for _, cp := range c.Ports {
					named = append(named, cp.Name)
				}
			}
			for _, rule := range p.Spec.Ingress {
				for _, port := range rule.Ports {
					if port.Port == nil || !slices.Contains(named, port.Port.String()) {
						t.Errorf("NetworkPolicy %s opens port %v, none of the %s pods' %v", p.Name, port.Port, tt.owner, named)
					}
				}
				if tt.from == "" {
					continue
				}
				admitted := labels.Set(pods[tt.from].Labels)
				if !slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil {
						return false
					}
					s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
					return err == nil && s.Matches(admitted)
				}) {
					t.Errorf("NetworkPolicy %s does not admit the %s's pods (labels %v): %+v", p.Name, tt.from, pods[tt.from].Labels, rule.From)
				}
			}
		})
	}
}

// A port an extra container declares (an exporter, an auth proxy) is
// admitted by a rule of networkPolicy.extraIngress, which the service's
// NetworkPolicy carries after its own two; with none that admits it (by
// number, name, range, or a rule for every port, of the port's protocol),
// the chart refuses, naming the container, the port and the value to set:
// the port would otherwise be cut off, unseen. A native sidecar of the
// user's (an init container with restartPolicy Always) serves beside the
// server and is checked alike; an init container that runs to completion
// first is not.
func TestNetworkPolicyAdmitsExtraContainersPortsOrRefuses(t *testing.T) {
	exporter := []any{map[string]any{"name": "exporter", "image": "exporter:1",
		"ports": []any{map[string]any{"name": "metrics", "containerPort": 9100}}}}
	for _, tt := range []struct {
		name  string
		key   string // where the container is: extraContainers or initContainers
		extra map[string]any
	}{
		{"an extra container", "extraContainers", nil},
		{"a native sidecar", "initContainers", map[string]any{"restartPolicy": "Always"}},
	} {
		t.Run(tt.name+", no rule", func(t *testing.T) {
			c := maps.Clone(exporter[0].(map[string]any))
			maps.Copy(c, tt.extra)
			_, err := render(t, map[string]any{tt.key: []any{c}, "networkPolicy": map[string]any{"enabled": true}})
			want := `networkPolicy.enabled admits nothing to ` + tt.key + ` "exporter"'s port 9100 (metrics): add a rule that does to networkPolicy.extraIngress`
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one saying %q", err, want)
			}
		})
	}
	if _, err := render(t, map[string]any{"initContainers": exporter, "networkPolicy": map[string]any{"enabled": true}}); err != nil {
		t.Errorf("an init container that runs to completion, with a port: %v", err)
	}
	for _, tt := range []struct {
		name    string
		ingress []any
		refused bool
	}{
		{"no rule", nil, true},
		{"a rule for its number", []any{map[string]any{"ports": []any{map[string]any{"port": 9100}}}}, false},
		{"a rule for its name", []any{map[string]any{"ports": []any{map[string]any{"port": "metrics"}}}}, false},
		{"a range holding it", []any{map[string]any{"ports": []any{map[string]any{"port": 9000, "endPort": 9200}}}}, false},
		{"a rule for every port", []any{map[string]any{"from": []any{map[string]any{"podSelector": map[string]any{}}}}}, false},
		{"a rule for another port", []any{map[string]any{"ports": []any{map[string]any{"port": 9101}}}}, true},
		{"a rule for its number over UDP", []any{map[string]any{"ports": []any{map[string]any{"port": 9100, "protocol": "UDP"}}}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, map[string]any{"extraContainers": exporter,
				"networkPolicy": map[string]any{"enabled": true, "extraIngress": tt.ingress}})
			if tt.refused {
				want := `networkPolicy.enabled admits nothing to extraContainers "exporter"'s port 9100 (metrics): add a rule that does to networkPolicy.extraIngress`
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want one saying %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(r.policies, func(p networkingv1.NetworkPolicy) bool { return p.Name == r.deployment.Name })
			if i < 0 {
				t.Fatal("no NetworkPolicy for the service's pods")
			}
			rules := r.policies[i].Spec.Ingress
			if len(rules) != 3 || !reflect.DeepEqual(rules[2], decodeRule(t, tt.ingress[0])) {
				t.Errorf("the policy's rules are %+v; want the chart's two, then networkPolicy.extraIngress's %v", rules, tt.ingress)
			}
		})
	}
}

// decodeRule is v, a value as the chart's values hold it, as the
// NetworkPolicyIngressRule it renders.
func decodeRule(t *testing.T, v any) networkingv1.NetworkPolicyIngressRule {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var rule networkingv1.NetworkPolicyIngressRule
	if err := json.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	return rule
}

// No selector of the service's matches the helm test pod: a Service would
// route to it, the PodDisruptionBudget would count it among the pods it
// guards, and the NetworkPolicy for the service would govern it. Also
// with the longest name, whose "-test" suffix truncation once cut off.
func TestHelmTestPodIsNotTheService(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{
			"podDisruptionBudget": map[string]any{"enabled": true},
			"networkPolicy":       map[string]any{"enabled": true},
			"commonLabels":        map[string]any{"team": "payments"},
			// A label the pods do not carry otherwise is theirs to set.
			"podLabels": map[string]any{"app.kubernetes.io/component": "api"},
		}
	}
	longest := base()
	longest["nameOverride"] = strings.Repeat("a", 63)
	longest["postgresql"] = map[string]any{"enabled": false} // its own names outgrow 63 first
	longest["replicaCount"] = 1
	longest["podDisruptionBudget"] = map[string]any{"enabled": false}
	for name, values := range map[string]map[string]any{"defaults": base(), "a 63-character name": longest} {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			if got := r.deployment.Spec.Template.Labels["app.kubernetes.io/component"]; got != "api" {
				t.Errorf("pod template component %q, want podLabels' api", got)
			}
			testLabels := labels.Set(r.testPod.Labels)
			selectors := map[string]*metav1.LabelSelector{"Deployment " + r.deployment.Name: r.deployment.Spec.Selector}
			if r.pdb != nil {
				selectors["PodDisruptionBudget"] = r.pdb.Spec.Selector
			}
			for _, s := range r.services {
				selectors["Service "+s.Name] = &metav1.LabelSelector{MatchLabels: s.Spec.Selector}
			}
			for _, p := range r.policies {
				selectors["NetworkPolicy "+p.Name] = &p.Spec.PodSelector
			}
			for what, ls := range selectors {
				sel, err := metav1.LabelSelectorAsSelector(ls)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if sel.Matches(testLabels) {
					t.Errorf("%s selects the helm test pod (selector %v, its labels %v)", what, sel, r.testPod.Labels)
				}
			}
			if r.testPod.Labels["app.kubernetes.io/instance"] == "" || r.testPod.Labels["team"] != "payments" {
				t.Errorf("test pod labels %v: want the release's instance label and commonLabels", r.testPod.Labels)
			}
		})
	}
}

// A label map of an object the chart does not render is not checked
// against commonLabels: the dashboard's default grafana_dashboard label
// does not stop a commonLabels grafana_dashboard while the dashboard is off.
func TestLabelsOfObjectsNotRendered(t *testing.T) {
	mustRender(t, map[string]any{"commonLabels": map[string]any{"grafana_dashboard": "x"}})
	if _, err := render(t, map[string]any{"commonLabels": map[string]any{"grafana_dashboard": "x"},
		"metrics": map[string]any{"dashboard": map[string]any{"enabled": true}}}); err == nil ||
		!strings.Contains(err.Error(), "metrics.dashboard.labels and commonLabels both set grafana_dashboard") {
		t.Fatalf("dashboard on, grafana_dashboard in both: err = %v", err)
	}
}

// The failureThreshold the startup-probe refusal asks for is enough: the
// kubelet's first probe can come as the container starts, so the last
// failure it allows comes periodSeconds x (failureThreshold - 1) later,
// and that must cover what the refusal says the service may take. The
// threshold asked for is accepted, one less refused.
func TestStartupProbeThresholdAskedForIsEnough(t *testing.T) {
	need := regexp.MustCompile(`= (\d+)s; the kubelet would restart it first\. Raise probes\.startup\.failureThreshold to at least (\d+)`)
	startup := func(period, threshold int) map[string]any {
		return map[string]any{"probes": map[string]any{"startup": map[string]any{"periodSeconds": period, "failureThreshold": threshold}}}
	}
	for _, period := range []int{1, 7, 10} {
		t.Run(fmt.Sprintf("every %ds", period), func(t *testing.T) {
			_, err := render(t, startup(period, 2))
			if err == nil {
				t.Fatal("a startup probe of two periods accepted")
			}
			got := need.FindStringSubmatch(err.Error())
			if got == nil {
				t.Fatalf("err = %v; want it to name the time needed and the threshold to raise to", err)
			}
			seconds, _ := strconv.Atoi(got[1])
			threshold, _ := strconv.Atoi(got[2])
			if worst := period * (threshold - 1); worst < seconds {
				t.Errorf("asks for failureThreshold %d: its last failure can come %ds after the container starts, before the %ds the service may take", threshold, worst, seconds)
			}
			if _, err := render(t, startup(period, threshold)); err != nil {
				t.Errorf("failureThreshold %d, as asked for: %v", threshold, err)
			}
			if _, err := render(t, startup(period, threshold-1)); err == nil {
				t.Errorf("failureThreshold %d, one less than asked for, accepted", threshold-1)
			}
		})
	}
}

// Sidecar delays that work are accepted: a native sidecar's up to its own
// startup probe (the service starts after it is ready, and waits for it no
// more), a classic one's up to the service's wait, which extraEnv may
// lengthen; and a native sidecar adds no wait to the service's startup.
func TestSidecarDelaysThatWork(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"native, 90s": {"sidecar": map[string]any{"enabled": true, "readyDelay": "90s"}},
		"classic, 90s with a 120s wait": {"sidecar": map[string]any{"enabled": true, "mode": "classic", "readyDelay": "90s"},
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_TIMEOUT", "value": "120s"}}},
		"native, a startup probe without room for a sidecar wait": {"sidecar": map[string]any{"enabled": true},
			"database": map[string]any{"waitSeconds": 30}, "probes": map[string]any{"startup": map[string]any{"failureThreshold": 129}}},
	} {
		if _, err := render(t, values); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A native sidecar's readyDelay is checked against the startup probe the
// chart gives it (periodSeconds x (failureThreshold - 1), as its first
// probe can come as it starts), read from the rendered
// pod: a delay just under that allowance is accepted, one at it refused
// (the kubelet would restart the sidecar before it is ready, and the
// service would never start).
func TestNativeSidecarDelayIsItsStartupProbes(t *testing.T) {
	native := func(delay string) map[string]any {
		return map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "native", "readyDelay": delay}}
	}
	spec := mustRender(t, native("0s")).deployment.Spec.Template.Spec
	sc := container(t, spec.InitContainers, "sidecar")
	p := sc.StartupProbe
	if p == nil || p.PeriodSeconds < 1 || p.FailureThreshold < 1 {
		t.Fatalf("the native sidecar's startupProbe %+v: want periodSeconds and failureThreshold set", p)
	}
	allowed := time.Duration(p.PeriodSeconds*(p.FailureThreshold-1)) * time.Second
	under := fmt.Sprintf("%dms", allowed.Milliseconds()-1)
	t.Run(under, func(t *testing.T) { accepted(t, native(under), "") })
	at := fmt.Sprintf("%ds", int(allowed.Seconds()))
	t.Run(at, func(t *testing.T) { refused(t, native(at), "sidecar.readyDelay") })
}

// A variable the chart sets from its values, though not with the values
// given, is refused in extraEnv too: it would escape the checks those
// values get, and the service would refuse to start (a push timeout the
// grace period does not count, a quiet period in preStop mode). The ones
// a user sets for what the chart does not run are accepted.
func TestExtraEnvCannotBypassTheChartsChecks(t *testing.T) {
	extra := func(name, value string, values map[string]any) map[string]any {
		if value == "" {
			value = "x"
		}
		with := map[string]any{"extraEnv": []any{map[string]any{"name": name, "value": value}}}
		maps.Copy(with, values)
		return with
	}
	external := map[string]any{"postgresql": map[string]any{"enabled": false}, "database": map[string]any{"existingSecret": "db"}}
	for _, tt := range []struct {
		name, value string // value "x" unless given
		values      map[string]any
		want        string // "" when accepted
	}{
		{"BERTH_PUSHGATEWAY_URL", "", nil, "extraEnv sets BERTH_PUSHGATEWAY_URL, which the chart sets from metrics.pushgateway.url (not with these values)"},
		{"BERTH_PUSH_TIMEOUT", "", nil, "from metrics.pushgateway.timeoutSeconds (not with these values)"},
		{"BERTH_DRAIN_QUIET", "", map[string]any{"drain": map[string]any{"mode": "preStop"}}, "from drain.quietSeconds (not with these values)"},
		{"BERTH_SIDECAR_QUIT", "", nil, "set terminationGracePeriodSeconds to fit its quit timeout too"},
		{"BERTH_SIDECAR_QUIT", "http://127.0.0.1:15020/quitquitquit", map[string]any{"terminationGracePeriodSeconds": 60}, ""},
		{"BERTH_SIDECARS", "127.0.0.1:15021", nil, ""},
		{"PGPASSWORD", "", external, ""},
		// The classic sidecar's wait, which the chart reads: within the
		// service's range and with a unit, or the pod would exit 2.
		{"BERTH_SIDECAR_TIMEOUT", "90s", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic"}}, ""},
		{"BERTH_SIDECAR_TIMEOUT", "90", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic"}}, `BERTH_SIDECAR_TIMEOUT="90", which is not a duration with a unit`},
		{"BERTH_SIDECAR_TIMEOUT", "2h", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic"}}, `BERTH_SIDECAR_TIMEOUT="2h": want between 100ms and 1h`},
		{"BERTH_SIDECAR_TIMEOUT", "50ms", nil, `BERTH_SIDECAR_TIMEOUT="50ms": want between 100ms and 1h`},
		// The quit's timeout, which the grace period counts, likewise.
		{"BERTH_SIDECAR_QUIT_TIMEOUT", "10m", map[string]any{"terminationGracePeriodSeconds": 700}, ""},
		{"BERTH_SIDECAR_QUIT_TIMEOUT", "100ms", map[string]any{"terminationGracePeriodSeconds": 700}, ""},
		{"BERTH_SIDECAR_QUIT_TIMEOUT", "5", map[string]any{"terminationGracePeriodSeconds": 700}, `BERTH_SIDECAR_QUIT_TIMEOUT="5", which is not a duration with a unit`},
		{"BERTH_SIDECAR_QUIT_TIMEOUT", "50ms", map[string]any{"terminationGracePeriodSeconds": 700}, `BERTH_SIDECAR_QUIT_TIMEOUT="50ms": want between 100ms and 10m`},
		{"BERTH_SIDECAR_QUIT_TIMEOUT", "11m", map[string]any{"terminationGracePeriodSeconds": 700}, `BERTH_SIDECAR_QUIT_TIMEOUT="11m": want between 100ms and 10m`},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			values := extra(tt.name, tt.value, tt.values)
			_, err := render(t, values)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want == "":
				accepted(t, values, "") // and the service takes what was rendered
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want it refused with %q", err, tt.want)
			}
		})
	}
}

// Turning autoscaling on keeps the replicas the Deployment runs: a
// manifest without them made Helm's three-way patch clear the field, and
// Kubernetes set 1, so a release of 3 pods dropped to 1 until the
// autoscaler caught up. Without the Deployment (an install, or a render
// without the cluster) the autoscaler's floor applies as before.
func TestTurningAutoscalingOnKeepsTheReplicas(t *testing.T) {
	autoscaled := map[string]any{"autoscaling": map[string]any{"enabled": true, "maxReplicas": 10}, "postgresql": map[string]any{"poolSize": 8}}
	running := func(name string, replicas int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: appsv1.DeploymentSpec{Replicas: &replicas}}
	}
	for _, tt := range []struct {
		name    string
		objects []runtime.Object
		want    string // the rendered replicas, "" for none
	}{
		{"the release runs 3", []runtime.Object{running("rel-berth", 3)}, "3"},
		{"the autoscaler scaled it to 7", []runtime.Object{running("rel-berth", 7)}, "7"},
		{"paused at zero", []runtime.Object{running("rel-berth", 0)}, "0"},
		{"no Deployment yet", nil, ""},
		{"another Deployment", []runtime.Object{running("other", 3)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := renderIn(t, newCluster(t, tt.objects...), kindVersion, autoscaled)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if p := r.deployment.Spec.Replicas; p != nil {
				got = fmt.Sprint(*p)
			}
			if got != tt.want {
				t.Errorf("replicas %q, want %q", got, tt.want)
			}
		})
	}
	// Without autoscaling, replicaCount, whatever the Deployment runs.
	r, err := renderIn(t, newCluster(t, running("rel-berth", 7)), kindVersion, map[string]any{"replicaCount": 2})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.deployment.Spec.Replicas; p == nil || *p != 2 {
		t.Errorf("autoscaling off: replicas %v, want replicaCount 2", p)
	}
}

// An autoscaler with a floor of one pod still gets a PodDisruptionBudget:
// once it has scaled up, a node drain must not evict every pod at once.
// A single pod without an autoscaler gets none (it would block drains).
func TestAutoscalingFromOnePodHasADisruptionBudget(t *testing.T) {
	r := mustRender(t, map[string]any{"replicaCount": 1, "autoscaling": map[string]any{"enabled": true, "minReplicas": 1}, "postgresql": map[string]any{"poolSize": 8}})
	if r.pdb == nil || r.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("autoscaled from 1 pod: PodDisruptionBudget %+v, want maxUnavailable 1", r.pdb)
	}
	if r := mustRender(t, map[string]any{"replicaCount": 1}); r.pdb != nil {
		t.Errorf("one pod, no autoscaler: PodDisruptionBudget %+v, want none", r.pdb.Spec)
	}
	// A budget not rendered refuses nothing: its maxUnavailable=0 blocks no drain.
	mustRender(t, map[string]any{"replicaCount": 1, "podDisruptionBudget": map[string]any{"maxUnavailable": 0}})
	// An autoscaler that never runs two pods has one pod to let go: a
	// budget of 100% is no worse than 1 there.
	mustRender(t, map[string]any{"replicaCount": 1, "autoscaling": map[string]any{"enabled": true, "minReplicas": 1, "maxReplicas": 1},
		"podDisruptionBudget": map[string]any{"maxUnavailable": "100%"}})
}

// A rollout is not reported stalled (ProgressDeadlineExceeded, Argo CD's
// Degraded) while a new pod is still inside the startup allowance the chart
// itself demands: a long migration once needed more than the Deployment's
// fixed 600s.
func TestProgressDeadlineCoversTheStartupAllowance(t *testing.T) {
	for _, tt := range []struct {
		name   string
		values map[string]any
		want   int32
	}{
		{"defaults", map[string]any{}, 600},
		{"a 30-minute migration", map[string]any{"database": map[string]any{"migrateTimeoutSeconds": 1800},
			"probes": map[string]any{"startup": map[string]any{"failureThreshold": 1899}}}, 2019},
		{"a slower startup probe", map[string]any{"probes": map[string]any{"startup": map[string]any{"periodSeconds": 5, "failureThreshold": 120}}}, 720},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := mustRender(t, tt.values).deployment
			p := d.Spec.ProgressDeadlineSeconds
			if p == nil || *p != tt.want {
				t.Fatalf("progressDeadlineSeconds %v, want %d", p, tt.want)
			}
			startup := container(t, d.Spec.Template.Spec.Containers, "server").StartupProbe
			if allowed := startup.PeriodSeconds * startup.FailureThreshold; *p <= allowed {
				t.Errorf("progressDeadlineSeconds %d within the startup allowance of %ds", *p, allowed)
			}
		})
	}
}

// Every pod the chart renders lands on the service's node pool: the bundled
// PostgreSQL and the helm test pod ignored nodeSelector and tolerations,
// and stayed Pending on a cluster of tainted or dedicated nodes.
func TestEveryPodTakesTheNodePool(t *testing.T) {
	r := mustRender(t, map[string]any{"nodeSelector": map[string]any{"pool": "berth"},
		"tolerations": []any{map[string]any{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}},
		"metrics":     map[string]any{"pushgateway": map[string]any{"url": "http://pushgateway:9091", "prune": map[string]any{"enabled": true}}}})
	pods := r.pods()
	for _, owner := range []string{"Deployment", "StatefulSet", "test Pod", "CronJob"} {
		if _, ok := pods[owner]; !ok {
			t.Fatalf("no %s pod rendered; have %v", owner, slices.Collect(maps.Keys(pods)))
		}
	}
	for owner, pod := range pods {
		if pod.Spec.NodeSelector["pool"] != "berth" || len(pod.Spec.Tolerations) != 1 || pod.Spec.Tolerations[0].Key != "dedicated" {
			t.Errorf("%s pods: nodeSelector %v, tolerations %v; want the service's", owner, pod.Spec.NodeSelector, pod.Spec.Tolerations)
		}
	}
}

// An Ingress path is rendered as the string given, whatever YAML makes of
// its characters: unquoted, "/docs #section" was read as "/docs" (the
// rest a comment) and "/a: b" failed to render.
func TestIngressPathIsRenderedAsGiven(t *testing.T) {
	for _, path := range []string{"/docs #section", "/a: b", "/'quoted'", "/"} {
		t.Run(path, func(t *testing.T) {
			r, err := render(t, map[string]any{"ingress": map[string]any{"enabled": true, "hosts": []any{
				map[string]any{"host": "berth.example.com", "paths": []any{map[string]any{"path": path, "pathType": "Prefix"}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.ingress.Spec.Rules[0].HTTP.Paths[0].Path; got != path {
				t.Fatalf("Ingress path %q, want %q", got, path)
			}
		})
	}
}

// What the refusals in TestRefusedAtInstall must still accept: a limit
// alone defaults a request, the data volume and /data are the embedded
// database's only, a mount under /data is another path, and the
// schedules, intervals, env entries and containers users write.
func TestValidNeighboursOfTheRefusalsAreAccepted(t *testing.T) {
	embedded := func(m map[string]any) map[string]any {
		m["replicaCount"], m["postgresql"] = 1, map[string]any{"enabled": false}
		return m
	}
	prune := func(schedule string) map[string]any {
		return map[string]any{"metrics": map[string]any{"pushgateway": map[string]any{"prune": map[string]any{"schedule": schedule}}}}
	}
	interval := func(d string) map[string]any {
		return map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": d}}}
	}
	for _, tt := range []struct {
		name   string
		values map[string]any
	}{
		{"an autoscaler on memory over a memory limit alone", map[string]any{"postgresql": map[string]any{"poolSize": 8},
			"autoscaling": map[string]any{"enabled": true, "targetMemoryUtilizationPercentage": 80},
			"resources":   map[string]any{"requests": map[string]any{"memory": nil}, "limits": map[string]any{"memory": "256Mi"}}}},
		{"an autoscaler over a CPU limit alone", map[string]any{"postgresql": map[string]any{"poolSize": 8}, "autoscaling": map[string]any{"enabled": true},
			"resources": map[string]any{"requests": map[string]any{"cpu": nil}, "limits": map[string]any{"cpu": "500m"}}}},
		{"an autoscaler over an extra container with a CPU request", map[string]any{"postgresql": map[string]any{"poolSize": 8}, "autoscaling": map[string]any{"enabled": true},
			"extraContainers": []any{map[string]any{"name": "log", "image": "busybox", "resources": map[string]any{"requests": map[string]any{"cpu": "10m"}}}}}},
		{"an autoscaler with a native sidecar and an init container", map[string]any{"postgresql": map[string]any{"poolSize": 8}, "autoscaling": map[string]any{"enabled": true},
			"sidecar": map[string]any{"enabled": true, "mode": "native"}, "initContainers": []any{map[string]any{"name": "init", "image": "busybox"}}}},
		{"a volume named data beside PostgreSQL", map[string]any{"extraVolumes": []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}}},
		{"a mount at /data beside PostgreSQL", map[string]any{"extraVolumes": []any{map[string]any{"name": "x", "emptyDir": map[string]any{}}},
			"extraVolumeMounts": []any{map[string]any{"name": "x", "mountPath": "/data"}}}},
		{"a mount under /data beside the embedded database", embedded(map[string]any{"extraVolumes": []any{map[string]any{"name": "cfg", "configMap": map[string]any{"name": "c"}}},
			"extraVolumeMounts": []any{map[string]any{"name": "cfg", "mountPath": "/data/x", "subPath": "x"}}})},
		{"an extra container named sidecar without the chart's", map[string]any{"extraContainers": []any{map[string]any{"name": "sidecar", "image": "busybox"}}}},
		{"an env entry from a field", map[string]any{"extraEnv": []any{map[string]any{"name": "POD_IP", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "status.podIP"}}}}}},
		{"a scrape interval of 1m30s", interval("1m30s")},
		{"a scrape interval of a day", interval("1d")},
		{"a prune every quarter hour", prune("*/15 * * * *")},
		{"a prune @hourly", prune("@hourly")},
		{"a prune @every 1h30m", prune("@every 1h30m")},
		{"a prune with month and day names", prune("0 3 * JAN-DEC MON-FRI")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := render(t, tt.values, crdAPIs...); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// The pod's containers share one network namespace: a port an
// extraContainers entry or a native sidecar among initContainers declares
// that the server (ports.http, ports.admin), the chart's sidecar
// (sidecar.port) or another such container already listens on makes one
// of the two fail to bind, and the pod crash-loop. The API server takes
// it with a mere warning ("duplicate port definition"); the chart refuses
// sidecar.port on ports.http or ports.admin for this reason, and must
// refuse these too, naming the port. Another protocol on the same number,
// or an init container that has exited before the server starts, is no
// conflict.
func TestExtraContainersPortsAreThePodsOwn(t *testing.T) {
	port := func(n int, proto ...string) map[string]any {
		p := map[string]any{"containerPort": n}
		if len(proto) > 0 {
			p["protocol"] = proto[0]
		}
		return p
	}
	extra := func(name string, ports ...any) map[string]any {
		return map[string]any{"name": name, "image": "busybox", "ports": ports}
	}
	native := func(name string, ports ...any) map[string]any {
		c := extra(name, ports...)
		c["restartPolicy"] = "Always"
		return c
	}
	for _, tt := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"an exporter on the admin port", map[string]any{"extraContainers": []any{extra("exporter", port(9090))}}, "9090"},
		{"a proxy on the API's port", map[string]any{"extraContainers": []any{extra("nginx", port(8080))}}, "8080"},
		{"a native sidecar of the user's on the chart's sidecar port", map[string]any{"sidecar": map[string]any{"enabled": true},
			"initContainers": []any{native("proxy", port(15021))}}, "15021"},
		{"two extra containers on one port", map[string]any{"extraContainers": []any{extra("a", port(9100)), extra("b", port(9100))}}, "9100"},
		{"an extra container on a moved API port", map[string]any{"ports": map[string]any{"http": 3000}, "extraContainers": []any{extra("dev", port(3000))}}, "3000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want the install refused, naming port %s that two containers of the pod would bind", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		values map[string]any
	}{
		{"another port", map[string]any{"extraContainers": []any{extra("exporter", port(9100))}}},
		{"the API's number over UDP", map[string]any{"extraContainers": []any{extra("dns", port(8080, "UDP"))}}},
		{"an init container that exits first", map[string]any{"initContainers": []any{extra("setup", port(8080))}}},
		{"the sidecar port without the chart's sidecar", map[string]any{"extraContainers": []any{extra("proxy", port(15021))}}},
	} {
		t.Run("accepted: "+tt.name, func(t *testing.T) {
			if _, err := render(t, tt.values); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}
