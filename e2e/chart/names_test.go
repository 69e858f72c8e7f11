package chart

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Every object the chart renders keeps a name Kubernetes accepts, apart
// from the others of its kind, and label values of at most 63 characters,
// even with the longest names a user can give: a Service's name is a DNS
// label (63), a StatefulSet's or a CronJob's at most 52 (its pods'
// controller-revision-hash label, its Jobs' names), others' a DNS
// subdomain (253). Every
// optional object is on (ci/everything-values.yaml), with the bundled
// PostgreSQL.
func TestLongNamesFitKubernetes(t *testing.T) {
	everything := ciValues(t)["everything-values.yaml"]
	for name, override := range map[string]map[string]any{
		"defaults":                     {},
		"a 63-character fullname":      {"fullnameOverride": strings.Repeat("f", 63)},
		"a 63-character name":          {"nameOverride": strings.Repeat("n", 63)},
		"a name ending in -postgresql": {"fullnameOverride": strings.Repeat("p", 30) + "-postgresql"},
	} {
		t.Run(name, func(t *testing.T) {
			values := maps.Clone(everything)
			maps.Copy(values, override)
			r := mustRender(t, values, crdAPIs...)
			if r.statefulSet == nil || r.cronJob == nil {
				t.Fatal("want the bundled PostgreSQL's StatefulSet and the prune CronJob rendered")
			}
			seen := map[string]bool{}
			check := func(kind, name string, labels map[string]string) {
				limit := 253 // a DNS subdomain
				switch kind {
				case "Service":
					limit = 63 // a DNS label
				case "StatefulSet", "CronJob":
					limit = 52
				}
				if len(name) > limit {
					t.Errorf("%s %s: %d characters, more than the %d it may have", kind, name, len(name), limit)
				}
				if key := kind + "/" + name; seen[key] {
					t.Errorf("two objects are %s", key)
				} else {
					seen[key] = true
				}
				for k, v := range labels {
					for _, msg := range validation.IsValidLabelValue(v) {
						t.Errorf("%s %s: label %s=%q: %s", kind, name, k, v, msg)
					}
				}
			}
			for _, o := range r.objects {
				kind := strings.TrimPrefix(fmt.Sprintf("%T", o), "*")
				kind = kind[strings.LastIndex(kind, ".")+1:]
				check(kind, o.GetName(), o.GetLabels())
				switch o := o.(type) {
				case *appsv1.Deployment:
					check("Deployment's pod", o.Name, o.Spec.Template.Labels)
				case *appsv1.StatefulSet:
					check("StatefulSet's pod", o.Name, o.Spec.Template.Labels)
				case *batchv1.CronJob:
					check("CronJob's pod", o.Name, o.Spec.JobTemplate.Spec.Template.Labels)
				}
			}
			for _, m := range r.custom {
				meta, _ := m["metadata"].(map[string]any)
				labels := map[string]string{}
				if l, ok := meta["labels"].(map[string]any); ok {
					for k, v := range l {
						labels[k] = fmt.Sprint(v)
					}
				}
				check(fmt.Sprint(m["kind"]), fmt.Sprint(meta["name"]), labels)
			}
		})
	}
}

