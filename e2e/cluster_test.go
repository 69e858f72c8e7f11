//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/third_party/helm"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
)

// cluster bundles the clients a test needs.
type cluster struct {
	cfg  *envconf.Config
	cs   *kubernetes.Clientset
	helm *helm.Manager
}

func newCluster(t *testing.T, cfg *envconf.Config) *cluster {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{cfg: cfg, cs: cs, helm: helm.New(cfg.KubeconfigFile())}
}

// createNamespace makes a Pod Security "restricted" namespace: enforced
// on pods, and warned of for the pod templates of workloads (a
// Deployment, a StatefulSet, a Job), which enforcement does not look at.
func (c *cluster) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"berth-e2e":                          "true",
	}}}
	if _, err := c.cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (c *cluster) deleteNamespace(name string) {
	_ = c.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
}

// imageArgs are --set-string flags: a tag such as 15 is a string, not a number.
func (c *cluster) imageArgs() []string {
	var out []string
	for _, a := range imageArgs() {
		out = append(out, "--set-string", a)
	}
	return out
}

// install runs helm install; with wait, until every pod is Ready.
func (c *cluster) install(t *testing.T, release, ns string, wait bool, sets ...string) {
	t.Helper()
	opts := []helm.Option{helm.WithName(release), helm.WithNamespace(ns), helm.WithChart(chartPath), helm.WithTimeout("5m"),
		helm.WithArgs(append(c.imageArgs(), setArgs(sets)...)...)}
	if wait {
		opts = append(opts, helm.WithWait())
	}
	if err := c.helm.RunInstall(opts...); err != nil {
		t.Fatalf("helm install %s: %v", release, err)
	}
}

// upgrade runs helm upgrade --reuse-values --wait with extra values.
func (c *cluster) upgrade(release, ns string, sets ...string) error {
	return c.helm.RunUpgrade(helm.WithName(release), helm.WithNamespace(ns), helm.WithChart(chartPath), helm.WithWait(), helm.WithTimeout("5m"),
		helm.WithArgs(append([]string{"--reuse-values"}, setArgs(sets)...)...))
}

// upgradeAsync starts upgrade and returns a function that waits for its
// result.
func (c *cluster) upgradeAsync(release, ns string, sets ...string) func() error {
	done := make(chan error, 1)
	go func() { done <- c.upgrade(release, ns, sets...) }()
	return func() error { return <-done }
}

func setArgs(sets []string) []string {
	var out []string
	for _, s := range sets {
		out = append(out, "--set", s)
	}
	return out
}

func (c *cluster) uninstall(release, ns string) {
	_ = c.helm.RunUninstall(helm.WithName(release), helm.WithNamespace(ns))
}

func selector(release string) string {
	return "app.kubernetes.io/name=berth,app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component!=test"
}

func (c *cluster) pods(ctx context.Context, ns, release string) ([]corev1.Pod, error) {
	list, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector(release)})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// giveUp wraps an error that ends waitFor's wait at once: the awaited state
// can no longer come.
type giveUp struct{ error }

// waitFor polls cond every 250ms until it holds, failing the test after
// timeout. An error from cond does not end the wait (an API server on a
// busy machine blinks now and then) unless it is a giveUp: it is logged when
// it differs from the one before, and the last is named if the wait times
// out.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	tolerant := func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if errors.As(err, new(giveUp)) {
			return false, err
		}
		if err != nil && (last == nil || err.Error() != last.Error()) {
			t.Logf("waiting for %s: %v (trying again)", what, err)
		}
		if err != nil {
			last = err
		}
		return ok && err == nil, nil
	}
	if err := wait.For(tolerant, wait.WithTimeout(timeout), wait.WithInterval(250*time.Millisecond), wait.WithContext(t.Context())); err != nil {
		if last != nil {
			err = fmt.Errorf("%w; the last error: %v", err, last)
		}
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readySince(p corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// catchWarmingPod waits for a pod not in before whose server container
// runs: with a warm-up, one whose startup is still under way. It does not
// look at readiness, so a pod Ready too early is caught too, and the
// caller's checks of the warm-up fail on it.
func (c *cluster) catchWarmingPod(t *testing.T, before []corev1.Pod) corev1.Pod {
	t.Helper()
	var fresh corev1.Pod
	waitFor(t, "a new pod's server container to run", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := c.pods(ctx, mainNamespace, mainRelease)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			isNew := !slices.ContainsFunc(before, func(b corev1.Pod) bool { return b.Name == p.Name })
			for _, s := range p.Status.ContainerStatuses {
				if isNew && s.Name == "server" && s.State.Running != nil {
					fresh = p
					return true, nil
				}
			}
		}
		return false, nil
	})
	return fresh
}

// waitSettled waits until the release has exactly n pods, all Ready and
// none terminating: a rollout or replacement is over and every old pod has
// finished its shutdown.
func (c *cluster) waitSettled(t *testing.T, ns, release string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	waitFor(t, fmt.Sprintf("%d ready pods of %s and no terminating ones", n, release), 5*time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		if pods, err = c.pods(ctx, ns, release); err != nil {
			return false, err
		}
		if len(pods) != n {
			return false, nil
		}
		for _, p := range pods {
			if p.DeletionTimestamp != nil || !podReady(p) {
				return false, nil
			}
		}
		return true, nil
	})
	return pods
}

