// Package chart tests the berth chart: it renders templates with the Helm
// SDK, decodes every manifest strictly into Kubernetes types, and asserts
// what a rollout depends on (probes, grace period, security context,
// sidecar shapes).
package chart

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const chartDir = "../../deploy/helm/berth"

type rendered struct {
	deployment  *appsv1.Deployment
	statefulSet *appsv1.StatefulSet
	services    []corev1.Service
	secrets     []corev1.Secret
	pvcs        []corev1.PersistentVolumeClaim
	configMaps  []corev1.ConfigMap
	pdb         *policyv1.PodDisruptionBudget
	testPod     *corev1.Pod
	ingress     *networkingv1.Ingress
	hpa         *autoscalingv2.HorizontalPodAutoscaler
	policies    []networkingv1.NetworkPolicy
	cronJob     *batchv1.CronJob
	// objects holds every decoded object's metadata, for checks that
	// apply to all of them (labels).
	objects []metav1.Object
	kinds   []string
	// custom holds objects of kinds the Kubernetes API types do not know
	// (a ServiceMonitor), decoded as YAML maps.
	custom []map[string]any
}

// strict decodes manifests into the Kubernetes API types, refusing unknown
// and duplicate fields.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// kindVersion is the Kubernetes version of the e2e's kind nodes, the one
// the chart tests render for unless they say otherwise.
const kindVersion = "v1.34.4"

func render(t *testing.T, values map[string]any, apiVersions ...string) (*rendered, error) {
	t.Helper()
	return renderAt(t, kindVersion, values, apiVersions...)
}

// renderAt renders the chart as helm install would for a cluster of
// Kubernetes version kube serving apiVersions besides the built-in ones,
// refusing a version outside the chart's kubeVersion as helm does.
func renderAt(t *testing.T, kube string, values map[string]any, apiVersions ...string) (*rendered, error) {
	t.Helper()
	return renderIn(t, nil, kube, values, apiVersions...)
}

// renderIn is renderAt against a cluster holding objects, which the
// chart's lookup calls see (nil: no cluster, as helm template renders).
func renderIn(t *testing.T, cluster engine.ClientProvider, kube string, values map[string]any, apiVersions ...string) (*rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return renderChart(t, ch, cluster, kube, values, apiVersions...)
}

// renderChart is renderIn for a chart already loaded (and perhaps changed).
func renderChart(t *testing.T, ch *chart.Chart, cluster engine.ClientProvider, kube string, values map[string]any, apiVersions ...string) (*rendered, error) {
	t.Helper()
	return renderRelease(t, ch, cluster, kube, "rel", values, apiVersions...)
}

// renderRelease is renderChart for a release of the name given.
func renderRelease(t *testing.T, ch *chart.Chart, cluster engine.ClientProvider, kube, release string, values map[string]any, apiVersions ...string) (*rendered, error) {
	t.Helper()
	vals, err := chartutil.CoalesceValues(ch, values)
	if err != nil {
		return nil, err
	}
	if err := chartutil.ValidateAgainstSchema(ch, vals); err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, apiVersions...)
	v, err := semver.NewVersion(kube)
	if err != nil {
		t.Fatal(err)
	}
	caps.KubeVersion = chartutil.KubeVersion{Version: kube, Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor())}
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kube) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", ch.Metadata.KubeVersion, kube)
	}
	rv, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: release, Namespace: "ns", IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	if cluster != nil {
		out, err = engine.RenderWithClientProvider(ch, rv, cluster)
	} else {
		out, err = engine.Render(ch, rv)
	}
	if err != nil {
		return nil, err
	}
	return decode(t, ch, out), nil
}

func decode(t *testing.T, ch *chart.Chart, files map[string]string) *rendered {
	t.Helper()
	r := &rendered{}
	for name, text := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(doc) == "" || isComments(doc) {
				continue
			}
			var meta struct{ Kind, APIVersion string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r.kinds = append(r.kinds, meta.Kind)
			if !scheme.Scheme.Recognizes(schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)) {
				var m map[string]any
				if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
					t.Fatalf("%s: %s: %v", name, meta.Kind, err)
				}
				r.custom = append(r.custom, m)
				continue
			}
			obj, _, err := strict.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: %s does not decode strictly: %v\n%s", name, meta.Kind, err, doc)
			}
			if m, ok := obj.(metav1.Object); ok {
				r.objects = append(r.objects, m)
			}
			switch o := obj.(type) {
			case *networkingv1.Ingress:
				r.ingress = o
			case *autoscalingv2.HorizontalPodAutoscaler:
				r.hpa = o
			case *networkingv1.NetworkPolicy:
				r.policies = append(r.policies, *o)
			case *appsv1.Deployment:
				r.deployment = o
			case *appsv1.StatefulSet:
				r.statefulSet = o
			case *corev1.Service:
				r.services = append(r.services, *o)
			case *corev1.Secret:
				r.secrets = append(r.secrets, *o)
			case *corev1.PersistentVolumeClaim:
				r.pvcs = append(r.pvcs, *o)
			case *corev1.ConfigMap:
				r.configMaps = append(r.configMaps, *o)
			case *policyv1.PodDisruptionBudget:
				r.pdb = o
			case *corev1.Pod:
				r.testPod = o
			case *batchv1.CronJob:
				r.cronJob = o
			}
		}
	}
	slices.Sort(r.kinds)
	return r
}

