package serve

import (
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
		go func() { got <- g.awaitIdle(time.Hour) }()
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
		if n := g.awaitIdle(time.Second); n != 1 || time.Since(begin) != time.Second {
			t.Fatalf("awaitIdle = %d after %v; want 1 still running at the 1s bound", n, time.Since(begin))
		}
	})
}
