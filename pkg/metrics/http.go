package metrics

import (
	"net/http"
	"strconv"
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
// ("/api/v1/items/:key"), never a raw path.
func (h *HTTP) ObserveRequest(method, route string, code int, d time.Duration) {
	h.inFlight.Dec()
	h.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	h.duration.WithLabelValues(method, route).Observe(d.Seconds())
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