// pods returns every pod template the chart rendered, by owner.
// customOf returns the rendered custom object of kind (an HTTPRoute, a
// ServiceMonitor), failing the test when there is none.
func (r *rendered) customOf(t *testing.T, kind string) map[string]any {
	t.Helper()
	for _, m := range r.custom {
		if m["kind"] == kind {
			return m
		}
	}
	t.Fatalf("no %s rendered", kind)
	return nil
}

func (r *rendered) pods() map[string]corev1.PodTemplateSpec {
	pods := map[string]corev1.PodTemplateSpec{}
	if r.deployment != nil {
		pods["Deployment"] = r.deployment.Spec.Template
	}
	if r.statefulSet != nil {
		pods["StatefulSet"] = r.statefulSet.Spec.Template
	}
	if r.cronJob != nil {
		pods["CronJob"] = r.cronJob.Spec.JobTemplate.Spec.Template
	}
	if r.testPod != nil {
		pods["test Pod"] = corev1.PodTemplateSpec{ObjectMeta: r.testPod.ObjectMeta, Spec: r.testPod.Spec}
	}
	return pods
}

func isComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func mustRender(t *testing.T, values map[string]any, apiVersions ...string) *rendered {
	t.Helper()
	r, err := render(t, values, apiVersions...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func service(t *testing.T, r *rendered, name string) corev1.Service {
	t.Helper()
	for _, s := range r.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %q", name)
	return corev1.Service{}
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func container(t *testing.T, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// targetOf returns the number of the port of container c that the Service
// port p sends traffic to (its targetPort, by name or number), 0 when c
// has no port of that name.
func targetOf(p corev1.ServicePort, c corev1.Container) int32 {
	if p.TargetPort.Type == intstr.String {
		for _, cp := range c.Ports {
			if cp.Name == p.TargetPort.StrVal {
				return cp.ContainerPort
			}
		}
		return 0
	}
	if p.TargetPort.IntVal == 0 {
		return p.Port // Kubernetes' default: the Service's own port
	}
	return p.TargetPort.IntVal
}

// listensOn returns the port of a listen address such as ":8080".
func listensOn(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.ParseInt(port, 10, 32)
	if err != nil || perr != nil {
		t.Fatalf("listen address %q has no port", addr)
	}
	return int32(n)
}

func restricted(t *testing.T, where string, sc *corev1.SecurityContext) {
	t.Helper()
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: securityContext is not Pod Security restricted: %+v", where, sc)
	}
}

func TestDefaults(t *testing.T) {
	r := mustRender(t, nil)
	if got, want := r.kinds, []string{"Deployment", "Pod", "PodDisruptionBudget", "Secret", "Service", "Service", "Service", "Service", "ServiceAccount", "StatefulSet"}; !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v", got, want)
	}
	d := r.deployment
	spec := d.Spec.Template.Spec
	if *d.Spec.Replicas != 3 || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas %d, maxUnavailable %v", *d.Spec.Replicas, d.Spec.Strategy.RollingUpdate.MaxUnavailable)
	}
	if *spec.TerminationGracePeriodSeconds != 37 {
		t.Errorf("grace = %d, want 5+20+10+2", *spec.TerminationGracePeriodSeconds)
	}
	app := container(t, spec.Containers, "server")
	e := env(app)
	for k, v := range map[string]string{"BERTH_GRACE_PERIOD": "37s", "BERTH_DRAIN_DELAY": "5s", "BERTH_PRESTOP_DELAY": "0s",
		"BERTH_DRAIN_TIMEOUT": "20s", "BERTH_STOP_TIMEOUT": "10s", "BERTH_SHUTDOWN_MARGIN": "2s", "BERTH_ADMIN_ADDR": ":9090"} {
		if e[k] != v {
			t.Errorf("env %s = %q, want %q", k, e[k], v)
		}
	}
	if _, ok := e["BERTH_SIDECARS"]; ok {
		t.Error("BERTH_SIDECARS set without a sidecar")
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{app.StartupProbe, "/startupz"}, {app.ReadinessProbe, "/readyz?exclude=db"}, {app.LivenessProbe, "/livez"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("probe for %s: %+v", p.path, p.probe)
		}
	}
	if app.Lifecycle != nil {
		t.Error("preStop present in app mode: the delay would be counted twice")
	}
	restricted(t, "server", app.SecurityContext)
	restricted(t, "helm test pod", r.testPod.Spec.Containers[0].SecurityContext)
	if ps := spec.SecurityContext; ps == nil || !*ps.RunAsNonRoot || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", ps)
	}
	if len(spec.TopologySpreadConstraints) != 1 || spec.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("topology spread %+v", spec.TopologySpreadConstraints)
	}
	if r.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("pdb %+v", r.pdb.Spec)
	}
	if got := r.testPod.Spec.Containers[0].Args; !slices.Equal(got, []string{"probe", "http://rel-berth:80/api/v1/info"}) {
		t.Errorf("helm test args %q", got)
	}
	for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
		if d.Labels[l] == "" {
			t.Errorf("label %s missing", l)
		}
	}
}

