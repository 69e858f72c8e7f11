package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP records request metrics labelled by route template.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_http_requests_in_flight",
			Help: "HTTP requests being served now."}),
		children: map[childKey]child{},
	}
	for _, c := range []prometheus.Collector{h.requests, h.duration, h.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Begin marks a request as in flight.
func (h *HTTP) Begin() { h.inFlight.Inc() }

// ObserveRequest records a finished request. route must be a template
// ("/api/v1/items/:key"), never a raw path; methods outside the standard
// nine are recorded as "other".
func (h *HTTP) ObserveRequest(method, route string, code int, d time.Duration) {
	h.inFlight.Dec()
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

// NewRegistry returns a registry with the Go runtime, process and build-info
// collectors, for the admin server's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}
