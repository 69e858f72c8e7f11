package chart

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

// The bundled PostgreSQL: a StatefulSet under the restricted Pod Security
// Standard as uid 999, PGDATA inside the volume, pg_isready probes, a PVC
// per pod, a password kept in a Secret that outlives the release, and the
// service's URL built from that Secret.
func TestBundledPostgreSQL(t *testing.T) {
	r := mustRender(t, map[string]any{"postgresql": map[string]any{"image": map[string]any{"repository": "kit.local/postgres", "tag": "15"}}})
	sts := r.statefulSet
	if sts == nil || *sts.Spec.Replicas != 1 || sts.Spec.ServiceName != "rel-berth-postgresql-headless" {
		t.Fatalf("statefulset %+v", sts)
	}
	spec := sts.Spec.Template.Spec
	pg := container(t, spec.Containers, "postgresql")
	if pg.Image != "kit.local/postgres:15" {
		t.Errorf("image %q", pg.Image)
	}
	if ps := spec.SecurityContext; ps == nil || *ps.RunAsUser != 999 || *ps.FSGroup != 999 || !*ps.RunAsNonRoot {
		t.Errorf("pod securityContext %+v", ps)
	}
	restricted(t, "postgresql", pg.SecurityContext)
	e := env(pg)
	if e["PGDATA"] != "/var/lib/postgresql/data/pgdata" || e["POSTGRES_USER"] != "berth" || e["POSTGRES_DB"] != "berth" {
		t.Errorf("postgres env %v", e)
	}
	// Exec probes start slowly on a busy node: a 1s timeout took a healthy
	// PostgreSQL out of the Service, and restarted it, under the e2e's load.
	for _, p := range []*corev1.Probe{pg.StartupProbe, pg.ReadinessProbe, pg.LivenessProbe} {
		if p == nil || p.Exec == nil || p.Exec.Command[0] != "pg_isready" || p.TimeoutSeconds < 5 {
			t.Errorf("probe %+v: want pg_isready with a timeout of 5s or more", p)
		}
	}
	if l := pg.LivenessProbe; l != nil && l.PeriodSeconds*l.FailureThreshold < 60 {
		t.Errorf("liveness probe %+v: restarts PostgreSQL after %ds of failures, want a minute or more", l, l.PeriodSeconds*l.FailureThreshold)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("volumeClaimTemplates %+v", sts.Spec.VolumeClaimTemplates)
	}
	if len(r.secrets) != 1 || r.secrets[0].Annotations["helm.sh/resource-policy"] != "keep" || len(r.secrets[0].Data["password"]) != 32 {
		t.Errorf("secret %+v", r.secrets)
	}
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	ae := env(app)
	// The password stays out of the URL, where a reserved character
	// (@ : / % ? #) would break it; pgx reads PGPASSWORD instead.
	if ae["BERTH_DATABASE_URL"] != "postgres://berth@rel-berth-postgresql:5432/berth?sslmode=disable&pool_max_conns=8" {
		t.Errorf("BERTH_DATABASE_URL %q", ae["BERTH_DATABASE_URL"])
	}
	i := slices.IndexFunc(app.Env, func(v corev1.EnvVar) bool { return v.Name == "PGPASSWORD" })
	if i < 0 || app.Env[i].ValueFrom == nil || app.Env[i].ValueFrom.SecretKeyRef.Name != "rel-berth-postgresql" || app.Env[i].ValueFrom.SecretKeyRef.Key != "password" {
		t.Errorf("PGPASSWORD must come from the Secret: %+v", app.Env)
	}
	if ae["BERTH_DB_WAIT"] != "60s" || ae["BERTH_DB_TIMEOUT"] != "1500ms" || ae["BERTH_MAX_ITEMS"] != "100000" {
		t.Errorf("database settings %v", ae)
	}

	noPVC := mustRender(t, map[string]any{"postgresql": map[string]any{"persistence": map[string]any{"enabled": false}}}).statefulSet
	if len(noPVC.Spec.VolumeClaimTemplates) != 0 || !slices.ContainsFunc(noPVC.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "data" && v.EmptyDir != nil
	}) {
		t.Errorf("without persistence: %+v", noPVC.Spec)
	}
}

