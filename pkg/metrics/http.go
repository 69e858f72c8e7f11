package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP records request metrics labelled by route template.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// children caches each label set's counter and histogram, so a request
	// costs one map read instead of two label hashes and a code string.
	mu       sync.RWMutex
	children map[childKey]child
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
// clients inventing methods cannot grow the series set.
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodConnect: http.MethodConnect, http.MethodOptions: http.MethodOptions, http.MethodTrace: http.MethodTrace,
}

// NewHTTP registers the HTTP request metrics with reg.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_http_requests_total",
			Help: "HTTP requests served, by route template."}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_http_request_duration_seconds",
			Help: "HTTP request latency, by route template.", Buckets: prometheus.DefBuckets}, []string{"method", "route"}),
		children: map[childKey]child{},
	}
	if err := register(reg, h.requests, h.duration); err != nil {
		return nil, err
	}
	return h, nil
}

// ObserveRequest records a finished request. route must be a template
// ("/api/v1/items/:key"), never a raw path; methods outside the standard
// nine are recorded as "other".
func (h *HTTP) ObserveRequest(method, route string, code int, d time.Duration) {
	m, ok := knownMethods[method]
	if !ok {
		m = "other"
	}
	c := h.child(childKey{m, route, code})
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
}

func (h *HTTP) child(k childKey) child {
	h.mu.RLock()
	c, ok := h.children[k]
	h.mu.RUnlock()
	if ok {
		return c
	}
	c = child{
		requests: h.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.code)),
		duration: h.duration.WithLabelValues(k.method, k.route),
	}
	h.mu.Lock()
	h.children[k] = c
	h.mu.Unlock()
	return c
}
