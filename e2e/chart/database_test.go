package chart

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
	for _, p := range []*corev1.Probe{pg.StartupProbe, pg.ReadinessProbe, pg.LivenessProbe} {
		if p == nil || p.Exec == nil || p.Exec.Command[0] != "pg_isready" {
			t.Errorf("probe %+v", p)
		}
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("volumeClaimTemplates %+v", sts.Spec.VolumeClaimTemplates)
	}
	if len(r.secrets) != 1 || r.secrets[0].Annotations["helm.sh/resource-policy"] != "keep" || len(r.secrets[0].Data["password"]) != 32 {
		t.Errorf("secret %+v", r.secrets)
	}
	app := container(t, r.deployment.Spec.Template.Spec.Containers, "server")
	ae := env(app)
	if ae["BERTH_DATABASE_URL"] != "postgres://berth:$(BERTH_DB_PASSWORD)@rel-berth-postgresql:5432/berth?sslmode=disable" {
		t.Errorf("BERTH_DATABASE_URL %q", ae["BERTH_DATABASE_URL"])
	}
	i := slices.IndexFunc(app.Env, func(v corev1.EnvVar) bool { return v.Name == "BERTH_DB_PASSWORD" })
	j := slices.IndexFunc(app.Env, func(v corev1.EnvVar) bool { return v.Name == "BERTH_DATABASE_URL" })
	if i < 0 || i > j || app.Env[i].ValueFrom.SecretKeyRef.Name != "rel-berth-postgresql" {
		t.Errorf("the password must come from the Secret, before the URL that expands it: %+v", app.Env)
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
