package metrics

import (
	"fmt"
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
