//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// load sends a constant request rate to the API from outside the cluster
// (through the NodePort and kube-proxy): every fifth request holds for 1s
// (/api/v1/work), the others are short (/api/v1/info). It is open-loop: a
// slow answer does not slow the rate. It stops by itself after maxDuration.
type load struct {
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	total, failed, long, longFailed atomic.Int64
	mu                              sync.Mutex
	reasons                         map[string]int
	failures                        []time.Time
	outcomes                        []outcome
}

// loadReport is what a load run saw.
type loadReport struct {
	Total, Failed, Long, LongFailed int64
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
	return fmt.Sprintf("%d requests in %v (%d of 1s), %d failed (%d long) %s", r.Total, r.Duration.Round(time.Second), r.Long, r.Failed, r.LongFailed, strings.Join(rs, "; "))
}

const (
	loadRate        = 100 // requests per second
	loadMaxDuration = 4 * time.Minute
)

func startLoad(baseURL string) *load {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	l := &load{cancel: cancel, done: make(chan struct{}), reasons: map[string]int{}}
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second},
	}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / loadRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			long := i%5 == 0
			path := "/api/v1/info"
			if long {
				path = "/api/v1/work?duration=1s"
			}
			l.wg.Go(func() { l.one(client, baseURL+path, long) })
		}
	}()
	return l
}

func (l *load) one(client *http.Client, url string, long bool) {
	l.total.Add(1)
	if long {
		l.long.Add(1)
	}
	sent := time.Now()
	reason := ""
	resp, err := client.Get(url)
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

// stop ends the load, waits for every request in flight, and reports.
func (l *load) stop(began time.Time) loadReport {
	l.cancel()
	<-l.done
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	reasons := map[string]int{}
	for k, v := range l.reasons {
		reasons[k] = v
	}
	return loadReport{Total: l.total.Load(), Failed: l.failed.Load(), Long: l.long.Load(), LongFailed: l.longFailed.Load(),
		Reasons: reasons, Failures: slices.Clone(l.failures), Outcomes: slices.Clone(l.outcomes), Duration: time.Since(began)}
}
