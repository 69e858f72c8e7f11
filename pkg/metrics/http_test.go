package metrics

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func TestHTTPAndRegistry(t *testing.T) {
	reg := NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond)
	if got := requestsTotal(t, h, "GET", "/api/v1/items/:key", "200"); got != 1 {
		t.Fatalf("requests = %v", got)
	}
	for i := range 50 { // invented methods must not mint series
		h.ObserveRequest(fmt.Sprintf("FOO%d", i), "unmatched", 405, time.Millisecond)
	}
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond) // a cached child counts on
	if got := requestsTotal(t, h, "GET", "/api/v1/items/:key", "200"); got != 2 {
		t.Fatalf("cached requests = %v", got)
	}
	if got := requestsTotal(t, h, "other", "unmatched", "405"); got != 50 {
		t.Fatalf("other-method requests = %v", got)
	}
	if n := testutil.CollectAndCount(h, "berth_http_requests_total"); n != 2 {
		t.Fatalf("series = %d, want 2", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "go_build_info", "berth_http_requests_total"} {
		if !names[n] {
			t.Errorf("registry lacks %s", n)
		}
	}
	if _, err := NewHTTP(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

// Once an invented method has been recorded as "other", the next invented
// method is recorded without the writers' lock: a client sending random
// methods cannot serialise requests on it.
func TestInventedMethodsSkipTheWritersLock(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("FOO1", "unmatched", 405, time.Millisecond)
	h.mu.Lock() // a writer holds the lock
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ObserveRequest("FOO2", "unmatched", 405, time.Millisecond)
	}()
	select {
	case <-done:
		h.mu.Unlock()
	case <-time.After(10 * time.Second):
		h.mu.Unlock()
		<-done
		t.Fatal("recording a second invented method waited for the writers' lock")
	}
	if got := requestsTotal(t, h, "other", "unmatched", "405"); got != 2 {
		t.Fatalf("other-method requests = %v, want 2", got)
	}
}

// Each standard method is its own series, per route and code; any other
// method is "other".
func TestHTTPLabelsEachMethod(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, label string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"PUT", "PUT"}, {"PATCH", "PATCH"},
		{"DELETE", "DELETE"}, {"CONNECT", "CONNECT"}, {"OPTIONS", "OPTIONS"}, {"TRACE", "TRACE"},
		{"get", "other"}, {"PROPFIND", "other"}, {"", "other"},
	} {
		for _, route := range []string{"/a", "/b"} {
			for _, code := range []int{200, 404} {
				before := requestsTotal(t, h, tc.label, route, fmt.Sprint(code))
				h.ObserveRequest(tc.method, route, code, time.Millisecond)
				h.ObserveRequest(tc.method, route, code, time.Millisecond) // the second from the cache
				if got := requestsTotal(t, h, tc.label, route, fmt.Sprint(code)); got != before+2 {
					t.Errorf("%q %s %d: %s series counts %v, want %v", tc.method, route, code, tc.label, got, before+2)
				}
			}
		}
	}
	if n := testutil.CollectAndCount(h, "berth_http_requests_total"); n != 10*2*2 {
		t.Errorf("series = %d, want 40", n)
	}
	if n := testutil.CollectAndCount(h, "berth_http_request_duration_seconds"); n != 10*2 {
		t.Errorf("histograms = %d, want 20", n)
	}
}

// Requests recording label sets not seen yet, at once, lose no count and
// make each series once.
func TestHTTPConcurrentNewLabelSets(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	labels := func(k int) (method, route string, code int) { // 12 label sets
		return [...]string{"GET", "PUT", "DELETE"}[k%3], fmt.Sprintf("/r%d", k/3%2), 200 + k/6
	}
	const workers, each = 8, 240
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				method, route, code := labels((i + w) % 12) // each set met first by any worker
				h.ObserveRequest(method, route, code, time.Millisecond)
			}
		})
	}
	wg.Wait()
	for k := range 12 {
		method, route, code := labels(k)
		if got := requestsTotal(t, h, method, route, fmt.Sprint(code)); got != workers*each/12 {
			t.Errorf("%s %s %d counted %v requests, want %d", method, route, code, got, workers*each/12)
		}
	}
	if n := testutil.CollectAndCount(h, "berth_http_requests_total"); n != 12 {
		t.Errorf("series = %d, want 12", n)
	}
}

