//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// dbTimeout is the chart's database.timeout, within which the service
// gives a write up with 503 and Retry-After.
const dbTimeout = 1500 * time.Millisecond

// dbGaveUp is the soonest such a 503 comes: the store gives a statement
// the timeout less the 250ms its cancel may take (internal/store's
// cancelSlack), and a write still waiting for a connection ends then.
const dbGaveUp = dbTimeout - 250*time.Millisecond

// stallAfter is how long one of the heartbeat's commits may take, or its
// commits pause, before it calls PostgreSQL stalled: a third of dbTimeout.
const stallAfter = dbTimeout / 3

// beat is one commit of the heartbeat: when PostgreSQL began it, and how
// long psql waited for it to be committed.
type beat struct {
	at   time.Time
	took time.Duration
}

// heartbeat is a pod of its own, beside the service's, that commits one
// row into a table of its own (e2e_heartbeat) every 100ms through
// PostgreSQL's Service, as the service's writes go, and prints each
// commit's start and psql's timing of it. It has PostgreSQL's image and
// resources, so the same CPU share. It tells PostgreSQL not answering in
// time (a starved CPU, a slow flush, a Service whose routes still lead to
// a pod gone) from a failure of the service: a write the service gave up
// on while the heartbeat's commits were quick is the service's to answer
// for. It outlives PostgreSQL's restarts, connecting again each time.
type heartbeat struct {
	mu     sync.Mutex
	beats  []beat
	cancel context.CancelFunc
	done   chan struct{}
}

// heartbeatScript: one psql session at a time, one INSERT every 100ms,
// each followed by psql's \timing line; a new session 200ms after one
// ends (or fails to connect: PostgreSQL away).
const heartbeatScript = `export PGPASSWORD="$POSTGRES_PASSWORD" PGCONNECT_TIMEOUT=1
until psql -X -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'CREATE TABLE IF NOT EXISTS e2e_heartbeat (at timestamptz NOT NULL DEFAULT clock_timestamp())' >/dev/null 2>&1; do sleep 0.1; done
while :; do
	(echo '\timing on'; while :; do echo 'INSERT INTO e2e_heartbeat DEFAULT VALUES RETURNING floor(extract(epoch FROM at) * 1000)::bigint;'; sleep 0.1; done) |
		psql -X -q -At -U "$POSTGRES_USER" -d "$POSTGRES_DB" 2>/dev/null
	sleep 0.2
done`

// startHeartbeat runs the heartbeat pod for the release's PostgreSQL,
// waits until it has committed once, and follows its log until stop.
func (c *cluster) startHeartbeat(t *testing.T, ns, release string) *heartbeat {
	t.Helper()
	pg, err := c.postgresPod(t.Context(), ns, release)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := c.cs.CoreV1().Services(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=database"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(svcs.Items, func(s corev1.Service) bool { return s.Spec.ClusterIP != corev1.ClusterIPNone })
	if i < 0 {
		t.Fatalf("release %s has no ClusterIP Service for PostgreSQL", release)
	}
	j := slices.IndexFunc(pg.Spec.Containers, func(c corev1.Container) bool { return c.Name == "postgresql" })
	if j < 0 {
		t.Fatalf("pod %s has no container postgresql", pg.Name)
	}
	pgc := pg.Spec.Containers[j]
	env := []corev1.EnvVar{{Name: "PGHOST", Value: svcs.Items[i].Name}}
	for _, e := range pgc.Env {
		if strings.HasPrefix(e.Name, "POSTGRES_") {
			env = append(env, e)
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: release + "-e2e-pg-heartbeat-", Labels: map[string]string{"app.kubernetes.io/name": "e2e-pg-heartbeat"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			SecurityContext:               pg.Spec.SecurityContext,
			Containers: []corev1.Container{{Name: "heartbeat", Image: pgc.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"bash", "-c", heartbeatScript}, Env: env,
				SecurityContext: pgc.SecurityContext, Resources: pgc.Resources}},
		},
	}
	pod, err = c.cs.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { h.stop() }) // also when the wait below fails; stop is idempotent
	go func() {
		defer close(h.done)
		defer func() {
			del, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = c.cs.CoreV1().Pods(ns).Delete(del, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}()
		// A follow that ends (the API server's stream cut) is taken up
		// again from the second of the last beat read; read skips beats
		// it has.
		for ctx.Err() == nil {
			opts := &corev1.PodLogOptions{Follow: true}
			if last := h.last(); !last.IsZero() {
				opts.SinceTime = &metav1.Time{Time: last.Add(-time.Second)}
			}
			stream, err := c.cs.CoreV1().Pods(ns).GetLogs(pod.Name, opts).Stream(ctx)
			if err == nil {
				h.read(stream)
				stream.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	waitFor(t, "the PostgreSQL heartbeat's first commit", 2*time.Minute, func(context.Context) (bool, error) {
		return !h.last().IsZero(), nil
	})
	return h
}

// last is when the latest beat read began (zero before the first).
func (h *heartbeat) last() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.beats) == 0 {
		return time.Time{}
	}
	return h.beats[len(h.beats)-1].at
}

// read records the beats in psql's output, past the last one it has: a
// line with the commit's start (milliseconds since the epoch, PostgreSQL's
// clock, which is the machine's), then psql's "Time: 1.234 ms".
func (h *heartbeat) read(r io.Reader) {
	var at time.Time
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		if ms, err := strconv.ParseInt(line, 10, 64); err == nil {
			at = time.UnixMilli(ms)
			continue
		}
		rest, ok := strings.CutPrefix(line, "Time: ")
		if !ok || at.IsZero() {
			continue
		}
		f, _, _ := strings.Cut(rest, " ")
		if ms, err := strconv.ParseFloat(f, 64); err == nil {
			h.mu.Lock()
			if n := len(h.beats); n == 0 || at.After(h.beats[n-1].at) {
				h.beats = append(h.beats, beat{at: at, took: time.Duration(ms * float64(time.Millisecond))})
			}
			h.mu.Unlock()
		}
		at = time.Time{}
	}
}

// snapshot returns the beats so far.
func (h *heartbeat) snapshot() []beat {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.beats)
}

