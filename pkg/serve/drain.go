package serve

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// gate wraps the API handler: 503 before startup completes, and during the
// drain it counts requests and asks clients to close their connections.
type gate struct {
	next       http.Handler
	retryAfter string

	ready      atomic.Bool
	draining   atomic.Bool
	delayOver  atomic.Bool
	inFlight   atomic.Int64
	duringWait atomic.Int64 // requests that arrived during the drain delay
}

func newGate(next http.Handler, retryAfter time.Duration) *gate {
	secs := max(int64((retryAfter+time.Second-1)/time.Second), 1)
	return &gate{next: next, retryAfter: strconv.FormatInt(secs, 10)}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		w.Header().Set("Retry-After", g.retryAfter)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"service is starting; retry later"}` + "\n"))
		return
	}
	g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	if g.draining.Load() {
		// Each response closes its connection, so the client's next request
		// opens a new one, which the Service routes to a pod that stays.
		w.Header().Set("Connection", "close")
		if !g.delayOver.Load() {
			g.duringWait.Add(1)
		}
	}
	g.next.ServeHTTP(w, r)
}

// DrainReport is what a shutdown did, for logs and metrics.
type DrainReport struct {
	// Signal is what started the shutdown ("terminated", "interrupt",
	// "shutdown called", "context done").
	Signal string
	// ServedDuringDelay counts requests that arrived during the drain delay;
	// InFlightAtDelayEnd those still running at T1; CutOff those still
	// running when the drain timeout ended the wait.
	ServedDuringDelay  int64
	InFlightAtDelayEnd int64
	CutOff             int64
	// The phases' durations: T0..T1, T1..T2, T2..T3, the sidecar quit, and
	// the whole shutdown.
	Delay, Drain, Stop, Quit, Total time.Duration
	// Err is the shutdown's joined error; nil for a clean one.
	Err error
}

// DrainObserver receives a shutdown's figures before Run returns.
type DrainObserver interface {
	ObserveDrain(DrainReport)
}
