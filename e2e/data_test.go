//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindnodes "sigs.k8s.io/kind/pkg/cluster/nodes"
)

// window is a stretch of the run in which 503s with Retry-After are the
// expected answer: the database is down, or stalled.
type window struct {
	name     string
	from, to time.Time
	held     time.Duration // a stall's: how long the heartbeat's commit took, or its commits paused
}

// TestDataSurvivesDisruptions writes unique keys at 60/s through the
// Service while the release is rolled, a pod deleted, a worker drained,
// the release scaled in, PostgreSQL restarted, PostgreSQL crashed (every
// process of its container killed, with no shutdown checkpoint),
// PostgreSQL taken away for 20s, and rolled twice more in preStop mode;
// then every acknowledged key is read back.
func TestDataSurvivesDisruptions(t *testing.T) {
	var c *cluster
	var w *writer
	var logs *podLogs
	var beating *heartbeat
	var downs []window
	var outageWindow window // the 20s outage, from its start to PostgreSQL's Ready
	outage := map[string]time.Duration{}
	// disruption plots one step: the writer's answers and the pods around it.
	disruption := func(name string, run func(ctx context.Context, t *testing.T)) features.Func {
		return func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			tl := c.recordTimeline(t, "data: "+name)
			run(ctx, t)
			tl.finish(t, outcomesOf(w.snapshot(), tl.began, time.Now()))
			return ctx
		}
	}
	f := features.New("no acknowledged write is lost").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c = newCluster(t, cfg)
			// A step that fails skips the rest (a failed setup skips the
			// teardowns too), the last one's stops and its restoring of the
			// release included: this cleanup, which runs whatever failed,
			// stops what runs in the background and puts the release back
			// as the later scenarios expect it (3 replicas in app mode,
			// PostgreSQL running).
			t.Cleanup(func() {
				if w != nil {
					w.stop()
				}
				if logs != nil {
					logs.close()
				}
				if t.Failed() {
					if err := c.scalePostgres(1); err != nil {
						t.Errorf("restoring PostgreSQL after a failed step: %v", err)
					}
					if err := c.upgrade(mainRelease, mainNamespace, "replicaCount=3", "drain.mode=app"); err != nil {
						t.Errorf("restoring the release after a failed step: %v", err)
					}
				}
			})
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			logs = c.followRelease(t, mainNamespace, mainRelease)
			beating = c.startHeartbeat(t, mainNamespace, mainRelease)
			w = startWriter(apiURL, fmt.Sprintf("data-%d", time.Now().Unix()))
			// A baseline before the first disruption: a second's worth of
			// writes acknowledged. (Each disruption of chosen pods below
			// first waits until every pod takes writes.)
			waitFor(t, "a second's worth of acknowledged writes", time.Minute, func(context.Context) (bool, error) {
				return w.ackedCount() >= writeRate, nil
			})
			return ctx
		}).
		Assess("a rolling update", disruption("a rolling update", func(ctx context.Context, t *testing.T) {
			// The drain values here reach only the pods this rollout makes:
			// the pods it replaces keep the drain they started with, the
			// chart's as installMain set it (the scenarios run in file
			// order, data first). They leave the chart's drain to the
			// scenarios after, whatever a -count or -shuffle run put before.
			if err := c.upgrade(mainRelease, mainNamespace, "podAnnotations.rollout=data-1", "drain.delaySeconds=5", "drain.quietSeconds=0"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
		})).
		Assess("a pod deletion", disruption("a pod deletion", func(ctx context.Context, t *testing.T) {
			pods := c.waitSettled(t, mainNamespace, mainRelease, replicas)
			c.waitServing(t, mainNamespace, pods, "method", "PUT") // the one deleted takes writes
			victim := pods[0]
			if err := c.cs.CoreV1().Pods(mainNamespace).Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitGone(t, mainNamespace, victim.Name, 2*time.Minute)
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
		})).
		Assess("a drain of a worker that does not host PostgreSQL", disruption("a drain of a worker that does not host PostgreSQL", func(ctx context.Context, t *testing.T) {
			c.drainWorker(t, mainNamespace, mainRelease)
		})).
		Assess("a scale-in from 3 to 2", disruption("a scale-in from 3 to 2", func(ctx context.Context, t *testing.T) {
			// Whichever pod the scale-in removes takes writes.
			c.waitServing(t, mainNamespace, c.waitSettled(t, mainNamespace, mainRelease, replicas), "method", "PUT")
			if err := c.upgrade(mainRelease, mainNamespace, "replicaCount=2"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, 2)
		})).
		Assess("a restart of the PostgreSQL pod", disruption("a restart of the PostgreSQL pod", func(ctx context.Context, t *testing.T) {
			pg, err := c.postgresPod(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			from := time.Now()
			if err := c.cs.CoreV1().Pods(mainNamespace).Delete(ctx, pg.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			ready := c.waitPostgresReady(t, pg.UID)
			downs = append(downs, window{"postgres restart", from, ready.Add(5 * time.Second), 0})
			t.Logf("PostgreSQL restarted: Ready again %v after its deletion, on node %s", ready.Sub(from).Round(time.Millisecond), pg.Spec.NodeName)
		})).
		Assess("a crash of PostgreSQL", disruption("a crash of PostgreSQL", func(ctx context.Context, t *testing.T) {
			pg, err := c.postgresPod(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			restarts := containerRestarts(pg, "postgresql")
			from := time.Now()
			c.crashContainer(t, pg, "postgresql")
			// The kubelet starts the container again in the same pod, and
			// PostgreSQL replays its write-ahead log: what it acknowledged
			// as committed is there, or the read-back finds it lost.
			var ready time.Time
			var after corev1.Pod
			waitFor(t, "PostgreSQL to restart after its crash and be Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
				p, err := c.postgresPod(ctx, mainNamespace, mainRelease)
				if err != nil || p.UID != pg.UID || containerRestarts(p, "postgresql") <= restarts || !podReady(p) {
					return false, nil
				}
				ready, after = readySince(p), p
				return true, nil
			})
			// It was a crash: the container was killed, and PostgreSQL
			// found its files not shut down properly and recovered.
			for _, s := range after.Status.ContainerStatuses {
				if s.Name == "postgresql" && (s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 137) {
					t.Errorf("PostgreSQL's container last ended %+v, not killed by SIGKILL (exit code 137): no crash was tested", s.LastTerminationState.Terminated)
				}
			}
			if text, err := c.logs(ctx, mainNamespace, after.Name, "postgresql", false); err != nil || !strings.Contains(text, "automatic recovery in progress") {
				t.Errorf("PostgreSQL's log after the crash (%v) does not say it recovered from one:\n%s", err, text)
			}
			downs = append(downs, window{"postgres crash", from, ready.Add(5 * time.Second), 0})
			t.Logf("PostgreSQL crashed: restarted in its pod and Ready again %v after the kill", ready.Sub(from).Round(time.Second))
		})).
		Assess("a 20s database outage: no restart, writes back within 5s", disruption("a 20s database outage", func(ctx context.Context, t *testing.T) {
			pg, err := c.postgresPod(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			before, err := c.restarts(ctx, mainNamespace, mainRelease)
			if err != nil {
				t.Fatal(err)
			}
			from := time.Now()
			if err := c.scalePostgres(0); err != nil {
				t.Fatal(err)
			}
			c.waitGone(t, mainNamespace, pg.Name, 2*time.Minute)
			gone := time.Now()
			// The outage lasts 20s by design; meanwhile the pods must stay
			// in the Service (the readiness probe leaves the database out),
			// and what needs no database keeps answering 200.
			info := &http.Client{Timeout: 2 * time.Second}
			var infoOK int
			for time.Since(gone) < 20*time.Second {
				pods, err := c.pods(ctx, mainNamespace, mainRelease)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pods {
					if !podReady(p) {
						t.Errorf("pod %s not Ready %v into the database outage", p.Name, time.Since(gone).Round(time.Second))
					}
				}
				resp, err := info.Get(apiURL + "/api/v1/info")
				if err != nil {
					t.Errorf("GET /api/v1/info %v into the database outage: %v", time.Since(gone).Round(time.Second), err)
				} else {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("GET /api/v1/info %v into the database outage: %s", time.Since(gone).Round(time.Second), resp.Status)
					} else {
						infoOK++
					}
				}
				<-time.After(time.Second)
			}
			t.Logf("GET /api/v1/info answered 200 %d times through the outage", infoOK)
			if err := c.scalePostgres(1); err != nil {
				t.Fatal(err)
			}
			ready := c.waitPostgresReady(t, pg.UID)
			downs = append(downs, window{"database outage", from, ready.Add(5 * time.Second), 0})
			if after, err := c.restarts(ctx, mainNamespace, mainRelease); err != nil || after != before {
				t.Errorf("berth containers restarted %d times during the outage (%v)", after-before, err)
			}
			// Give the writer a few seconds of the recovered database, then
			// find its first successful write after PostgreSQL was Ready.
			waitFor(t, "a successful write after the outage", 30*time.Second, func(context.Context) (bool, error) {
				return firstSuccessAfter(w.snapshot(), ready) != nil, nil
			})
			first := firstSuccessAfter(w.snapshot(), ready)
			outage["PostgreSQL gone, after its scale-down"] = gone.Sub(from)
			// Ready's time is truncated to the second: this is within a
			// second above the true figure.
			const firstWrite = "first write after Ready (Ready's time truncated to the second)"
			outage[firstWrite] = first.sent.Add(first.took).Sub(ready)
			// Ready says PostgreSQL answers in its pod; the service reaches
			// it through its Service, whose routes a busy cluster moves to
			// the new pod later. The heartbeat's first commit through the
			// Service after the outage says when it did.
			// (Its log reaches this test later than its commits, on a busy
			// cluster: the beats' own times are what count.)
			var b beat
			waitFor(t, "the heartbeat's first commit after the outage", time.Minute, func(context.Context) (ok bool, _ error) {
				b, ok = firstBeatAfter(beating.snapshot(), gone)
				return ok, nil
			})
			outage["the heartbeat's first commit through the Service after Ready"] = b.at.Add(b.took).Sub(ready)
			back := later(ready, b.at.Add(b.took))
			if d := first.sent.Add(first.took).Sub(back); d > 5*time.Second {
				t.Errorf("the first successful write came %v after PostgreSQL was Ready and answered through its Service; want within 5s", d)
			}
			// How long the outage's requests took is judged once the writer
			// has stopped (the last step): one sent now may still be
			// waiting, up to the client's 15s, and would be missed here.
			outageWindow = window{"database outage", from, ready, 0}
		})).
		Assess("back to 3 replicas, then preStop mode: rolled twice", disruption("back to 3 replicas, then preStop mode", func(ctx context.Context, t *testing.T) {
			if err := c.upgrade(mainRelease, mainNamespace, "replicaCount=3", "drain.mode=preStop"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			if err := c.upgrade(mainRelease, mainNamespace, "podAnnotations.rollout=data-prestop"); err != nil {
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
			if err := c.upgrade(mainRelease, mainNamespace, "drain.mode=app"); err != nil { // as the other scenarios expect
				t.Fatal(err)
			}
			c.waitSettled(t, mainNamespace, mainRelease, replicas)
		})).
		Assess("every acknowledged write reads back; the only failures are the database's 503s while it was down or stalled; every request of the outage answered within 2s", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			w.stop()
			answers := w.snapshot()
			beats, stalled := beating.stop()
			// The heartbeat worked: it judges the writes below, and one that
			// never beat would judge nothing (no stall, so every 503 outside
			// the windows fails, but say why). It beats every 100ms, slower
			// on a busy machine; once a second on average is the floor.
			if len(answers) > 0 {
				run := answers[len(answers)-1].sent.Sub(answers[0].sent)
				if n := beatsIn(beats, answers[0].sent, answers[len(answers)-1].sent); time.Duration(n)*time.Second < run {
					t.Errorf("PostgreSQL's heartbeat committed %d times in the %v of the writes: fewer than once a second, so a stall of PostgreSQL cannot be told from the service's failure", n, run.Round(time.Second))
				}
			}
			// Every request sent during the outage, answered by now (the
			// writer has stopped), was answered within 2s, success or not.
			var slow []answer
			for _, a := range answers {
				if a.sent.After(outageWindow.from) && a.sent.Before(outageWindow.to) && a.took > 2*time.Second {
					slow = append(slow, a)
				}
			}
			if outageWindow.to.IsZero() {
				t.Error("the outage step did not run to its end: no window to judge its requests by")
			} else if len(slow) > 0 {
				t.Errorf("%d requests during the database outage took over 2s, the first: %+v", len(slow), slow[0])
			}
			checked, lost, unverified := w.readBack(ctx)
			// A quick 503 with Retry-After is the service's answer when the
			// database does not answer within its timeout: expected while
			// the steps above had PostgreSQL down, and while PostgreSQL's
			// own heartbeat saw it stall (on a busy machine its CPU share
			// or its disk can hold a commit past the service's timeout).
			// A stall of the machine also holds up the request's way to
			// the service and back, which the database's timeout does not
			// bound: a 503 whose request met the stall itself (not only
			// the time after it) may take 2s and the stall's length.
			// One while PostgreSQL's own commits were quick is a failure,
			// and so is one in a stall that is not the database's timeout:
			// another answer (the request gate's, say), or the database's
			// answer sooner than its timeout (a refused connection, a
			// statement canceled by mistake), which a stall does not
			// explain.
			var failed, expected, whileStalled, resent []answer
			var stallsMet []window
			for _, a := range answers {
				if a.resent {
					resent = append(resent, a)
				}
				if a.reason == "" {
					continue
				}
				retry503 := a.status == 503 && a.retryAfter
				_, in := overlaps(downs, a.sent, a.sent)
				stall, stalling := overlaps(stalled, a.sent, a.sent.Add(a.took))
				timedOut := strings.Contains(a.body, dbDidNotAnswer) && a.took >= dbGaveUp-100*time.Millisecond // the database's timeout, not sooner
				switch {
				case retry503 && in && a.took <= 2*time.Second:
					expected = append(expected, a)
				case retry503 && stalling && timedOut && a.took <= 2*time.Second+heldDuring(stalled, a.sent, a.sent.Add(a.took)):
					whileStalled = append(whileStalled, a)
					if !slices.Contains(stallsMet, stall) {
						stallsMet = append(stallsMet, stall)
					}
				default:
					failed = append(failed, a)
				}
			}
			t.Logf("%d writes, %d acknowledged and read back with %d lost and %d unverified; %d quick 503s with Retry-After while the database was down, %d while PostgreSQL itself stalled; %d other failures; %d sent again by the client",
				len(answers), checked, len(lost), len(unverified), len(expected), len(whileStalled), len(failed), len(resent))
			var excused time.Duration // how much of the run the stalls' windows cover, overlaps counted twice
			for _, s := range stalled {
				excused += s.to.Sub(s.from)
			}
			t.Logf("PostgreSQL's heartbeat: %d commits, %d stalls over %v (commits or pauses), %d of them met by a write the service answered 503; their windows, the pauses of the steps that took PostgreSQL down included, cover %v of the run", len(beats), len(stalled), stallAfter, len(stallsMet), excused.Round(100*time.Millisecond))
			for _, s := range stallsMet[:min(len(stallsMet), 5)] {
				t.Logf("  %s, %s to %s", s.name, s.from.Format("15:04:05.000"), s.to.Format("15:04:05.000"))
			}
			// Writes Go's client sent again after their connection closed
			// unanswered are reported, not failed: HTTP/1.1's race on a
			// connection closed as idle (see loadReport.check). Each was
			// idempotent, and read back like any other.
			for _, a := range resent[:min(len(resent), 5)] {
				t.Logf("  sent again: %+v", a)
			}
			// The outage reached the service: a write sent while the
			// database was away was answered a quick 503 with Retry-After
			// (else the checks above would pass on an outage no pod saw).
			if !slices.ContainsFunc(expected, func(a answer) bool {
				return !a.sent.Before(outageWindow.from) && !a.sent.After(outageWindow.to)
			}) {
				t.Error("no write sent during the database outage was answered 503 with Retry-After: the outage never reached the service")
			}
			for k, d := range outage {
				t.Logf("  %s: %v", k, d.Round(time.Millisecond))
			}
			if len(lost) > 0 {
				t.Errorf("%d acknowledged writes lost, the first: %v", len(lost), lost[:min(len(lost), 5)])
			}
			if len(unverified) > 0 {
				t.Errorf("%d acknowledged writes could not be read back (every try failed), the first: %v", len(unverified), unverified[:min(len(unverified), 5)])
			}
			for _, a := range failed[:min(len(failed), 10)] {
				// Whether the heartbeat saw a stall then: a failure in one
				// is a 503 too slow or too soon, one outside it any 503.
				during := "while the heartbeat's commits were quick"
				if s, ok := overlaps(stalled, a.sent, a.sent.Add(a.took)); ok {
					during = fmt.Sprintf("during the heartbeat's stall (%s, %s to %s)", s.name, s.from.Format("15:04:05.000"), s.to.Format("15:04:05.000"))
				}
				t.Errorf("failed write %s sent %s: %q (status %d, Retry-After %v, took %v, body %q), %s", a.key, a.sent.Format("15:04:05.000"), a.reason, a.status, a.retryAfter, a.took.Round(time.Millisecond), a.body, during)
			}
			// All of them, a line per second they were sent in: when, and why.
			var line, last string
			var n int
			flush := func() {
				if n > 0 {
					t.Logf("  failed writes sent at %s: %d, %s", last, n, line)
				}
			}
			bySent := slices.Clone(failed)
			slices.SortFunc(bySent, func(a, b answer) int { return a.sent.Compare(b.sent) })
			for _, a := range bySent {
				sec := a.sent.Format("15:04:05")
				if sec != last {
					flush()
					last, line, n = sec, "", 0
				}
				n++
				if !strings.Contains(line, a.reason) {
					line += fmt.Sprintf("%q (status %d, took about %v) ", a.reason, a.status, a.took.Round(100*time.Millisecond))
				}
			}
			flush()
			texts := logs.stop(t)
			// The pods' own account of the failed writes: which part of a
			// database call ran out of time (a full pool, a new
			// connection's handshake, the statement), and the pool's state.
			if len(failed) > 0 {
				logStoreFailures(t, texts, failed)
			}
			// A log check passes on logs it never read: the run's pods are
			// the three it began with and each rollout's, at least.
			if len(texts) < replicas {
				t.Errorf("the logs of %d pods were read, fewer than the %d the run began with: the checks below read too little", len(texts), replicas)
			}
			for name, text := range texts {
				for _, bad := range []string{"closed pool", "database is closed", "sql: database is closed"} {
					if strings.Contains(text, bad) {
						t.Errorf("pod %s logged %q: a request reached the database after its pool closed", name, bad)
					}
				}
			}
			// Every pod of the run, those replaced since included: the
			// current ones are seconds old by now.
			if n := logs.restarted(); n != 0 {
				t.Errorf("berth containers restarted %d times during the run", n)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// logStoreFailures logs the service's "store unavailable" lines from the
// times failed writes were in flight: two for each second, 20 in all.
func logStoreFailures(t *testing.T, texts map[string]string, failed []answer) {
	t.Helper()
	var lines []string
	perSecond := map[string]int{}
	for name, text := range texts {
		for _, l := range parseLogs(text) {
			sec := l.Time.Format("15:04:05")
			if l.Msg != "store unavailable" || perSecond[sec] == 2 {
				continue
			}
			if slices.ContainsFunc(failed, func(a answer) bool {
				return !l.Time.Before(a.sent.Add(-time.Second)) && !l.Time.After(a.sent.Add(a.took+time.Second))
			}) {
				perSecond[sec]++
				lines = append(lines, fmt.Sprintf("  %s pod %s: %v", l.Time.Format("15:04:05.000"), name, l.Fields["error"]))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines[:min(len(lines), 20)] {
		t.Log(l)
	}
}

// dbDidNotAnswer is in the body of the service's 503 for a database that
// did not answer within its timeout (cmd/server's storeFailed).
const dbDidNotAnswer = "the database did not answer"

func firstSuccessAfter(answers []answer, t time.Time) *answer {
	var first *answer
	for i, a := range answers {
		if a.reason == "" && a.sent.After(t) && (first == nil || a.sent.Before(first.sent)) {
			first = &answers[i]
		}
	}
	return first
}

// waitPostgresReady waits for a PostgreSQL pod other than the one with
// uid old to be Ready and returns when it became so.
func (c *cluster) waitPostgresReady(t *testing.T, old types.UID) time.Time {
	t.Helper()
	var ready time.Time
	waitFor(t, "PostgreSQL to be Ready again", 3*time.Minute, func(ctx context.Context) (bool, error) {
		pg, err := c.postgresPod(ctx, mainNamespace, mainRelease)
		if err != nil || pg.UID == old || !podReady(pg) {
			return false, nil
		}
		ready = readySince(pg)
		return true, nil
	})
	// The condition's time has one-second resolution, truncated: the pod
	// became Ready within the second that follows it.
	return ready
}

// containerRestarts is how many times the pod's container name restarted.
func containerRestarts(p corev1.Pod, name string) int32 {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s.RestartCount
		}
	}
	return 0
}

// crashContainer kills every process of the pod's container name with
// SIGKILL, from its kind node, as the kernel's OOM killer or a crash would
// end it: the program gets no signal it can handle, and writes nothing
// more. (Its PID 1 cannot be killed so from inside its own container.)
func (c *cluster) crashContainer(t *testing.T, p corev1.Pod, name string) {
	t.Helper()
	var id string
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	if id == "" {
		t.Fatalf("pod %s has no running container %s", p.Name, name)
	}
	nodes, err := kindcluster.NewProvider().ListNodes(clusterName)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(nodes, func(n kindnodes.Node) bool { return n.String() == p.Spec.NodeName })
	if i < 0 {
		t.Fatalf("no node %s in cluster %s", p.Spec.NodeName, clusterName)
	}
	// The container's processes are those whose cgroup names it. One gone
	// between the grep and the kill (a backend ending) makes kill exit 1:
	// the crash checks after the kill say whether it ended the container.
	script := fmt.Sprintf(`pids=$(grep -l 'containerd-%s' /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); [ -n "$pids" ] || { echo "no process of container %s" >&2; exit 1; }; kill -9 $pids || true`, id, id)
	var out strings.Builder
	cmd := nodes[i].Command("sh", "-c", script)
	cmd.SetStdout(&out)
	cmd.SetStderr(&out)
	if err := cmd.Run(); err != nil {
		t.Fatalf("killing container %s of pod %s on node %s: %v: %s", name, p.Name, p.Spec.NodeName, err, out.String())
	}
}

// scalePostgres sets the bundled PostgreSQL's StatefulSet to n replicas.
// It works from a cleanup too, where t's own context has ended, and
// returns its error rather than ending the caller (a cleanup has more to
// do).
func (c *cluster) scalePostgres(n int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sts := mainRelease + "-postgresql"
	s, err := c.cs.AppsV1().StatefulSets(mainNamespace).GetScale(ctx, sts, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("scaling %s to %d: %w", sts, n, err)
	}
	s.Spec.Replicas = n
	if _, err := c.cs.AppsV1().StatefulSets(mainNamespace).UpdateScale(ctx, sts, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scaling %s to %d: %w", sts, n, err)
	}
	return nil
}

// drainWorker cordons a worker that hosts berth pods but not PostgreSQL,
// evicts its berth pods through the Eviction API (which honours the
// PodDisruptionBudget), waits for the replacements, and uncordons it.
func (c *cluster) drainWorker(t *testing.T, ns, release string) {
	t.Helper()
	ctx := t.Context()
	pg, err := c.postgresPod(ctx, ns, release)
	if err != nil {
		t.Fatal(err)
	}
	pods := c.waitSettled(t, ns, release, replicas)
	c.waitServing(t, ns, pods, "method", "PUT") // the pods drained take writes
	var node string
	for _, p := range pods {
		if p.Spec.NodeName != pg.Spec.NodeName {
			node = p.Spec.NodeName
			break
		}
	}
	if node == "" {
		t.Fatalf("every berth pod shares PostgreSQL's node %s; nothing to drain", pg.Spec.NodeName)
	}
	cordon := func(on bool) {
		patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%v}}`, on)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.cs.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cordon(true)
	defer cordon(false)
	var evicted []string
	for _, p := range pods {
		if p.Spec.NodeName != node {
			continue
		}
		waitFor(t, "the eviction of "+p.Name+" to be allowed", 2*time.Minute, func(ctx context.Context) (bool, error) {
			err := c.cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns}})
			var status apierrors.APIStatus
			if errors.As(err, &status) && status.Status().Code == 429 {
				return false, nil // the PodDisruptionBudget says not yet
			}
			return err == nil, err
		})
		evicted = append(evicted, p.Name)
	}
	for _, name := range evicted {
		c.waitGone(t, ns, name, 2*time.Minute)
	}
	for _, p := range c.waitSettled(t, ns, release, replicas) {
		if p.Spec.NodeName == node {
			t.Errorf("pod %s scheduled on the cordoned node %s", p.Name, node)
		}
	}
	after, err := c.postgresPod(ctx, ns, release)
	if err != nil || after.UID != pg.UID {
		t.Errorf("draining %s, which PostgreSQL was not on, disturbed it: %v (pod %s, was %s)", node, err, after.UID, pg.UID)
	}
	t.Logf("drained %s: evicted %v, PostgreSQL stayed on %s", node, evicted, after.Spec.NodeName)
}
