//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

const sidecarReadyDelay = 3 * time.Second

// sidecarPod installs a one-replica release with the sidecar in mode, waits
// for it to be Ready and returns the pod.
func sidecarPod(t *testing.T, c *cluster, ns, release, mode string) corev1.Pod {
	t.Helper()
	c.createNamespace(t, ns)
	c.install(t, release, ns, true, "replicaCount=1", "postgresql.enabled=false", "config.demoWarmup=0s", "sidecar.enabled=true",
		"sidecar.mode="+mode, "sidecar.readyDelay="+sidecarReadyDelay.String())
	return c.waitSettled(t, ns, release, 1)[0]
}

// deleteAndCollect deletes the pod while following both containers' logs;
// it returns the parsed logs and how long the pod took to go.
func deleteAndCollect(t *testing.T, c *cluster, pod corev1.Pod) (app, sidecar []logLine, appText, sidecarText string, took time.Duration) {
	t.Helper()
	appLogs := c.followLogs(t, pod.Namespace, pod.Name, "server")
	scLogs := c.followLogs(t, pod.Namespace, pod.Name, "sidecar")
	began := time.Now()
	if err := c.cs.CoreV1().Pods(pod.Namespace).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitGone(t, pod.Namespace, pod.Name, 2*time.Minute)
	took = time.Since(began)
	appText, sidecarText = <-appLogs, <-scLogs
	return parseLogs(appText), parseLogs(sidecarText), appText, sidecarText, took
}

func TestSidecars(t *testing.T) {
	var c *cluster
	// Each feature sets c itself: either may run alone (go test -run).
	setup := func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
		c = newCluster(t, cfg)
		return ctx
	}
	native := features.New("native sidecar").
		Setup(setup).
		Assess("the app starts after the sidecar is ready, and the sidecar outlives it", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			const ns = "berth-e2e-native"
			defer c.deleteNamespace(ns)
			defer c.keepLogsIfFailed(t, ns)
			pod := sidecarPod(t, c, ns, "native", "native")
			app, sc, appText, scText, _ := deleteAndCollect(t, c, pod)
			scUp := mustFind(t, sc, scText, "sidecar listening")
			appUp := mustFind(t, app, appText, "Listening")
			if gap := appUp.Time.Sub(scUp.Time); gap < sidecarReadyDelay {
				t.Errorf("the app started %v after the sidecar, before the sidecar's %v ready delay ended", gap, sidecarReadyDelay)
			}
			if ready := mustFind(t, app, appText, "sidecar ready"); ready.Fields["attempts"] != 1.0 {
				t.Errorf("the app needed %v attempts: the sidecar was not ready when the app started", ready.Fields["attempts"])
			}
			appExit := mustFind(t, app, appText, "exiting", "code", 0)
			scSignal := mustFind(t, sc, scText, "sidecar got signal")
			if !scSignal.Time.After(appExit.Time) {
				t.Errorf("the sidecar got SIGTERM at %v, before the app exited at %v", scSignal.Time, appExit.Time)
			}
			t.Logf("native: app started %v after the sidecar; sidecar signalled %v after the app exited",
				appUp.Time.Sub(scUp.Time).Round(time.Millisecond), scSignal.Time.Sub(appExit.Time).Round(time.Millisecond))
			return ctx
		}).
		Feature()
	classic := features.New("classic sidecar").
		Setup(setup).
		Assess("the app waits for the sidecar and tells it to quit after its teardown", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			const ns = "berth-e2e-classic"
			defer c.deleteNamespace(ns)
			defer c.keepLogsIfFailed(t, ns)
			pod := sidecarPod(t, c, ns, "classic", "classic")
			grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
			app, sc, appText, scText, took := deleteAndCollect(t, c, pod)
			ready := mustFind(t, app, appText, "sidecar ready")
			if n, _ := ready.Fields["attempts"].(float64); n < 2 {
				t.Errorf("the app found the sidecar ready at once (%v attempts); it should have waited for it", ready.Fields["attempts"])
			}
			lastStop := mustFind(t, app, appText, "hook-stopped", "hook", "db")
			quit := mustFind(t, sc, scText, "sidecar quit requested")
			if !quit.Time.After(lastStop.Time) {
				t.Errorf("quit arrived at %v, before the app's last stop hook at %v", quit.Time, lastStop.Time)
			}
			mustFind(t, sc, scText, "sidecar exiting", "reason", "quit endpoint")
			if took > grace/2 {
				t.Errorf("the pod took %v to go, not well within its %v grace period", took, grace)
			}
			t.Logf("classic: quit %v after the last stop hook; pod gone in %v of a %v grace period",
				quit.Time.Sub(lastStop.Time).Round(time.Microsecond), took.Round(time.Millisecond), grace)
			return ctx
		}).
		Feature()
	testenv.Test(t, native, classic)
}
