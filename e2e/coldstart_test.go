//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// TestColdStartWaitsForTheDatabase installs berth against an external
// PostgreSQL that does not exist yet, creates it once berth is seen
// waiting, and checks that berth becomes Ready then, without a restart.
func TestColdStartWaitsForTheDatabase(t *testing.T) {
	const ns, release = "berth-e2e-cold", "cold"
	var c *cluster
	f := features.New("a cold install waits for its database").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c = newCluster(t, cfg)
			c.createNamespace(t, ns)
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ext-db"},
				StringData: map[string]string{"url": "postgres://berth:cold-pw@ext-pg:5432/berth?sslmode=disable"}}
			if _, err := c.cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			c.install(t, release, ns, false, "replicaCount=1", "postgresql.enabled=false", "database.existingSecret=ext-db")
			return ctx
		}).
		Assess("berth waits, naming the host; Ready once the database is; no restart", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var pod corev1.Pod
			waitFor(t, "berth to log that it waits for the database", 2*time.Minute, func(ctx context.Context) (bool, error) {
				pods, err := c.pods(ctx, ns, release)
				if err != nil || len(pods) != 1 {
					return false, err
				}
				pod = pods[0]
				text, err := c.logs(ctx, ns, pod.Name, "server", false)
				return err == nil && strings.Count(text, `"msg":"waiting for the database"`) >= 2, nil
			})
			text, _ := c.logs(ctx, ns, pod.Name, "server", false)
			waiting := mustFind(t, parseLogs(text), text, "waiting for the database")
			if db := waiting.Fields["database"]; db != "postgres ext-pg:5432/berth as berth" || strings.Contains(text, "cold-pw") {
				t.Errorf("the wait names %v (and the password must never appear)", db)
			}
			if p, err := c.cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
				t.Fatalf("reading pod %s: %v", pod.Name, err)
			} else if podReady(*p) {
				t.Fatal("berth is Ready before its database exists")
			}
			c.createPostgres(t, ns)
			created := time.Now()
			var seenReady time.Time
			waitFor(t, "berth to become Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
				p, err := c.cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
				seenReady = time.Now()
				return err == nil && podReady(*p), err
			})
			if n, err := c.restarts(ctx, ns, release); err != nil || n != 0 {
				t.Errorf("berth restarted %d times (%v) while it waited", n, err)
			}
			text, _ = c.logs(ctx, ns, pod.Name, "server", false)
			answered := mustFind(t, parseLogs(text), text, "database answered")
			t.Logf("berth waited %v seconds (%v attempts) and was seen Ready %v after the database was created",
				answered.Fields["waited_seconds"], answered.Fields["attempts"], seenReady.Sub(created).Round(time.Second))
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c.keepLogsIfFailed(t, ns)
			c.uninstall(release, ns)
			c.deleteNamespace(ns)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// createPostgres runs PostgreSQL as "ext-pg" in ns, under the restricted
// Pod Security Standard, its data in an emptyDir.
func (c *cluster) createPostgres(t *testing.T, ns string) {
	t.Helper()
	labels := map[string]string{"app": "ext-pg"}
	sc := &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](999),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ext-pg"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](999)},
			Containers: []corev1.Container{{Name: "postgres", Image: postgresImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Env: []corev1.EnvVar{{Name: "POSTGRES_USER", Value: "berth"}, {Name: "POSTGRES_DB", Value: "berth"},
					{Name: "POSTGRES_PASSWORD", Value: "cold-pw"}, {Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}},
				Ports:           []corev1.ContainerPort{{ContainerPort: 5432}},
				SecurityContext: sc,
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"},
					{Name: "run", MountPath: "/var/run/postgresql"}, {Name: "tmp", MountPath: "/tmp"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}}}}
	if _, err := c.cs.AppsV1().Deployments(ns).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext-pg"}, Spec: corev1.ServiceSpec{Selector: labels,
		Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(5432)}}}}
	if _, err := c.cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
