//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends a constant request rate to the API from outside the cluster
// (through the NodePort and kube-proxy): every fifth request holds for 1s
// (/api/v1/work), the others are short (/api/v1/info). It is open-loop: a
// slow answer does not slow the rate. It stops by itself after
// loadMaxDuration, and its report then says so.
//
// Its client is Go's, with keep-alive connections: like most HTTP clients
// (RFC 9112 9.3.1), it sends a GET again on a new connection when a reused
// one closes before any answer. Such a request is not a failure, but it is
// counted (Retried), so that a drain which closes connections under its
// clients shows in the figures.
type load struct {
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	total, failed, long, longFailed, retried atomic.Int64
	cutShort                                 atomic.Bool
	mu                                       sync.Mutex
	reasons                                  map[string]int
	failures                                 []time.Time
	outcomes                                 []outcome
}

// loadReport is what a load run saw.
type loadReport struct {
	Total, Failed, Long, LongFailed int64
	Retried                         int64 // sent more than once by the client (see load)
	CutShort                        bool  // the load stopped at loadMaxDuration, before stop
	Reasons                         map[string]int
	Failures                        []time.Time // when each failed request was sent
	Outcomes                        []outcome   // every request, when it was sent
	Duration                        time.Duration
}

func (r loadReport) String() string {
	var rs []string
	for k, v := range r.Reasons {
		rs = append(rs, fmt.Sprintf("%d× %s", v, k))
	}
	sort.Strings(rs)
	return fmt.Sprintf("%d requests in %v (%d of 1s), %d failed (%d long), %d retried by the client %s", r.Total, r.Duration.Round(time.Second), r.Long, r.Failed, r.LongFailed, r.Retried, strings.Join(rs, "; "))
}

const (
	longWork        = time.Second // what each long request asks the service to work
	loadRate        = 100         // requests per second
	loadMaxDuration = 4 * time.Minute
)

func startLoad(t *testing.T, baseURL string) *load {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	l := &load{cancel: cancel, done: make(chan struct{}), reasons: map[string]int{}}
	// A step that fails before stop must not leave the load running into
	// the scenarios after it.
	t.Cleanup(l.halt)
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second},
	}
	go func() {
		defer close(l.done)
		defer func() { l.cutShort.Store(errors.Is(ctx.Err(), context.DeadlineExceeded)) }()
		paced(ctx, loadRate, func(i int) {
			long := i%5 == 0
			path := "/api/v1/info"
			if long {
				path = "/api/v1/work?duration=" + longWork.String()
			}
			l.wg.Go(func() { l.one(client, baseURL+path, long) })
		})
	}()
	return l
}

// paced calls send with 0, 1, 2, … at rate per second until ctx ends. It
// keeps to the rate over the whole run: a tick the scheduler delays (a
// busy machine) is made up at the next, where a plain ticker would drop it.
func paced(ctx context.Context, rate int, send func(n int)) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	begin, n := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(begin) * time.Duration(rate) / time.Second); n < due; n++ {
			send(n)
		}
	}
}

func (l *load) one(client *http.Client, url string, long bool) {
	l.total.Add(1)
	if long {
		l.long.Add(1)
	}
	sent := time.Now()
	reason := ""
	var conns atomic.Int32 // one per attempt: the client's retries get a connection each
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { conns.Add(1) },
	}), http.MethodGet, url, nil)
	if err != nil {
		panic(err) // the URL is the suite's own
	}
	resp, err := client.Do(req)
	if conns.Load() > 1 {
		l.retried.Add(1)
	}
	if err != nil {
		reason = err.Error()
		if i := strings.LastIndex(reason, ": "); i >= 0 {
			reason = reason[i+2:] // "connection refused", "EOF", … without the URL
		}
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			reason = "reading body: " + err.Error()
		case resp.StatusCode/100 != 2:
			reason = resp.Status
		case long && time.Since(sent) < longWork:
			// A long request answered before its work was done would
			// hold nothing through the drain: no proof of long requests.
			reason = "answered before its work was done"
		}
	}
	l.mu.Lock()
	l.outcomes = append(l.outcomes, outcome{at: sent, ok: reason == ""})
	l.mu.Unlock()
	if reason == "" {
		return
	}
	l.failed.Add(1)
	if long {
		l.longFailed.Add(1)
	}
	l.mu.Lock()
	l.reasons[reason]++
	l.failures = append(l.failures, sent)
	l.mu.Unlock()
}

// halt ends the load and waits for every request in flight; it may be
// called again.
func (l *load) halt() {
	l.cancel()
	<-l.done
	l.wg.Wait()
}

// stop ends the load, waits for every request in flight, and reports.
func (l *load) stop(began time.Time) loadReport {
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	reasons := map[string]int{}
	for k, v := range l.reasons {
		reasons[k] = v
	}
	return loadReport{Total: l.total.Load(), Failed: l.failed.Load(), Long: l.long.Load(), LongFailed: l.longFailed.Load(),
		Retried: l.retried.Load(), CutShort: l.cutShort.Load(), Reasons: reasons, Failures: slices.Clone(l.failures), Outcomes: slices.Clone(l.outcomes), Duration: time.Since(began)}
}

// check fails t if the load stopped before the scenario ended or, unless
// failuresExpected, if any request failed.
func (r loadReport) check(t *testing.T, what string, failuresExpected bool) {
	t.Helper()
	if r.CutShort {
		t.Errorf("%s: the load stopped by itself after %v, before the scenario ended: its figures miss the end", what, loadMaxDuration)
	}
	if r.Total == 0 {
		t.Errorf("%s: the load sent no request: 0 failed means nothing", what)
	}
	if !failuresExpected && r.Failed != 0 {
		t.Errorf("%s under load: %d of %d requests failed: %v", what, r.Failed, r.Total, r.Reasons)
	}
	// Requests Go's client sent again (Retried) are reported, not
	// failed: one whose kept-alive connection the server closed as idle
	// just as the client sent on it is HTTP/1.1's own race, and came in
	// one of berth's rollouts in about forty. What tells that from a
	// request a draining pod read and dropped is the pods' own count of
	// requests served against the client's successes, which
	// TestPrometheusSeesEveryFigure asserts equal, and each replaced pod's
	// report of requests cut off.
}