// stop ends the heartbeat, deletes its pod, and returns its beats, in
// order, and the stretches in which PostgreSQL stalled (see stalls).
func (h *heartbeat) stop() ([]beat, []window) {
	h.cancel()
	<-h.done
	beats := h.snapshot()
	return beats, stalls(beats)
}

// stalls are the stretches in which the heartbeat's commits took longer
// than stallAfter: a slow commit, from its start to its end, and a pause
// between one commit's end and the next one's start (PostgreSQL gone, or
// not reached through its Service, included); each then for afterStall
// more.
func stalls(beats []beat) []window {
	var out []window
	for i, b := range beats {
		if b.took > stallAfter {
			out = append(out, window{fmt.Sprintf("a commit took %v", b.took.Round(time.Millisecond)), b.at, b.at.Add(b.took + afterStall), b.took})
		}
		if i > 0 {
			prev := beats[i-1].at.Add(beats[i-1].took)
			if gap := b.at.Sub(prev); gap > stallAfter {
				out = append(out, window{fmt.Sprintf("commits paused %v", gap.Round(time.Millisecond)), prev, b.at.Add(afterStall), gap})
			}
		}
	}
	return out
}

// afterStall is how long after a stall the service's writes may still
// time out because of it: dbTimeout for the writes queued behind it, and
// dbTimeout more for the connections it cost. A statement whose cancel
// the stalled server did not confirm within 150ms (internal/store's
// cancelGrace) closes its connection, and the pool opens it again, its
// handshake bounded by the same timeout; a write queued behind that
// handshake times out up to then.
const afterStall = 2 * dbTimeout

// overlaps reports whether [from, to] meets any of ws, and the first it meets.
func overlaps(ws []window, from, to time.Time) (window, bool) {
	for _, w := range ws {
		if !w.to.Before(from) && !w.from.After(to) {
			return w, true
		}
	}
	return window{}, false
}

// heldDuring is the longest of the stalls in ws that [from, to] meets
// while it lasted (from the window's start for its held length, not the
// time after it), or 0.
func heldDuring(ws []window, from, to time.Time) time.Duration {
	var held time.Duration
	for _, w := range ws {
		if !w.from.Add(w.held).Before(from) && !w.from.After(to) {
			held = max(held, w.held)
		}
	}
	return held
}

// beatsIn counts the beats that began in [from, to].
func beatsIn(beats []beat, from, to time.Time) int {
	n := 0
	for _, b := range beats {
		if !b.at.Before(from) && !b.at.After(to) {
			n++
		}
	}
	return n
}

// firstBeatAfter is the first beat that began after t, if any.
func firstBeatAfter(beats []beat, t time.Time) (beat, bool) {
	i := slices.IndexFunc(beats, func(b beat) bool { return b.at.After(t) })
	if i < 0 {
		return beat{}, false
	}
	return beats[i], true
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
