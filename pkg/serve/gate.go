package serve

import (
	"context"
	"net/http"
	"strconv"
	"sync"
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
	awaited     atomic.Bool // awaitIdle is or was waiting: the last request out closes idle
	idleMu      sync.Mutex
	idle        chan struct{} // closed, and replaced, each time the gate empties once awaited
	turnedAway  atomic.Int64  // answered 503 before startup completed
	duringDelay atomic.Int64  // arrived between ReadinessFailing and DrainStarted
	lastArrival atomic.Int64  // nanoseconds from clockBase to the last such arrival, on the monotonic clock
}

func newGate(next http.Handler, sig *Signals, retryAfter time.Duration) *gate {
	secs := max(ceilSeconds(retryAfter), 1)
	return &gate{next: next, sig: sig, retryAfter: strconv.FormatInt(secs, 10), idle: make(chan struct{})}
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
	defer g.left()
	if g.sig.ReadinessFailing.Signalled() {
		// Each response closes its connection, so the client's next request
		// opens a new one, which the Service routes to a pod that stays.
		w.Header().Set("Connection", "close")
		if !g.sig.DrainStarted.Signalled() {
			g.duringDelay.Add(1)
			g.lastArrival.Store(int64(time.Since(clockBase)))
		}
	}
	g.next.ServeHTTP(w, r)
}

// clockBase anchors the gate's arrival times on the monotonic clock: they
// are compared with signal times to end the quiet period, and must not
// move when the wall clock steps.
var clockBase = time.Now()

// lastArrivalTime is when the last request arrived after ReadinessFailing,
// or the zero Time if none did.
func (g *gate) lastArrivalTime() time.Time {
	if n := g.lastArrival.Load(); n != 0 {
		return clockBase.Add(time.Duration(n))
	}
	return time.Time{}
}

// left counts a request out; the last one out once awaitIdle has been
// called wakes its waiters.
func (g *gate) left() {
	if g.inFlight.Add(-1) == 0 && g.awaited.Load() {
		g.idleMu.Lock()
		close(g.idle)
		g.idle = make(chan struct{})
		g.idleMu.Unlock()
	}
}

// awaitIdle waits until no request is in flight, or ctx ends, and returns
// how many still are. It can be called again after the gate emptied and
// filled (a keep-alive connection's next request), and waits again. (It
// and left each write before they read what the other writes, so one of
// them sees the other's write: the request that empties the gate closes
// the channel awaitIdle holds, or awaitIdle sees the gate empty.)
func (g *gate) awaitIdle(ctx context.Context) int64 {
	g.awaited.Store(true)
	for {
		g.idleMu.Lock()
		idle := g.idle
		g.idleMu.Unlock()
		if n := g.inFlight.Load(); n == 0 || ctx.Err() != nil {
			return n
		}
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
}