// waitGone waits until the pod no longer exists.
func (c *cluster) waitGone(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, "pod "+name+" to be gone", timeout, func(ctx context.Context) (bool, error) {
		_, err := c.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// exec runs a command in a container and returns its stdout; err is set
// when it exits non-zero or has not within a minute.
func (c *cluster) exec(ctx context.Context, ns, pod, container string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := c.cfg.Client().Resources().ExecInPod(ctx, ns, pod, container, cmd, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

// readinessURL is the pod's verbose readiness, which names each hook
// that has not started yet.
const readinessURL = "http://127.0.0.1:9090/readyz?verbose"

// cacheNotStarted is readinessURL's line for a reference service pod whose
// cache hook (the demo's warm-up) has not started yet, or is starting.
var cacheNotStarted = regexp.MustCompile(`(?m)^\[-\]hook/berth/cache failed: hook (pending|starting)$`)

// probeStarting catches a new pod of the main release (one not in before)
// before its cache is warm, runs `/server probe` of each URL in its
// server container, all at once (a warm-up is only seconds long), and
// when all have answered asks its readiness (readinessURL). It returns
// each answer and error in the order of urls, the readiness last. A
// startup never goes back, so while that last answer still shows the
// cache hook pending or starting (cacheNotStarted), every answer before
// it came while the pod was starting, before its warm-up ended.
//
// Probes sent before the pod listened (connection refused) are sent
// again, up to ten times. A pod whose cache was up before its readiness
// was asked (an exec can take seconds on a busy node) proves nothing
// either way: it is logged and the rollout's next new pod tried, up to
// tries pods. A pod that is Ready too early is never caught starting, so
// a broken gate fails here, naming each pod's readiness.
func (c *cluster) probeStarting(ctx context.Context, t *testing.T, before []corev1.Pod, tries int, urls ...string) (pod corev1.Pod, outs []string, errs []error) {
	t.Helper()
	seen := slices.Clone(before)
	for range tries {
		pod = c.catchWarmingPod(t, seen)
		seen = append(seen, pod)
		began := time.Now()
		for round := 1; ; round++ {
			outs, errs = make([]string, len(urls)+1), make([]error, len(urls)+1)
			var wg sync.WaitGroup
			for i, u := range urls {
				wg.Go(func() { outs[i], errs[i] = c.exec(ctx, mainNamespace, pod.Name, "server", "/server", "probe", u) })
			}
			wg.Wait()
			outs[len(urls)], errs[len(urls)] = c.exec(ctx, mainNamespace, pod.Name, "server", "/server", "probe", readinessURL)
			if !slices.ContainsFunc(outs, func(out string) bool { return strings.Contains(out, "connection refused") }) || round == 10 {
				break // the tenth: a pod that never listens fails the caller's checks
			}
			t.Logf("pod %s was not listening yet; probing it again", pod.Name)
		}
		ready, readyErr := outs[len(urls)], errs[len(urls)]
		if readyErr != nil && cacheNotStarted.MatchString(ready) {
			return pod, outs, errs
		}
		t.Logf("pod %s had its cache up when its readiness was asked, %v after its first probe (err=%v):\n%s\ntrying the rollout's next new pod", pod.Name, time.Since(began).Round(time.Millisecond), readyErr, ready)
	}
	t.Fatalf("none of %d new pods was caught before its cache was up: each one's readiness, asked after the probes, showed the cache hook started (logged above)", tries)
	return pod, nil, nil
}

// followLimit bounds a follow of a pod's log: longer than any step that
// waits for a pod to exit (a rollout of three pods under load), shorter
// than the suite's own limit.
const followLimit = 8 * time.Minute

// followLogs streams a container's log until the container exits (or
// followLimit passes) and then delivers all of it.
func (c *cluster) followLogs(t *testing.T, ns, pod, container string) <-chan string {
	t.Helper()
	// Bounded, so a pod that never exits (an upgrade that rolled nothing)
	// ends the follow with the log so far, which the caller's checks then
	// name, rather than a wait as long as the whole suite's.
	ctx, cancel := context.WithTimeout(t.Context(), followLimit)
	stream, err := c.cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		cancel()
		t.Fatalf("following %s/%s logs: %v", pod, container, err)
	}
	out := make(chan string, 1)
	go func() {
		defer cancel()
		defer stream.Close()
		b, err := io.ReadAll(stream)
		if err != nil { // cut off: the whole log, read back, if it still can be
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if text, err := c.logs(ctx, ns, pod, container, false); err == nil {
				b = []byte(text)
			}
		}
		out <- string(b)
	}()
	return out
}

// podMetric sums the samples of a counter or gauge family in a pod's
// /metrics, read through the API server's pod proxy on the admin port.
func (c *cluster) podMetric(ctx context.Context, ns, pod, family string, labels ...string) (float64, error) {
	raw, err := c.cs.CoreV1().Pods(ns).ProxyGet("http", pod, "9090", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return 0, fmt.Errorf("pod %s's metrics: %w", pod, err)
	}
	mf, ok := fams[family]
	if !ok {
		return 0, nil // a labelled family shows no series before its first one
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		if hasLabels(m, labels) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, nil
}

// hasLabels reports whether m has every label name and value in pairs
// (name, value, name, value, …).
func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] }) {
			return false
		}
	}
	return true
}

