package serve

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// gate wraps the API handler. Before StartupComplete it answers 503 with
// Retry-After; from ReadinessFailing on it asks clients to close their
// connections and notes when requests arrive, for the quiet period; it
// counts requests in flight for the drain. Every decision is a read of a
// lifecycle signal.
type gate struct {
	next       http.Handler
	sig        *Signals
	retryAfter string

	inFlight    atomic.Int64
	turnedAway  atomic.Int64 // answered 503 before startup completed
	duringDelay atomic.Int64 // arrived between ReadinessFailing and DrainStarted
	lastArrival atomic.Int64 // unix nanos of the last such arrival
}

func newGate(next http.Handler, sig *Signals, retryAfter time.Duration) *gate {
	secs := max(ceilSeconds(retryAfter), 1)
	return &gate{next: next, sig: sig, retryAfter: strconv.FormatInt(secs, 10)}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.sig.StartupComplete.Signalled() {
		g.turnedAway.Add(1)
		h := w.Header()
		h.Set("Retry-After", g.retryAfter)
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"service is starting; retry later"}` + "\n"))
		return
	}
	g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	if g.sig.ReadinessFailing.Signalled() {
		// Each response closes its connection, so the client's next request
		// opens a new one, which the Service routes to a pod that stays.
		w.Header().Set("Connection", "close")
		if !g.sig.DrainStarted.Signalled() {
			g.duringDelay.Add(1)
			g.lastArrival.Store(time.Now().UnixNano())
		}
	}
	g.next.ServeHTTP(w, r)
}
