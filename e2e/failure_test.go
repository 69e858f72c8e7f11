//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// failureNamespace and failureRelease are TestStartupFailure's, whose
// alert rules Prometheus loads (ruleReleases).
const failureNamespace, failureRelease = "berth-e2e-fail", "fail"

// TestStartupFailure: a hook that fails at start gives a pod that never
// becomes Ready, logs the failing hook and the rollback of the hooks before
// it, and exits non-zero; its figures, pushed as it exits, reach
// Prometheus, where the chart's BerthHookFailed fires on them.
func TestStartupFailure(t *testing.T) {
	const ns, release = failureNamespace, failureRelease
	var c *cluster
	var podName string
	f := features.New("startup failure").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c = newCluster(t, cfg)
			c.createNamespace(t, ns)
			c.install(t, release, ns, false, "replicaCount=1", "postgresql.enabled=false", "config.demoFail=cache", "config.demoWarmup=500ms",
				"metrics.pushgateway.url="+pushgatewayURL)
			return ctx
		}).
		Assess("never Ready, rolls back, exits 1", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var pod corev1.Pod
			var exit *corev1.ContainerStateTerminated
			everReady := false
			waitFor(t, "the server container to exit", 2*time.Minute, func(ctx context.Context) (bool, error) {
				pods, err := c.pods(ctx, ns, release)
				if err != nil || len(pods) == 0 {
					return false, err
				}
				pod = pods[0]
				podName = pod.Name
				everReady = everReady || podReady(pod)
				for _, s := range pod.Status.ContainerStatuses {
					if s.Name != "server" {
						continue
					}
					everReady = everReady || s.Ready
					if s.State.Terminated != nil {
						exit = s.State.Terminated
					} else if s.LastTerminationState.Terminated != nil {
						exit = s.LastTerminationState.Terminated
					}
				}
				return exit != nil, nil
			})
			if everReady {
				t.Error("the pod was Ready although its startup failed")
			}
			if exit.ExitCode != 1 {
				t.Errorf("exit code %d, want 1 (startup failed)", exit.ExitCode)
			}
			text, err := c.logs(ctx, ns, pod.Name, "server", true)
			if err != nil || !strings.Contains(text, "startup failed") {
				text, err = c.logs(ctx, ns, pod.Name, "server", false)
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := parseLogs(text)
			failed := mustFind(t, lines, text, "hook-start-failed", "hook", "cache")
			if e, _ := failed.Fields["error"].(string); !strings.Contains(e, `hook "cache": start: failing as BERTH_DEMO_FAIL asks`) {
				t.Errorf("cache failure logged as %q", e)
			}
			closed := mustFind(t, lines, text, "database closed")
			rolled := mustFind(t, lines, text, "hook-stopped", "hook", "db")
			exiting := mustFind(t, lines, text, "exiting", "code", 1)
			// One process's lines, in the order it wrote them: their
			// millisecond times could not tell a rollback that took less.
			if !(failed.Index < closed.Index && closed.Index < rolled.Index && rolled.Index < exiting.Index) {
				t.Errorf("want cache failure, then the database's rollback, then exit; got them as lines %d, %d, %d and %d of the log", failed.Index, closed.Index, rolled.Index, exiting.Index)
			}
			if _, ok := find(lines, "hook-started", "hook", "jobs"); ok {
				t.Error("a hook after the failing one was started")
			}
			// The status sampled above could miss a Ready shorter than its
			// interval; the log cannot: the API never opened.
			if l, ok := find(lines, "StartupComplete"); ok {
				t.Errorf("StartupComplete was logged at %v although a hook failed", l.Time)
			}
			t.Logf("startup failure: exit %d, never Ready, database closed in the rollback", exit.ExitCode)
			return ctx
		}).
		Assess("the failure outlives the process: pushed, and BerthHookFailed fires", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			p := newProm(t)
			alert := fmt.Sprintf(`ALERTS{alertname="BerthHookFailed", alertstate="firing", namespace=%q, pod=%q, hook="cache", phase="start"}`, ns, podName)
			waitFor(t, "BerthHookFailed to fire on the pushed failure", 2*time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, alert)
				return len(v) == 1, err
			})
			v, err := p.query(ctx, fmt.Sprintf(`berth_hook_failures_total{job="berth-exit", namespace=%q, pod=%q, hook="cache", phase="start"}`, ns, podName))
			if err != nil || len(v) != 1 || v[0].Value != 1 {
				t.Errorf("the pushed failure count: %v, %v; want one series at 1", v, err)
			}
			return ctx
		}).
		Assess("the chart's prune CronJob deletes the group, and the alert resolves", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			// The failing container restarts and pushes again: stop it
			// first, so the group stays deleted.
			scale, err := c.cs.AppsV1().Deployments(ns).GetScale(ctx, release+"-berth", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			scale.Spec.Replicas = 0
			if _, err := c.cs.AppsV1().Deployments(ns).UpdateScale(ctx, release+"-berth", scale, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitGone(t, ns, podName, 2*time.Minute)
			// A group another release's pod pushed in the same namespace,
			// which the job must leave: it prunes its own Deployment's pods.
			const otherPod = "other-berth-6d4cf56db6-x2x7q"
			other := fmt.Sprintf("%s/metrics/job/berth-exit/namespace/%s/pod/%s", pushgatewayProxy, ns, otherPod)
			if err := c.cs.CoreV1().RESTClient().Put().AbsPath(other).SetHeader("Content-Type", "text/plain; version=0.0.4").
				Body([]byte("berth_e2e_other_release 1\n")).Do(ctx).Error(); err != nil {
				t.Fatalf("pushing another release's group: %v", err)
			}
			// The CronJob runs hourly and keeps groups for three hours: run
			// its job now with its own arguments, as `kubectl create job
			// --from=cronjob` would, but told to delete groups however recent.
			cj, err := c.cs.BatchV1().CronJobs(ns).Get(ctx, release+"-berth-prune", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the chart's prune CronJob: %v", err)
			}
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "prune-now", Namespace: ns, Labels: cj.Spec.JobTemplate.Labels}, Spec: cj.Spec.JobTemplate.Spec}
			args := slices.Clone(job.Spec.Template.Spec.Containers[0].Args)
			if len(args) != 3 || args[0] != "prune-pushgateway" || args[2] != release+"-berth" {
				t.Fatalf("the CronJob runs %q, want prune-pushgateway OLDER_THAN %s-berth", args, release)
			}
			args[1] = "0s"
			job.Spec.Template.Spec.Containers[0].Args = args
			if _, err := c.cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the prune job to succeed", 2*time.Minute, func(ctx context.Context) (bool, error) {
				j, err := c.cs.BatchV1().Jobs(ns).Get(ctx, job.Name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				if j.Status.Failed > 0 {
					return false, giveUp{fmt.Errorf("the prune job failed: %+v", j.Status)}
				}
				return j.Status.Succeeded > 0, nil
			})
			groups := c.pushedGroups(ctx, t, ns)
			if len(groups) != 1 || groups[0]["pod"] != otherPod {
				t.Errorf("after the prune job the Pushgateway holds %v, want only the other release's group", groups)
			}
			if err := c.cs.CoreV1().RESTClient().Delete().AbsPath(other).Do(ctx).Error(); err != nil {
				t.Errorf("deleting the other release's group: %v", err)
			}
			p := newProm(t)
			waitFor(t, "BerthHookFailed to resolve once the group is deleted", 2*time.Minute, func(ctx context.Context) (bool, error) {
				v, err := p.query(ctx, fmt.Sprintf(`ALERTS{alertname="BerthHookFailed", namespace=%q}`, ns))
				return len(v) == 0, err
			})
			t.Logf("the prune job deleted the pushed group; BerthHookFailed resolved")
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c.keepLogsIfFailed(t, ns)
			c.uninstall(release, ns)
			c.deleteNamespace(ns)
			// Had the prune failed, the group would stay and the alert fire
			// on for an hour, into the next scenario's checks.
			for _, g := range c.pushedGroups(ctx, t, ns) {
				path := fmt.Sprintf("%s/metrics/job/berth-exit/namespace/%s/pod/%s", pushgatewayProxy, ns, g["pod"])
				if err := c.cs.CoreV1().RESTClient().Delete().AbsPath(path).Do(ctx).Error(); err != nil {
					t.Errorf("deleting the Pushgateway group %v: %v", g, err)
				}
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// pushgatewayProxy is the e2e Pushgateway's API, through the API server's
// service proxy.
const pushgatewayProxy = "/api/v1/namespaces/monitoring/services/pushgateway:http/proxy"

// pushedGroups lists the grouping labels of the Pushgateway's berth-exit
// groups of namespace ns.
func (c *cluster) pushedGroups(ctx context.Context, t *testing.T, ns string) []map[string]string {
	t.Helper()
	raw, err := c.cs.CoreV1().RESTClient().Get().AbsPath(pushgatewayProxy + "/api/v1/metrics").DoRaw(ctx)
	if err != nil {
		t.Errorf("listing the Pushgateway's groups: %v", err)
		return nil
	}
	var answer struct {
		Data []struct {
			Labels map[string]string `json:"labels"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Errorf("listing the Pushgateway's groups: %v: %s", err, raw)
		return nil
	}
	var groups []map[string]string
	for _, g := range answer.Data {
		if g.Labels["job"] == "berth-exit" && g.Labels["namespace"] == ns {
			groups = append(groups, g.Labels)
		}
	}
	return groups
}
