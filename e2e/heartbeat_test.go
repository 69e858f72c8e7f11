//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// stallAfter is how long one of PostgreSQL's own commits may take, or its
// commits pause, before the heartbeat calls PostgreSQL stalled: a third of
// the chart's database.timeout (1.5s), past which the service gives a
// write up with 503 and Retry-After.
const stallAfter = 500 * time.Millisecond

// beat is one commit of the heartbeat: when PostgreSQL began it, and how
// long psql waited for it to be committed.
type beat struct {
	at      time.Time
	took    time.Duration
	session int // the psql session it came from (see heartbeat.container)
}

// heartbeat commits one row into a table of its own (e2e_heartbeat) every
// 100ms from inside PostgreSQL's container, whose CPU share and disk its
// psql shares, and records each commit. It tells a stall of PostgreSQL
// itself (a starved CPU, a slow flush) from a failure of the service: a
// write the service gave up on while PostgreSQL's own commits were quick
// is the service's to answer for. It follows PostgreSQL through its
// restarts, beating again in each new container once it is Ready.
type heartbeat struct {
	mu    sync.Mutex
	beats []beat
	// container names, for each psql session, PostgreSQL's container it
	// ran in (the pod's UID and the container's restarts): a pause between
	// two sessions in one container is the heartbeat's own (its exec
	// stream ended), not PostgreSQL's.
	container []string
	cancel    context.CancelFunc
	done      chan struct{}
}

// heartbeatScript runs in PostgreSQL's container: one psql session, one
// INSERT every 100ms, each followed by psql's \timing line.
const heartbeatScript = `export PGPASSWORD="$POSTGRES_PASSWORD"
psql -X -q -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'CREATE TABLE IF NOT EXISTS e2e_heartbeat (at timestamptz NOT NULL DEFAULT clock_timestamp())' >/dev/null || exit 1
(echo '\timing on'; while :; do echo 'INSERT INTO e2e_heartbeat DEFAULT VALUES RETURNING floor(extract(epoch FROM at) * 1000)::bigint;'; sleep 0.1; done) |
	psql -X -q -At -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"`

// startHeartbeat beats in the release's PostgreSQL until stop.
func (c *cluster) startHeartbeat(ns, release string) *heartbeat {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for ctx.Err() == nil {
			pg, err := c.postgresPod(ctx, ns, release)
			if err != nil || !podReady(pg) {
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			h.mu.Lock()
			session := len(h.container)
			h.container = append(h.container, fmt.Sprintf("%s/%d", pg.UID, containerRestarts(pg, "postgresql")))
			h.mu.Unlock()
			pr, pw := io.Pipe()
			go h.read(pr, session)
			// Returns when the container goes (a restart, a crash, the
			// outage) or at stop; the loop then waits for the next one.
			_ = c.execStream(ctx, ns, pg.Name, "postgresql", pw, "bash", "-c", heartbeatScript)
			pw.Close()
		}
	}()
	return h
}

// read records the beats in psql's output: a line with the commit's start
// (milliseconds since the epoch, PostgreSQL's clock, which is the
// machine's), then psql's "Time: 1.234 ms".
func (h *heartbeat) read(r io.Reader, session int) {
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
			h.beats = append(h.beats, beat{at: at, took: time.Duration(ms * float64(time.Millisecond)), session: session})
			h.mu.Unlock()
		}
		at = time.Time{}
	}
}

// stop ends the heartbeat and returns its beats, in order, and the
// stretches in which PostgreSQL stalled (see stalls).
func (h *heartbeat) stop() ([]beat, []window) {
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.beats, stalls(h.beats, h.container)
}

// stalls are the stretches in which PostgreSQL's own commits took longer
// than stallAfter: a slow commit, from its start to its end, and a pause
// between one commit's end and the next one's start, unless the two came
// from psql sessions in one container (the heartbeat's pause, not
// PostgreSQL's).
func stalls(beats []beat, container []string) []window {
	var out []window
	for i, b := range beats {
		if b.took > stallAfter {
			out = append(out, window{fmt.Sprintf("PostgreSQL's own commit took %v", b.took.Round(time.Millisecond)), b.at, b.at.Add(b.took)})
		}
		if i > 0 && (b.session == beats[i-1].session || container[b.session] != container[beats[i-1].session]) {
			prev := beats[i-1].at.Add(beats[i-1].took)
			if gap := b.at.Sub(prev); gap > stallAfter {
				out = append(out, window{fmt.Sprintf("PostgreSQL's commits paused %v", gap.Round(time.Millisecond)), prev, b.at})
			}
		}
	}
	return out
}

// overlaps reports whether [from, to] meets any of ws, and the first it meets.
func overlaps(ws []window, from, to time.Time) (window, bool) {
	for _, w := range ws {
		if !w.to.Before(from) && !w.from.After(to) {
			return w, true
		}
	}
	return window{}, false
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

// execStream runs a command in a container, writing its stdout to stdout
// as it comes (exec, by contrast, returns it at the end), until it exits
// or ctx ends.
func (c *cluster) execStream(ctx context.Context, ns, pod, container string, stdout io.Writer, cmd ...string) error {
	req := c.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(c.cfg.Client().RESTConfig(), "POST", req.URL())
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: io.Discard})
}
