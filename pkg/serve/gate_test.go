package serve

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// awaitIdle returns as soon as the requests in flight when it was called
// have finished, however many requests finished before it was called, and
// no later than its bound while one is still running.
func TestAwaitIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		g := newGate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/held" {
				<-release
			}
		}), newSignals(), time.Second)
		g.sig.StartupComplete.signal()
		serve := func(path string) { g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil)) }

		serve("/quick") // in and out before anyone awaits: the gate was empty once already
		go serve("/held")
		go serve("/held")
		synctest.Wait()
		begin := time.Now()
		got := make(chan int64, 1)
		go func() { got <- g.awaitIdle(t.Context()) }()
		synctest.Wait()
		select {
		case n := <-got:
			t.Fatalf("awaitIdle returned %d while two requests were in flight", n)
		default:
		}
		close(release)
		if n := <-got; n != 0 || time.Since(begin) != 0 {
			t.Fatalf("awaitIdle = %d after %v; want 0 as soon as the requests finished", n, time.Since(begin))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		g := newGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }), newSignals(), time.Second)
		g.sig.StartupComplete.signal()
		go g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		synctest.Wait()
		begin := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if n := g.awaitIdle(ctx); n != 1 || time.Since(begin) != time.Second {
			t.Fatalf("awaitIdle = %d after %v; want 1 still running at the 1s bound", n, time.Since(begin))
		}
	})
	// The gate empties and fills again (a keep-alive connection's next
	// request): a second awaitIdle waits for that request too. The first
	// emptying once made every later awaitIdle return at once.
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{}, 2)
		g := newGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }), newSignals(), time.Second)
		g.sig.StartupComplete.signal()
		serve := func() { g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) }
		for round := range 2 {
			go serve()
			synctest.Wait()
			got := make(chan int64, 1)
			go func() { got <- g.awaitIdle(t.Context()) }()
			synctest.Wait()
			select {
			case n := <-got:
				t.Fatalf("round %d: awaitIdle returned %d while a request was in flight", round+1, n)
			default:
			}
			release <- struct{}{}
			if n := <-got; n != 0 {
				t.Fatalf("round %d: awaitIdle = %d, want 0 once the request finished", round+1, n)
			}
		}
	})
}

// The gate counts a request as served during the delay, and notes its
// arrival for the quiet period, only between ReadinessFailing and
// DrainStarted; from ReadinessFailing on, every response asks its client
// to close the connection.
func TestGateCountsArrivalsDuringTheDelayOnly(t *testing.T) {
	g := newGate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), newSignals(), time.Second)
	g.sig.StartupComplete.signal()
	var lastBefore int64
	for _, step := range []struct {
		name   string
		signal *Signal
		during int64 // g.duringDelay after the request
		closes bool
		noted  bool // the request's arrival is the last one noted
	}{
		{"serving", nil, 0, false, false},
		{"readiness failing", g.sig.ReadinessFailing, 1, true, true},
		{"drain started", g.sig.DrainStarted, 1, true, false},
	} {
		if step.signal != nil {
			step.signal.signal()
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := g.duringDelay.Load(); got != step.during {
			t.Errorf("%s: served during the delay %d, want %d", step.name, got, step.during)
		}
		if got := rec.Header().Get("Connection") == "close"; got != step.closes {
			t.Errorf("%s: Connection: close %v, want %v", step.name, got, step.closes)
		}
		last := g.lastArrival.Load()
		if noted := last != lastBefore; noted != step.noted {
			t.Errorf("%s: arrival noted %v, want %v", step.name, noted, step.noted)
		}
		lastBefore = last
	}
}
