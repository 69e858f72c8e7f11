//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writer puts unique keys at a constant rate through the Service (open
// loop: a slow answer does not slow the rate) and records every answer.
type writer struct {
	base, run string
	client    *http.Client   // the read-back's
	clients   []*http.Client // the writes', each its own connections
	cancel    context.CancelFunc
	done      chan struct{}
	wg        sync.WaitGroup

	mu      sync.Mutex
	acked   []string // keys answered 2xx
	answers []answer // every request, in the order they finished
}

// answer is what one write got.
type answer struct {
	key        string
	sent       time.Time
	took       time.Duration
	status     int    // 0 when no HTTP answer came
	retryAfter bool   // a Retry-After header came with it
	resent     bool   // Go's client sent it again: its connection closed unanswered
	reason     string // what failed, "" for a 2xx
	body       string // the start of a non-2xx answer's body
}

const writeRate = 60 // writes per second

// writeClients is how many clients, each with its own connections, take
// the writes in turn, and each ends its connection after every
// writesPerConn of its writes: one client's few kept-alive connections
// would stay on one pod or two (a pod made later would get none), and a
// disruption of another would touch no write. The Service spreads new
// connections at random, so every pod takes writes within seconds, most
// of them on kept-alive connections.
const (
	writeClients  = 24
	writesPerConn = 8
)

func startWriter(base, run string) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	newClient := func() *http.Client {
		return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100, IdleConnTimeout: 30 * time.Second}}
	}
	w := &writer{base: base, run: run, cancel: cancel, done: make(chan struct{}), client: newClient()}
	for range writeClients {
		w.clients = append(w.clients, newClient())
	}
	go func() {
		defer close(w.done)
		paced(ctx, writeRate, func(n int) {
			w.wg.Go(func() { w.put(fmt.Sprintf("%s-%06d", w.run, n), n) })
		})
	}()
	return w
}

func (w *writer) put(key string, n int) {
	a := answer{key: key, sent: time.Now()}
	var conns atomic.Int32 // one per attempt: a resend gets a connection of its own
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, w.base+"/api/v1/items/"+key, strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
	req.Header.Set("Content-Type", "application/json")
	// A PUT is idempotent (RFC 9110 9.2.2); this header tells Go's client
	// so, and it then retries a request whose keep-alive connection the
	// server closed as it drained, as HTTP asks clients to (RFC 9112
	// 9.3.1). Without it, Go retries only GET, HEAD, OPTIONS and TRACE.
	// Each resend is counted (resent) and reported.
	req.Header.Set("Idempotency-Key", key)
	req.Close = (n/writeClients)%writesPerConn == writesPerConn-1
	resp, err := w.clients[n%len(w.clients)].Do(req)
	a.resent = conns.Load() > 1
	if err != nil {
		a.reason = shortReason(err)
	} else {
		var head []byte
		if resp.StatusCode/100 != 2 {
			head, _ = io.ReadAll(io.LimitReader(resp.Body, 256))
			a.body = string(head)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After") != ""
		switch {
		case err != nil:
			a.reason = "reading body: " + err.Error()
		case resp.StatusCode/100 != 2:
			a.reason = resp.Status
		}
	}
	a.took = time.Since(a.sent)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answers = append(w.answers, a)
	if a.reason == "" {
		w.acked = append(w.acked, key)
	}
}

// shortReason is an error without the URL ("connection refused", "EOF").
func shortReason(err error) string {
	reason := err.Error()
	if i := strings.LastIndex(reason, ": "); i >= 0 {
		reason = reason[i+2:]
	}
	return reason
}

// stop ends the writes and waits for those in flight.
func (w *writer) stop() {
	w.cancel()
	<-w.done
	w.wg.Wait()
	for _, c := range w.clients {
		c.CloseIdleConnections()
	}
}

// ackedCount is how many writes were acknowledged so far.
func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// snapshot returns the answers so far.
func (w *writer) snapshot() []answer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]answer(nil), w.answers...)
}

// readBack reads every acknowledged key through the Service, within five
// minutes, and returns those missing or wrong (lost) and those it could not
// read (unverified: every try failed, or time ran out).
func (w *writer) readBack(ctx context.Context) (checked int, lost, unverified []string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	w.mu.Lock()
	keys := append([]string(nil), w.acked...)
	w.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			for key := range next {
				held, read := w.holds(ctx, key)
				mu.Lock()
				switch {
				case !read:
					unverified = append(unverified, key)
				case !held:
					lost = append(lost, key)
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	return len(keys), lost, unverified
}

// holds reports whether key reads back with the value it was written with
// (held), once a read answers 200 or 404 (read); a transport error or
// another status is tried again, up to five times, a little later each
// time.
func (w *writer) holds(ctx context.Context, key string) (held, read bool) {
	var n int
	fmt.Sscanf(key[strings.LastIndex(key, "-")+1:], "%d", &n)
	want := fmt.Sprintf(`{"n":%d}`, n)
	pause := 100 * time.Millisecond
	for range 5 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/api/v1/items/"+key, nil)
		if resp, err := w.client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				return string(body) == want, true
			case http.StatusNotFound:
				return false, true
			}
		}
		select {
		case <-ctx.Done():
			return false, false
		case <-time.After(pause):
		}
		pause *= 2
	}
	return false, false
}

// outcomes are the writes sent between from and to, by the time sent
// (as the load's are).
func outcomesOf(answers []answer, from, to time.Time) []outcome {
	var out []outcome
	for _, a := range answers {
		if !a.sent.Before(from) && !a.sent.After(to) {
			out = append(out, outcome{at: a.sent, ok: a.reason == ""})
		}
	}
	return out
}