func TestPreStopMode(t *testing.T) {
	r := mustRender(t, map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 8}})
	spec := r.deployment.Spec.Template.Spec
	app := container(t, spec.Containers, "server")
	if app.Lifecycle == nil || app.Lifecycle.PreStop == nil || app.Lifecycle.PreStop.Sleep == nil || app.Lifecycle.PreStop.Sleep.Seconds != 8 {
		t.Fatalf("preStop = %+v", app.Lifecycle)
	}
	e := env(app)
	if e["BERTH_DRAIN_DELAY"] != "0s" || e["BERTH_PRESTOP_DELAY"] != "8s" || *spec.TerminationGracePeriodSeconds != 41 || e["BERTH_GRACE_PERIOD"] != "41s" {
		t.Fatalf("delay %q prestop %q grace %d", e["BERTH_DRAIN_DELAY"], e["BERTH_PRESTOP_DELAY"], *spec.TerminationGracePeriodSeconds)
	}
}

func TestNativeSidecar(t *testing.T) {
	r := mustRender(t, map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "native"}})
	spec := r.deployment.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("init %d containers %d", len(spec.InitContainers), len(spec.Containers))
	}
	sc := spec.InitContainers[0]
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatal("native sidecar lacks restartPolicy: Always")
	}
	if sc.StartupProbe == nil || sc.StartupProbe.Exec == nil || !slices.Contains(sc.StartupProbe.Exec.Command, "http://127.0.0.1:15021/ready") {
		t.Fatalf("sidecar startupProbe %+v", sc.StartupProbe)
	}
	restricted(t, "native sidecar", sc.SecurityContext)
	e := env(container(t, spec.Containers, "server"))
	if e["BERTH_SIDECARS"] != "http://127.0.0.1:15021/ready" || e["BERTH_SIDECAR_QUIT"] != "" || *spec.TerminationGracePeriodSeconds != 37 {
		t.Fatalf("env %v grace %d", e, *spec.TerminationGracePeriodSeconds)
	}
	if env(sc)["BERTH_SIDECAR_HOLD"] != "0s" {
		t.Fatal("a native sidecar should exit on SIGTERM: the kubelet stops it after the app")
	}
}

// The demo sidecar logs in the service's format (config.logFormat), so
// one parser reads the whole pod's logs; it logged JSON whatever was set.
func TestSidecarLogsInTheServicesFormat(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		r := mustRender(t, map[string]any{"config": map[string]any{"logFormat": format}, "sidecar": map[string]any{"enabled": true, "mode": "classic"}})
		spec := r.deployment.Spec.Template.Spec
		if got := env(container(t, spec.Containers, "sidecar"))["BERTH_LOG_FORMAT"]; got != format {
			t.Errorf("config.logFormat=%s: the sidecar's BERTH_LOG_FORMAT is %q", format, got)
		}
	}
}