// Durations are recorded in seconds, in the bucket they fall in.
func TestHTTPRecordsSeconds(t *testing.T) {
	reg := NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	// The long ones are a request of the reference service's default work
	// cap (15s) and one the drain (20s) would wait for: not +Inf.
	for _, d := range []time.Duration{30 * time.Millisecond, 70 * time.Millisecond, 2 * time.Second, 15 * time.Second, 19 * time.Second, 45 * time.Second} {
		h.ObserveRequest("GET", "/r", 200, d)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "berth_http_request_duration_seconds" {
			continue
		}
		hist := f.GetMetric()[0].GetHistogram()
		if got := hist.GetSampleSum(); math.Abs(got-81.1) > 1e-9 || hist.GetSampleCount() != 6 {
			t.Fatalf("sum %v over %d samples, want 81.1s over 6", got, hist.GetSampleCount())
		}
		want := map[float64]uint64{0.025: 0, 0.05: 1, 0.1: 2, 1: 2, 2.5: 3, 10: 3, 20: 5, 30: 5, 60: 6}
		for _, b := range hist.GetBucket() {
			if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
				t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
			}
			delete(want, b.GetUpperBound())
		}
		if len(want) > 0 {
			t.Errorf("no buckets at %v", want)
		}
		return
	}
	t.Fatal("no berth_http_request_duration_seconds gathered")
}

// The exposition is what client_golang's CounterVec and HistogramVec gave
// in the text formats (TestHTTPCreatedTimestamps checks the rest):
// a counter per method, route and code, and a histogram per method and
// route whose buckets, count and sum add up its codes'. A duration on a
// bucket's bound is within it; a negative one counts as 0.
func TestHTTPExposition(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("GET", "/r", 200, 5*time.Millisecond) // on the first bound: le="0.005"
	h.ObserveRequest("GET", "/r", 200, 70*time.Millisecond)
	h.ObserveRequest("GET", "/r", 404, -time.Second)
	h.ObserveRequest("GET", "/r", 500, 90*time.Second) // past every bound: +Inf only
	h.ObserveRequest("PUT", "/r", 201, 2*time.Second)
	const want = `
# HELP berth_http_request_duration_seconds HTTP request latency, by route template.
# TYPE berth_http_request_duration_seconds histogram
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.005"} 2
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.01"} 2
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.025"} 2
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.05"} 2
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.1"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.25"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="0.5"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="1"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="2.5"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="5"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="10"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="20"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="30"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="60"} 3
berth_http_request_duration_seconds_bucket{method="GET",route="/r",le="+Inf"} 4
berth_http_request_duration_seconds_sum{method="GET",route="/r"} 90.075
berth_http_request_duration_seconds_count{method="GET",route="/r"} 4
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.005"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.01"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.025"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.05"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.1"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.25"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="0.5"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="1"} 0
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="2.5"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="5"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="10"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="20"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="30"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="60"} 1
berth_http_request_duration_seconds_bucket{method="PUT",route="/r",le="+Inf"} 1
berth_http_request_duration_seconds_sum{method="PUT",route="/r"} 2
berth_http_request_duration_seconds_count{method="PUT",route="/r"} 1
# HELP berth_http_requests_total HTTP requests served, by route template.
# TYPE berth_http_requests_total counter
berth_http_requests_total{code="200",method="GET",route="/r"} 2
berth_http_requests_total{code="201",method="PUT",route="/r"} 1
berth_http_requests_total{code="404",method="GET",route="/r"} 1
berth_http_requests_total{code="500",method="GET",route="/r"} 1
`
	if err := testutil.CollectAndCompare(h, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// The sum is kept in integer nanoseconds between scrapes and folded into
// a float before it could wrap, by the request that takes it past foldAt:
// five requests of about 146 years each, unscraped, sum to about 730
// years, not to what a wrapped uint64 would hold.
func TestHTTPSumDoesNotWrap(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	const each = time.Duration(1 << 62)
	for range 5 {
		h.ObserveRequest("GET", "/long", 200, each)
	}
	var sum float64
	for _, m := range collect(t, h) {
		if hist := m.GetHistogram(); hist != nil {
			sum = hist.GetSampleSum()
		}
	}
	if want := 5 * each.Seconds(); math.Abs(sum-want) > want*1e-12 {
		t.Fatalf("sum = %v s, want %v s", sum, want)
	}
}

// Requests recorded while scrapes run lose nothing, and in every scrape
// each histogram's count is the sum of its codes' counters.
func TestHTTPScrapesAgreeWhileRequestsRun(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var observed atomic.Uint64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				h.ObserveRequest("GET", "/r", 200+w%2*300, time.Duration(i%5000)*time.Microsecond)
				observed.Add(1)
			}
		})
	}
	scrape := func() (counted, histogram uint64) {
		for _, m := range collect(t, h) {
			if c := m.GetCounter(); c != nil {
				counted += uint64(c.GetValue())
			}
			if hist := m.GetHistogram(); hist != nil {
				histogram += hist.GetSampleCount()
			}
		}
		return counted, histogram
	}
	for i := range 1000 { // every one while the requests run
		if c, hs := scrape(); c != hs {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("scrape %d: counters sum to %d, the histogram counts %d", i, c, hs)
		}
	}
	stop.Store(true)
	wg.Wait()
	if c, hs := scrape(); c != observed.Load() || hs != observed.Load() {
		t.Fatalf("after the requests: counters %d, histogram %d; want %d", c, hs, observed.Load())
	}
}

