package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP records request metrics labelled by route template.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// children caches each label set's counter and histogram, so a request
	// costs one map read instead of two label hashes and a code string. It
	// is copied on write: requests read it without a lock, and a new label
	// set (rare: routes, methods and codes are few) replaces it whole.
	children atomic.Pointer[map[childKey]child]
	mu       sync.Mutex // serialises writers of children
}

type childKey struct {
	method, route string
	code          int
}

type child struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// knownMethods are labelled as themselves; any other method is "other", so
// clients inventing methods cannot grow the series set (or the cache).
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
	http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// durationBuckets are the latency histogram's bucket bounds, in seconds:
// client_golang's defaults (5ms to 10s) and 20s, 30s and 60s above them, so
// a long request (the reference service allows 15s by default, and a drain
// waits 20s) lands in a bucket of its own, not in +Inf, where a quantile
// would read it as 10s.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60}

// NewHTTP registers the HTTP request metrics with reg. The latency
// histogram's buckets run from 5ms to 60s: client_golang's defaults, with
// 20s, 30s and 60s added for long requests.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_http_requests_total",
			Help: "HTTP requests served, by route template."}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_http_request_duration_seconds",
			Help: "HTTP request latency, by route template.", Buckets: durationBuckets}, []string{"method", "route"}),
	}
	h.children.Store(&map[childKey]child{})
	if err := register(reg, "NewHTTP", onceHint+" (one HTTP serves every route of an engine)", h.requests, h.duration); err != nil {
		return nil, err
	}
	return h, nil
}

// ObserveRequest records a finished request. route must be a template
// ("/api/v1/items/:key"), never a raw path; methods outside the standard
// nine are recorded as "other".
func (h *HTTP) ObserveRequest(method, route string, code int, d time.Duration) {
	c, ok := (*h.children.Load())[childKey{method, route, code}]
	if !ok && !knownMethods[method] {
		// An invented method is cached as "other": look that up before
		// taking the writers' lock, so a client sending random methods
		// does not serialise every request on it.
		method = "other"
		c, ok = (*h.children.Load())[childKey{method, route, code}]
	}
	if !ok {
		c = h.addChild(method, route, code)
	}
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
}

// addChild makes the counter and histogram of a label set not seen yet and
// caches them; method is one of knownMethods or "other".
func (h *HTTP) addChild(method, route string, code int) child {
	k := childKey{method, route, code}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.children.Load()
	if c, ok := old[k]; ok {
		return c
	}
	c := child{
		requests: h.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.code)),
		duration: h.duration.WithLabelValues(k.method, k.route),
	}
	next := make(map[childKey]child, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = c
	h.children.Store(&next)
	return c
}