func TestExternalDatabase(t *testing.T) {
	r := mustRender(t, map[string]any{"postgresql": map[string]any{"enabled": false}, "database": map[string]any{"existingSecret": "shared-db", "existingSecretKey": "dsn"}})
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	i := slices.IndexFunc(app.Env, func(v corev1.EnvVar) bool { return v.Name == "BERTH_DATABASE_URL" })
	if i < 0 || app.Env[i].ValueFrom == nil || app.Env[i].ValueFrom.SecretKeyRef.Name != "shared-db" || app.Env[i].ValueFrom.SecretKeyRef.Key != "dsn" {
		t.Fatalf("env %+v", app.Env)
	}
	if r.statefulSet != nil || len(r.secrets) != 0 {
		t.Fatal("an external database rendered the bundled one")
	}
}

func TestEmbeddedDatabase(t *testing.T) {
	r := mustRender(t, map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}})
	d := r.deployment
	app := container(t, d.Spec.Template.Spec.Containers, "server")
	if env(app)["BERTH_DATA_DIR"] != "/data" || len(app.VolumeMounts) != 1 || app.VolumeMounts[0].MountPath != "/data" {
		t.Fatalf("server %+v", app)
	}
	if len(r.pvcs) != 1 || d.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != r.pvcs[0].Name {
		t.Fatalf("pvc %+v volumes %+v", r.pvcs, d.Spec.Template.Spec.Volumes)
	}
	if d.Spec.Strategy.Type != "Recreate" {
		t.Fatalf("strategy %s: two pods must not share the SQLite file", d.Spec.Strategy.Type)
	}
	if r.pvcs[0].Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("the SQLite claim %+v would go with an uninstall, its items with it", r.pvcs[0].ObjectMeta)
	}
	argo := mustRender(t, map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false},
		"database": map[string]any{"embedded": map[string]any{"annotations": map[string]any{
			"argocd.argoproj.io/sync-options": "Delete=false,Prune=false", "helm.sh/resource-policy": "delete"}}}})
	if a := argo.pvcs[0].Annotations; a["argocd.argoproj.io/sync-options"] != "Delete=false,Prune=false" || a["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("claim annotations %v: want the user's, and keep kept", a)
	}
	if _, err := render(t, map[string]any{"replicaCount": 0, "postgresql": map[string]any{"enabled": false}}); err != nil {
		t.Fatalf("scaling the embedded database's release to zero: %v", err)
	}
}

// cluster is a ClientProvider over a fake API server holding objs, for the
// chart's lookup calls.
type cluster struct {
	client *dynamicfake.FakeDynamicClient
}

func newCluster(t *testing.T, objs ...runtime.Object) cluster {
	t.Helper()
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := appsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return cluster{dynamicfake.NewSimpleDynamicClient(s, objs...)}
}

func (c cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gvr, ok := map[string]schema.GroupVersionResource{
		"v1 PersistentVolumeClaim": {Version: "v1", Resource: "persistentvolumeclaims"},
		"v1 Secret":                {Version: "v1", Resource: "secrets"},
		"apps/v1 Deployment":       {Group: "apps", Version: "v1", Resource: "deployments"},
	}[apiVersion+" "+kind]
	if !ok {
		return nil, false, fmt.Errorf("the fake cluster serves no %s %s", apiVersion, kind)
	}
	return c.client.Resource(gvr), true, nil
}