func TestClassicSidecar(t *testing.T) {
	r := mustRender(t, map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic", "quitTimeoutSeconds": 3}})
	spec := r.deployment.Spec.Template.Spec
	if len(spec.InitContainers) != 0 || len(spec.Containers) != 2 {
		t.Fatalf("init %d containers %d", len(spec.InitContainers), len(spec.Containers))
	}
	sc := container(t, spec.Containers, "sidecar")
	if sc.RestartPolicy != nil {
		t.Fatal("a classic sidecar is an ordinary container")
	}
	restricted(t, "classic sidecar", sc.SecurityContext)
	e := env(container(t, spec.Containers, "server"))
	if e["BERTH_SIDECAR_QUIT"] != "http://127.0.0.1:15021/quitquitquit" || e["BERTH_SIDECAR_QUIT_TIMEOUT"] != "3s" {
		t.Fatalf("env %v", e)
	}
	if *spec.TerminationGracePeriodSeconds != 40 || e["BERTH_GRACE_PERIOD"] != "40s" || env(sc)["BERTH_SIDECAR_HOLD"] != "40s" {
		t.Fatalf("grace %d (want 37 + 3 quit)", *spec.TerminationGracePeriodSeconds)
	}
}

func TestOptionalResources(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		apis   []string
		want   []string
	}{
		{"one replica has no PDB", map[string]any{"replicaCount": 1}, nil,
			[]string{"Deployment", "Pod", "Secret", "Service", "Service", "Service", "Service", "ServiceAccount", "StatefulSet"}},
		{"no service account", map[string]any{"serviceAccount": map[string]any{"create": false}}, nil,
			[]string{"Deployment", "Pod", "PodDisruptionBudget", "Secret", "Service", "Service", "Service", "Service", "StatefulSet"}},
		{"external database", map[string]any{"postgresql": map[string]any{"enabled": false}, "database": map[string]any{"existingSecret": "db"}}, nil,
			[]string{"Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"}},
		{"embedded database", map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}}, nil,
			[]string{"Deployment", "PersistentVolumeClaim", "Pod", "Service", "Service", "ServiceAccount"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustRender(t, tt.values, tt.apis...).kinds; !slices.Equal(got, tt.want) {
				t.Fatalf("kinds = %v, want %v", got, tt.want)
			}
		})
	}
}

// service.nodePort is the API's fixed node port where the Service has node
// ports (NodePort, LoadBalancer); with ClusterIP it is ignored, as
// values.yaml says: the API server refuses a nodePort on a ClusterIP
// Service, and the install would fail.
func TestNodePort(t *testing.T) {
	for _, tt := range []struct {
		typ  corev1.ServiceType
		want int32
	}{
		{corev1.ServiceTypeNodePort, 30080},
		{corev1.ServiceTypeLoadBalancer, 30080},
		{corev1.ServiceTypeClusterIP, 0},
	} {
		t.Run(string(tt.typ), func(t *testing.T) {
			r := mustRender(t, map[string]any{"service": map[string]any{"type": string(tt.typ), "nodePort": 30080}})
			api := service(t, r, "rel-berth")
			if p := api.Spec.Ports[0]; api.Spec.Type != tt.typ || p.NodePort != tt.want {
				t.Fatalf("service.type=%s, service.nodePort=30080: type %s, nodePort %d; want nodePort %d", tt.typ, api.Spec.Type, p.NodePort, tt.want)
			}
		})
	}
}

func TestRejectedValues(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"unknown key", map[string]any{"replicas": 3}, "additional properties 'replicas' not allowed"},
		{"unknown nested key", map[string]any{"drain": map[string]any{"delay": "5s"}}, "additional properties 'delay' not allowed"},
		{"bad hook name", map[string]any{"config": map[string]any{"demoFail": "store"}}, "demoFail"},
		{"bad duration", map[string]any{"config": map[string]any{"demoWarmup": "5 seconds"}}, "demoWarmup"},
		{"duration ending without a unit", map[string]any{"config": map[string]any{"jobInterval": "1m30"}}, "jobInterval"},
		{"bad drain mode", map[string]any{"drain": map[string]any{"mode": "both"}}, "mode"},
		{"zero margin", map[string]any{"drain": map[string]any{"marginSeconds": 0}}, "marginSeconds"},
		{"grace too short", map[string]any{"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds=30 cannot fit the shutdown budget of 37 seconds"},
		{"grace too short for classic quit", map[string]any{"terminationGracePeriodSeconds": 37, "sidecar": map[string]any{"enabled": true, "mode": "classic"}},
			"budget of 42 seconds (drain delay 5 + drain timeout 20 + stop timeout 10 + sidecar quit timeout 5 + margin 2)"},
		{"grace too short after a preStop sleep", map[string]any{"terminationGracePeriodSeconds": 37, "drain": map[string]any{"mode": "preStop"}},
			"budget of 38 seconds (preStop sleep 5 + 1 to close keep-alive connections after the preStop sleep + drain timeout 20 + stop timeout 10 + margin 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if r := mustRender(t, map[string]any{"terminationGracePeriodSeconds": 60}); *r.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds != 60 {
		t.Fatal("a grace period that fits is not used as given")
	}
}

func TestLintStrict(t *testing.T) {
	linter := lint.AllWithKubeVersion(chartDir, map[string]any{}, "ns", &chartutil.KubeVersion{Version: "v1.34.4", Major: "1", Minor: "34"})
	var problems bytes.Buffer
	for _, m := range linter.Messages {
		if m.Severity > support.InfoSev { // --strict fails on warnings too
			fmt.Fprintln(&problems, m)
		}
	}
	if problems.Len() > 0 {
		t.Fatalf("helm lint --strict:\n%s", problems.String())
	}
}