// waitServing waits until each pod serves requests (those whose labels
// include every name and value in labels, when given): its count of
// requests served grows past what it was when waitServing began, so a pod
// that served earlier traffic does not pass before the current load
// reaches it.
func (c *cluster) waitServing(t *testing.T, ns string, pods []corev1.Pod, labels ...string) {
	t.Helper()
	for _, p := range pods {
		base := -1.0
		waitFor(t, fmt.Sprintf("pod %s to serve the load %v", p.Name, labels), time.Minute, func(ctx context.Context) (bool, error) {
			n, err := c.podMetric(ctx, ns, p.Name, "berth_http_requests_total", labels...)
			if err != nil {
				t.Logf("reading pod %s's metrics: %v", p.Name, err) // the proxy may blink: try again
				return false, nil
			}
			if base < 0 {
				base = n
				return false, nil
			}
			return n > base, nil
		})
	}
}

func (c *cluster) logs(ctx context.Context, ns, pod, container string, previous bool) (string, error) {
	b, err := c.cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: previous}).DoRaw(ctx)
	return string(b), err
}

// logLine is one line of the service's JSON log. Index is its place among
// the log's JSON lines: slog writes times to the millisecond, so two lines
// of one process are ordered by Index, not Time.
type logLine struct {
	Time   time.Time
	Index  int
	Msg    string
	Fields map[string]any
}

func parseLogs(text string) []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f map[string]any
		if json.Unmarshal(sc.Bytes(), &f) != nil {
			continue
		}
		l := logLine{Fields: f, Index: len(out)}
		l.Msg, _ = f["msg"].(string)
		if s, ok := f["time"].(string); ok {
			l.Time, _ = time.Parse(time.RFC3339Nano, s)
		}
		out = append(out, l)
	}
	return out
}

// find returns the first line with msg whose fields include every key/value
// pair in kv.
func find(lines []logLine, msg string, kv ...any) (logLine, bool) {
	for _, l := range lines {
		if l.Msg != msg {
			continue
		}
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(l.Fields[kv[i].(string)]) != fmt.Sprint(kv[i+1]) {
				match = false
			}
		}
		if match {
			return l, true
		}
	}
	return logLine{}, false
}

func mustFind(t *testing.T, lines []logLine, text, msg string, kv ...any) logLine {
	t.Helper()
	l, ok := find(lines, msg, kv...)
	if !ok {
		t.Fatalf("no log line %q %v in:\n%s", msg, kv, text)
	}
	if l.Time.IsZero() {
		t.Fatalf("log line %q %v has no time that parses (RFC 3339): no order or gap can be read from it:\n%s", msg, kv, text)
	}
	return l
}

// writePodLogs writes the logs of every container of every pod in ns,
// current and previous, to dir.
func writePodLogs(ctx context.Context, cs kubernetes.Interface, ns, dir string) error {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
			for _, previous := range []bool{false, true} {
				b, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, Previous: previous}).DoRaw(ctx)
				if err != nil {
					continue
				}
				name := fmt.Sprintf("%s_%s_%s", ns, p.Name, c.Name)
				if previous {
					name += "_previous"
				}
				_ = os.WriteFile(filepath.Join(dir, name+".log"), b, 0o644)
			}
		}
	}
	return nil
}

// keepLogsIfFailed writes the logs of ns's pods under the artifacts folder
// when t has failed: a scenario's teardown deletes its namespace before the
// run's end exports the rest.
func (c *cluster) keepLogsIfFailed(t *testing.T, ns string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	dir, _ := filepath.Abs(filepath.Join(artifacts, time.Now().UTC().Format("20060102-150405")+"-"+ns))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = writePodLogs(ctx, c.cs, ns, dir)
	}
	if err != nil {
		t.Logf("keeping the logs of %s: %v", ns, err)
		return
	}
	t.Logf("the logs of %s's pods are in %s", ns, dir)
}

// exportLogs writes kind's node logs and every e2e pod's logs (current and
// previous) under the artifacts folder and returns the folder.
func exportLogs(cfg *envconf.Config, provider *kindcluster.Provider) (string, error) {
	dir, _ := filepath.Abs(filepath.Join(artifacts, time.Now().UTC().Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dir, err
	}
	var errs []string
	if err := provider.CollectLogs(clusterName, filepath.Join(dir, "kind")); err != nil {
		// Partial on nodes without crictl; the node logs are still written.
		errs = append(errs, fmt.Sprintf("kind logs (partial): %v", err))
	}
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		return dir, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nsList, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return dir, err
	}
	for _, ns := range nsList.Items {
		if ns.Name != mainNamespace && ns.Labels["berth-e2e"] != "true" {
			continue
		}
		if err := writePodLogs(ctx, cs, ns.Name, dir); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return dir, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return dir, nil
}