// An upgrade or reinstall that switches databases while the old one's
// claim (kept after its StatefulSet or its uninstall) still holds the items
// is refused, naming the claim: away from the embedded database's, or from
// the bundled PostgreSQL's to the embedded database (the service used to
// start on an empty SQLite file). So is one that names the release's
// objects anew (a changed nameOverride or fullnameOverride), which would
// make a new, empty claim beside the one that holds the items, whatever
// the database, but the move from a bundled PostgreSQL to an external one,
// which the chart allows. Another release's claim of that name, or none,
// is no reason to refuse.
func TestSwitchingDatabasesWhileAClaimHoldsTheItemsIsRefused(t *testing.T) {
	claim := func(name, instance string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
			Labels: map[string]string{"app.kubernetes.io/instance": instance}}}
	}
	// The claims as the chart makes them, with their labels.
	sqliteMade := func(name string) *corev1.PersistentVolumeClaim {
		c := claim(name, "rel")
		c.Labels["helm.sh/chart"], c.Labels["app.kubernetes.io/name"] = "berth-0.1.0", "berth"
		return c
	}
	pgMade := func(name string) *corev1.PersistentVolumeClaim {
		c := claim(name, "rel")
		c.Labels["app.kubernetes.io/name"] = "berth-postgresql"
		return c
	}
	sqlite, pg := "rel-berth-data", "data-rel-berth-postgresql-0"
	bundled := map[string]any{}
	external := map[string]any{"postgresql": map[string]any{"enabled": false}, "database": map[string]any{"existingSecret": "db"}}
	embedded := map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false}}
	renamed := func(values map[string]any, key, name string) map[string]any {
		out := maps.Clone(values)
		out[key] = name
		return out
	}
	for _, tt := range []struct {
		name   string
		claim  *corev1.PersistentVolumeClaim // nil: none
		values map[string]any
		want   string // "" renders
	}{
		{"embedded to the bundled PostgreSQL", claim(sqlite, "rel"), bundled,
			"the claim ns/rel-berth-data holds this release's embedded SQLite database, and these values use the bundled PostgreSQL (postgresql.enabled=true): its items would be left behind"},
		{"embedded to an external database", claim(sqlite, "rel"), external,
			"these values use an external database (database.existingSecret): its items would be left behind. Keep the embedded database (postgresql.enabled=false, no database.existingSecret), or move the items and then delete the claim (kubectl -n ns delete pvc rel-berth-data)"},
		{"staying embedded", claim(sqlite, "rel"), embedded, ""},
		{"another release's embedded claim", claim(sqlite, "other"), bundled, ""},
		{"bundled to the embedded database", claim(pg, "rel"), embedded,
			"the claim ns/data-rel-berth-postgresql-0 holds this release's bundled PostgreSQL data, and these values use the embedded SQLite database (postgresql.enabled=false, no database.existingSecret): the service would start on an empty file"},
		{"bundled to an external database", claim(pg, "rel"), external, ""},
		{"staying bundled", claim(pg, "rel"), bundled, ""},
		{"another release's bundled claim", claim(pg, "other"), embedded, ""},
		{"no claim, bundled", nil, bundled, ""},
		{"no claim, embedded", nil, embedded, ""},
		{"bundled, a new nameOverride", pgMade(pg), renamed(bundled, "nameOverride", "api"),
			"the claim ns/data-rel-berth-postgresql-0 holds this release's bundled PostgreSQL data, but these values name the release's objects differently (nameOverride or fullnameOverride changed), so its claim would now be data-rel-api-postgresql-0"},
		{"bundled, a new fullnameOverride", pgMade(pg), renamed(bundled, "fullnameOverride", "shop"), "so its claim would now be data-shop-postgresql-0"},
		{"embedded, a new fullnameOverride", sqliteMade(sqlite), renamed(embedded, "fullnameOverride", "shop"),
			"the claim ns/rel-berth-data holds this release's embedded SQLite database, but these values name the release's objects differently (nameOverride or fullnameOverride changed), so its claim would now be shop-data: the service would start on an empty database and the items would be left behind. Set nameOverride and fullnameOverride back to what made rel-berth-data, or move the items and then delete the claim (kubectl -n ns delete pvc rel-berth-data)"},
		{"embedded to the bundled PostgreSQL, renamed", sqliteMade(sqlite), renamed(bundled, "nameOverride", "api"), "holds this release's embedded SQLite database"},
		{"bundled to the embedded database, renamed", pgMade(pg), renamed(embedded, "nameOverride", "api"), "holds this release's bundled PostgreSQL data"},
		{"bundled to an external database, renamed", pgMade(pg), renamed(external, "nameOverride", "api"), ""},
		{"bundled, the name it was made with, set", pgMade(pg), renamed(bundled, "fullnameOverride", "rel-berth"), ""},
		{"another release's claim, renamed", claim(sqlite, "other"), renamed(embedded, "fullnameOverride", "shop"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The bundled PostgreSQL's password, kept as a release's is.
			objects := []runtime.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rel-berth-postgresql", Namespace: "ns"},
				Data: map[string][]byte{"password": []byte("kept")}}}
			if tt.claim != nil {
				objects = append(objects, tt.claim)
			}
			_, err := renderIn(t, newCluster(t, objects...), kindVersion, tt.values)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// With postgresql.existingSecret (for renders without the cluster, where
// the chart cannot read a generated password back), the chart makes no
// Secret, and PostgreSQL and the service both read the user's.
func TestBundledPasswordFromTheUsersSecret(t *testing.T) {
	r := mustRender(t, map[string]any{"postgresql": map[string]any{"existingSecret": "pg-password"}})
	if len(r.secrets) != 0 {
		t.Fatalf("secrets %+v, want none: the user's is used", r.secrets)
	}
	pg := container(t, r.statefulSet.Spec.Template.Spec.Containers, "postgresql")
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	for name, c := range map[string]corev1.Container{"POSTGRES_PASSWORD": pg, "PGPASSWORD": app} {
		i := slices.IndexFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.SecretKeyRef.Name != "pg-password" || c.Env[i].ValueFrom.SecretKeyRef.Key != "password" {
			t.Errorf("%s's %s does not come from the user's Secret: %+v", c.Name, name, c.Env)
		}
	}
}

// The bundled PostgreSQL's password, once in its Secret, is read back on
// upgrade, not generated anew.
func TestBundledPasswordIsKept(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rel-berth-postgresql", Namespace: "ns"},
		Data: map[string][]byte{"password": []byte("kept-password")}}
	r, err := renderIn(t, newCluster(t, secret), kindVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.secrets) != 1 || string(r.secrets[0].Data["password"]) != "kept-password" {
		t.Fatalf("secret %+v, want the password kept", r.secrets)
	}
}

