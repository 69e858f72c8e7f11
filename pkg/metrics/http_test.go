package metrics

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHTTPAndRegistry(t *testing.T) {
	reg := NewRegistry()
	h, err := NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond)
	if got := testutil.ToFloat64(h.requests.WithLabelValues("GET", "/api/v1/items/:key", "200")); got != 1 {
		t.Fatalf("requests = %v", got)
	}
	for i := range 50 { // invented methods must not mint series
		h.ObserveRequest(fmt.Sprintf("FOO%d", i), "unmatched", 405, time.Millisecond)
	}
	h.ObserveRequest("GET", "/api/v1/items/:key", 200, 10*time.Millisecond) // a cached child counts on
	if got := testutil.ToFloat64(h.requests.WithLabelValues("GET", "/api/v1/items/:key", "200")); got != 2 {
		t.Fatalf("cached requests = %v", got)
	}
	if got := testutil.ToFloat64(h.requests.WithLabelValues("other", "unmatched", "405")); got != 50 {
		t.Fatalf("other-method requests = %v", got)
	}
	if n := testutil.CollectAndCount(h.requests); n != 2 {
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
	defer h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ObserveRequest("FOO2", "unmatched", 405, time.Millisecond)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("recording a second invented method waited for the writers' lock")
	}
	if got := testutil.ToFloat64(h.requests.WithLabelValues("other", "unmatched", "405")); got != 2 {
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
				before := testutil.ToFloat64(h.requests.WithLabelValues(tc.label, route, fmt.Sprint(code)))
				h.ObserveRequest(tc.method, route, code, time.Millisecond)
				h.ObserveRequest(tc.method, route, code, time.Millisecond) // the second from the cache
				if got := testutil.ToFloat64(h.requests.WithLabelValues(tc.label, route, fmt.Sprint(code))); got != before+2 {
					t.Errorf("%q %s %d: %s series counts %v, want %v", tc.method, route, code, tc.label, got, before+2)
				}
			}
		}
	}
	if n := testutil.CollectAndCount(h.requests); n != 10*2*2 {
		t.Errorf("series = %d, want 40", n)
	}
	if n := testutil.CollectAndCount(h.duration); n != 10*2 {
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
		if got := testutil.ToFloat64(h.requests.WithLabelValues(method, route, fmt.Sprint(code))); got != workers*each/12 {
			t.Errorf("%s %s %d counted %v requests, want %d", method, route, code, got, workers*each/12)
		}
	}
	if n := testutil.CollectAndCount(h.requests); n != 12 {
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