// Names that fit are never cut: an existing release keeps its objects
// (a renamed StatefulSet would leave its volume, and its password, behind).
// Where cutting would give a derived object the service's own name, the
// install is refused.
func TestNamesThatFitAreKeptAndCutOnesStayApart(t *testing.T) {
	for _, tt := range []struct {
		full, postgresql, admin string
	}{
		{strings.Repeat("f", 41), strings.Repeat("f", 41) + "-postgresql", strings.Repeat("f", 41) + "-admin"},
		{strings.Repeat("g", 57), strings.Repeat("g", 41) + "-postgresql", strings.Repeat("g", 57) + "-admin"},
	} {
		r := mustRender(t, map[string]any{"fullnameOverride": tt.full})
		if r.statefulSet.Name != tt.postgresql {
			t.Errorf("full name of %d: PostgreSQL is %s, want %s", len(tt.full), r.statefulSet.Name, tt.postgresql)
		}
		service(t, r, tt.admin) // fails unless it exists
	}
	for what, full := range map[string]string{
		"the bundled PostgreSQL's":                    strings.Repeat("p", 41) + "-postgresql",
		"the bundled PostgreSQL's headless Service's": strings.Repeat("h", 41) + "-postgresql-headless",
		"the admin Service's":                         strings.Repeat("a", 57) + "-admin",
	} {
		_, err := render(t, map[string]any{"fullnameOverride": full})
		if err == nil || !strings.Contains(err.Error(), "makes "+what+" name the same as the service's") {
			t.Errorf("fullnameOverride %s: err = %v, want it refused for %s name", full, err, what)
		}
	}
	// Without the bundled PostgreSQL, its names are no one's.
	external := map[string]any{"fullnameOverride": strings.Repeat("p", 41) + "-postgresql",
		"postgresql": map[string]any{"enabled": false}, "database": map[string]any{"existingSecret": "db"}}
	if _, err := render(t, external); err != nil {
		t.Errorf("an external database and a full name ending in -postgresql: %v", err)
	}
}

// A release name helm accepts is a string in every object, however YAML
// would read it bare ("on" a boolean, "null" nothing), with every optional
// object on; names the Services could not take are refused, naming what
// to change: a Service's name must start with a letter, where a release's
// may start with a digit (a ticket number, say).
func TestReleaseNamesYAMLWouldMisread(t *testing.T) {
	everything := ciValues(t)["everything-values.yaml"]
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		release  string
		override map[string]any
		want     string // the refusal; "" when it renders
	}{
		{"on", nil, ""},
		{"null", nil, ""},
		{"true", map[string]any{"nameOverride": "no"}, ""},
		{"1234", nil, `the objects' names would be "1234-berth" (from the release name "1234"), which Kubernetes refuses as a Service's name`},
		{"my.app", nil, `the objects' names would be "my.app-berth" (from the release name "my.app")`},
		{"rel", map[string]any{"fullnameOverride": "9lives"}, `the objects' names would be "9lives" (from fullnameOverride)`},
		{"rel", map[string]any{"fullnameOverride": "my_app"}, `the objects' names would be "my_app" (from fullnameOverride)`},
		{"rel", map[string]any{"fullnameOverride": "off"}, `fullnameOverride="off": YAML reads that word as a boolean or null`},
	} {
		t.Run(fmt.Sprintf("%s %v", tt.release, tt.override), func(t *testing.T) {
			values := maps.Clone(everything)
			maps.Copy(values, tt.override)
			r, err := renderRelease(t, ch, nil, kindVersion, tt.release, values, crdAPIs...)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The strict decode already refused a label that is not a
			// string; a null one would read as "".
			for _, o := range r.objects {
				if got := o.GetLabels()["app.kubernetes.io/instance"]; got != tt.release {
					t.Errorf("%T %s: app.kubernetes.io/instance = %q, want %q", o, o.GetName(), got, tt.release)
				}
			}
			for _, m := range r.custom {
				meta, _ := m["metadata"].(map[string]any)
				labels, _ := meta["labels"].(map[string]any)
				if got, ok := labels["app.kubernetes.io/instance"].(string); !ok || got != tt.release {
					t.Errorf("%v %v: app.kubernetes.io/instance = %#v, want %q", m["kind"], meta["name"], labels["app.kubernetes.io/instance"], tt.release)
				}
			}
			want := "berth"
			if n, ok := tt.override["nameOverride"].(string); ok {
				want = n
			}
			if got := r.deployment.Spec.Selector.MatchLabels["app.kubernetes.io/name"]; got != want {
				t.Errorf("selector's app.kubernetes.io/name = %q, want %q", got, want)
			}
		})
	}
}