// Dropping postgresql.existingSecret from a release whose PostgreSQL
// data is kept would generate a new password the data does not know:
// refused, naming the claim and the Secret. With the chart's Secret there,
// or another release's claim, or the user's Secret still named, it renders.
func TestANewPasswordForKeptDataIsRefused(t *testing.T) {
	claim := func(instance string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-rel-berth-postgresql-0", Namespace: "ns",
			Labels: map[string]string{"app.kubernetes.io/instance": instance}}}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rel-berth-postgresql", Namespace: "ns"}, Data: map[string][]byte{"password": []byte("kept")}}
	users := map[string]any{"postgresql": map[string]any{"existingSecret": "pg-pass"}}
	for _, tt := range []struct {
		name    string
		objects []runtime.Object
		values  map[string]any
		want    string // "" renders
	}{
		{"the user's Secret dropped", []runtime.Object{claim("rel")}, nil,
			"the claim ns/data-rel-berth-postgresql-0 holds this release's bundled PostgreSQL data, but there is no password to read back: the Secret ns/rel-berth-postgresql does not exist"},
		{"the chart's Secret without its password", []runtime.Object{claim("rel"), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rel-berth-postgresql", Namespace: "ns"}}}, nil,
			"the Secret ns/rel-berth-postgresql has no key password"},
		{"no persistence: the claim is not mounted", []runtime.Object{claim("rel")}, map[string]any{"postgresql": map[string]any{"persistence": map[string]any{"enabled": false}}}, ""},
		{"the user's Secret still named", []runtime.Object{claim("rel")}, users, ""},
		{"the chart's Secret kept", []runtime.Object{claim("rel"), secret}, nil, ""},
		{"another release's claim", []runtime.Object{claim("other")}, nil, ""},
		{"a first install", nil, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderIn(t, newCluster(t, tt.objects...), kindVersion, tt.values)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDatabaseRefusals(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"embedded with replicas", map[string]any{"postgresql": map[string]any{"enabled": false}},
			"the embedded SQLite database (postgresql.enabled=false, no database.existingSecret) serves one replica only, and replicaCount is 3"},
		{"bundled and external", map[string]any{"database": map[string]any{"existingSecret": "db"}},
			"postgresql.enabled=true and database.existingSecret are both set"},
		{"bad timeout", map[string]any{"database": map[string]any{"timeout": "2"}}, "timeout"},
		{"bad database name", map[string]any{"postgresql": map[string]any{"database": "my-db"}}, "database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Each pod's pool to the bundled PostgreSQL is postgresql.poolSize (8),
// a value of its own, so scaling rolls no pod; the most pods that can run
// at once (the autoscaler's maximum or replicaCount, plus the rollout's
// surge, a percentage rounded up) times it must stay within 90 of
// PostgreSQL's default 100, or the install is refused. An external
// database is the user's to size.
func TestBundledPoolFitsPostgreSQL(t *testing.T) {
	for _, tt := range []struct {
		name   string
		values map[string]any
		want   string // the URL's pool_max_conns, or the refusal
	}{
		{"defaults: 4 pods x 8", nil, "8"},
		{"a larger pool", map[string]any{"postgresql": map[string]any{"poolSize": 16}}, "16"},
		{"10 pods + 1 x 8", map[string]any{"replicaCount": 10}, "8"},
		{"10 pods + 1 x 16", map[string]any{"replicaCount": 10, "postgresql": map[string]any{"poolSize": 16}},
			"up to 11 pods at once (autoscaling.maxReplicas or replicaCount, plus rollingUpdate.maxSurge) x postgresql.poolSize 16 = 176 connections to the bundled PostgreSQL, past the 90 of its 100 it can give berth: lower postgresql.poolSize to 8"},
		{"5 pods + 50% (3) x 11", map[string]any{"replicaCount": 5, "rollingUpdate": map[string]any{"maxSurge": "50%"}, "postgresql": map[string]any{"poolSize": 11}}, "11"},
		{"5 pods + 50% (3) x 12", map[string]any{"replicaCount": 5, "rollingUpdate": map[string]any{"maxSurge": "50%"}, "postgresql": map[string]any{"poolSize": 12}}, "8 pods at once"},
		{"5 pods + 0 x 18", map[string]any{"replicaCount": 5, "rollingUpdate": map[string]any{"maxSurge": 0, "maxUnavailable": 1}, "postgresql": map[string]any{"poolSize": 18}}, "18"},
		{"5 pods + 2 x 13", map[string]any{"replicaCount": 5, "rollingUpdate": map[string]any{"maxSurge": 2}, "postgresql": map[string]any{"poolSize": 13}}, "7 pods at once"},
		{"autoscaled to 10 + 1 x 8", map[string]any{"autoscaling": map[string]any{"enabled": true, "maxReplicas": 10}}, "8"},
		{"autoscaled to 10 + 1 x 9", map[string]any{"autoscaling": map[string]any{"enabled": true, "maxReplicas": 10}, "postgresql": map[string]any{"poolSize": 9}}, "11 pods at once"},
		{"an external database, many pods", map[string]any{"replicaCount": 50, "postgresql": map[string]any{"enabled": false},
			"database": map[string]any{"existingSecret": "db"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, tt.values)
			if _, refusal := strconv.Atoi(tt.want); refusal != nil && tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want it refused with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			url := env(container(t, r.deployment.Spec.Template.Spec.Containers, "server"))["BERTH_DATABASE_URL"]
			if tt.want != "" && !strings.HasSuffix(url, "&pool_max_conns="+tt.want) {
				t.Errorf("BERTH_DATABASE_URL %q, want pool_max_conns=%s", url, tt.want)
			}
		})
	}
	// Scaling changes no pod template: the pool is not derived from it.
	three, four := mustRender(t, map[string]any{"replicaCount": 3}), mustRender(t, map[string]any{"replicaCount": 4})
	if !reflect.DeepEqual(three.deployment.Spec.Template, four.deployment.Spec.Template) {
		t.Error("replicaCount 3 and 4 render different pod templates: scaling would roll every pod")
	}
}

// A volume's size is a resource quantity, as the resources values are:
// what Kubernetes refuses there ("10GB", a unit of its own; a space; a
// negative) is refused at install, naming the key, and what it takes
// ("10Gi", "1G", "500M", "1.5Gi") reaches the claim as that quantity. The
// schema let any string through, and the API server refused the rendered
// claim (or StatefulSet) mid-install: "quantities must match the regular
// expression".
func TestVolumeSizesAreQuantities(t *testing.T) {
	bundled := func(size string) map[string]any {
		return map[string]any{"postgresql": map[string]any{"persistence": map[string]any{"size": size}}}
	}
	embedded := func(size string) map[string]any {
		return map[string]any{"replicaCount": 1, "postgresql": map[string]any{"enabled": false},
			"database": map[string]any{"embedded": map[string]any{"size": size}}}
	}
	for _, q := range []string{"10Gi", "1G", "500M", "1.5Gi"} {
		t.Run("accepted "+q, func(t *testing.T) {
			sts := mustRender(t, bundled(q)).statefulSet
			if got := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(q)) != 0 {
				t.Errorf("postgresql.persistence.size=%s: the claim asks %s", q, got.String())
			}
			pvcs := mustRender(t, embedded(q)).pvcs
			if got := pvcs[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(q)) != 0 {
				t.Errorf("database.embedded.size=%s: the claim asks %s", q, got.String())
			}
		})
	}
	for _, q := range []string{"10GB", "1 Gi", "-1Gi"} {
		t.Run("postgresql.persistence.size "+q, func(t *testing.T) { refused(t, bundled(q), "postgresql.persistence.size") })
		t.Run("database.embedded.size "+q, func(t *testing.T) { refused(t, embedded(q), "database.embedded.size") })
	}
}