// collect is every metric h collects.
func collect(t *testing.T, h *HTTP) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() { h.Collect(ch); close(ch) }()
	var out []*dto.Metric
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		out = append(out, &pb)
	}
	return out
}

// requestsTotal is berth_http_requests_total for one label set as h
// collects it, or 0 when h has no such series.
func requestsTotal(t *testing.T, h *HTTP, method, route, code string) float64 {
	t.Helper()
	var got float64
	for _, m := range collect(t, h) {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.Counter != nil && labels["method"] == method && labels["route"] == route && labels["code"] == code {
			got = m.GetCounter().GetValue()
		}
	}
	return got
}

// Each series carries when it was made, as client_golang's did (Prometheus
// reads it, in the protobuf format, to start a new series at zero): a
// counter when its label set was first seen, a histogram when the first
// of its codes was.
func TestHTTPCreatedTimestamps(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	h.ObserveRequest("GET", "/r", 200, time.Millisecond)
	between := time.Now()
	h.ObserveRequest("GET", "/r", 404, time.Millisecond)
	after := time.Now()
	for _, m := range collect(t, h) {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		var created time.Time
		switch {
		case m.GetCounter() != nil:
			created = m.GetCounter().GetCreatedTimestamp().AsTime()
		case m.GetHistogram() != nil:
			created = m.GetHistogram().GetCreatedTimestamp().AsTime()
		}
		lo, hi := before, between // the 200s' counter and the histogram
		if labels["code"] == "404" {
			lo, hi = between, after
		}
		if created.Before(lo.Truncate(time.Microsecond)) || created.After(hi) {
			t.Errorf("%v: created %v, want between %v and %v", labels, created, lo, hi)
		}
	}
}

// A route that is not valid UTF-8 (a caller's, not Gin's) is one series
// with its bad bytes replaced, and the scrape still succeeds: a label must
// be valid UTF-8, and an invalid one used to fail every later scrape.
func TestHTTPInvalidUTF8RouteIsReplaced(t *testing.T) {
	reg := NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("GET", "/x\xff", 200, time.Millisecond)
	h.ObserveRequest("GET", "/x\xfe", 200, time.Millisecond)
	h.ObserveRequest("GET", "/x\xff", 200, time.Millisecond) // the lookup again, not a new series
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	if got := requestsTotal(t, h, "GET", "/x\uFFFD", "200"); got != 3 {
		t.Errorf("requests on /x\uFFFD = %v, want 3", got)
	}
	if n := testutil.CollectAndCount(h, "berth_http_requests_total"); n != 1 {
		t.Errorf("series = %d, want 1", n)
	}
}

// A request whose duration takes the pending sum past foldAt folds it
// under the lock a scrape folds under: run with -race, this fails if the
// request's fold takes no lock.
func TestHTTPFoldBesideAScrape(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("GET", "/r", 200, 0)
	s := (*h.children.Load())["/r"][0]
	const rounds = 20
	for range rounds {
		s.pending.Add(foldAt - 1) // on top of what the last round left pending
		var wg sync.WaitGroup
		wg.Go(func() { h.ObserveRequest("GET", "/r", 200, time.Second) })
		wg.Go(func() { collect(t, h) })
		wg.Wait()
	}
	var sum float64
	for _, m := range collect(t, h) {
		if hist := m.GetHistogram(); hist != nil {
			sum = hist.GetSampleSum()
		}
	}
	want := rounds * (float64(foldAt-1) + 1e9) / 1e9
	if math.Abs(sum-want) > want*1e-12 {
		t.Fatalf("sum = %v s, want %v s", sum, want)
	}
}

// A series keeps the method's constant as its label, not the request's
// string: net/http's is a slice of the request line, URL and query
// included, which would stay in memory for as long as the series.
func TestHTTPKeepsNoRequestsMethodString(t *testing.T) {
	h, err := NewHTTP(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	line := "GET /api/v1/items/k?token=secret HTTP/1.1"
	method, _, _ := strings.Cut(strings.Clone(line), " ")
	h.ObserveRequest(method, "/api/v1/items/:key", 200, time.Millisecond)
	s := (*h.children.Load())["/api/v1/items/:key"][0]
	if unsafe.StringData(s.method) != unsafe.StringData(http.MethodGet) {
		t.Fatal("the series' method label is the request's string, not http.MethodGet")
	}
}
