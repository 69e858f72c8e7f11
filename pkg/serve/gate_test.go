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
