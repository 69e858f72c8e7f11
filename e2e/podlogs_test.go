//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podLogs follows the server container's log of every pod of a release
// from the moment the pod appears until its container exits, so that the
// logs of pods a rollout replaces are not lost with them.
type podLogs struct {
	c       *cluster
	ns      string
	cancel  context.CancelFunc // stops noticing new pods
	cut     context.CancelFunc // ends the streams still open
	watched sync.WaitGroup
	streams sync.WaitGroup

	mu       sync.Mutex
	logs     map[string]string // pod name -> its log, once its container exited
	seen     map[string]bool
	restarts map[string]int32 // pod name -> the most restarts seen of its containers
}

func (c *cluster) followRelease(t *testing.T, ns, release string) *podLogs {
	ctx, cancel := context.WithCancel(context.Background())
	streams, cut := context.WithCancel(context.Background())
	p := &podLogs{c: c, ns: ns, cancel: cancel, cut: cut, logs: map[string]string{}, seen: map[string]bool{}, restarts: map[string]int32{}}
	p.watched.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if pods, err := c.pods(ctx, ns, release); err == nil {
				for _, pod := range pods {
					p.follow(streams, pod)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return p
}

// follow starts streaming pod's server log once the container runs, until
// it exits or ctx ends, and notes its containers' restarts.
func (p *podLogs) follow(ctx context.Context, pod corev1.Pod) {
	running := false
	var restarts int32
	for _, s := range pod.Status.ContainerStatuses {
		running = running || s.Name == "server" && (s.State.Running != nil || s.State.Terminated != nil)
		restarts += s.RestartCount
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restarts[pod.Name] = max(p.restarts[pod.Name], restarts)
	if !running || p.seen[pod.Name] {
		return
	}
	p.seen[pod.Name] = true
	p.streams.Go(func() {
		stream, err := p.c.cs.CoreV1().Pods(p.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "server", Follow: true}).Stream(ctx)
		if err != nil {
			return // stop reads it back
		}
		defer stream.Close()
		b, err := io.ReadAll(stream)
		if err != nil {
			return // cut off: stop reads the whole log back
		}
		p.mu.Lock()
		p.logs[pod.Name] = string(b)
		p.mu.Unlock()
	})
}

// stop stops noticing new pods and returns the logs of the pods whose
// containers have exited, and, after a bounded wait, what the others wrote
// so far.
func (p *podLogs) stop(t *testing.T) map[string]string {
	p.cancel()
	p.watched.Wait()
	done := make(chan struct{})
	go func() { p.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // pods still running: read what they wrote
	}
	p.cut()
	p.mu.Lock()
	out := maps.Clone(p.logs)
	pending := []string{}
	for name := range p.seen {
		if _, ok := out[name]; !ok {
			pending = append(pending, name)
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range pending {
		if text, err := p.c.logs(ctx, p.ns, name, "server", false); err == nil {
			out[name] = text
		} else {
			// A check for what a log must not hold would pass on it unread.
			t.Errorf("pod %s: its log could not be read: %v", name, err)
		}
	}
	return out
}

// close ends every goroutine and stream of p without reading the logs:
// for a run that failed before stop.
func (p *podLogs) close() {
	p.cancel()
	p.cut()
	p.watched.Wait()
	p.streams.Wait()
}

// restarted sums the most restarts seen of each pod's containers, for every
// pod followed (those replaced during the run included).
func (p *podLogs) restarted() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int32
	for _, r := range p.restarts {
		n += r
	}
	return n
}

// restarts sums the restart counts of the release's current pods' containers.
func (c *cluster) restarts(ctx context.Context, ns, release string) (int32, error) {
	pods, err := c.pods(ctx, ns, release)
	if err != nil {
		return 0, err
	}
	var n int32
	for _, p := range pods {
		for _, s := range p.Status.ContainerStatuses {
			n += s.RestartCount
		}
	}
	return n, nil
}

// postgresPod returns the bundled PostgreSQL's pod, or an error when there
// is none (yet).
func (c *cluster) postgresPod(ctx context.Context, ns, release string) (corev1.Pod, error) {
	list, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=database"})
	if err != nil {
		return corev1.Pod{}, err
	}
	if len(list.Items) != 1 {
		return corev1.Pod{}, fmt.Errorf("want one PostgreSQL pod of %s, found %d", release, len(list.Items))
	}
	return list.Items[0], nil
}
