package metrics

import (
	"maps"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP records request metrics labelled by route template:
// berth_http_requests_total{method,route,code} and the latency histogram
// berth_http_request_duration_seconds{method,route}.
//
// It is a collector of its own rather than a client_golang CounterVec and
// HistogramVec, because it sits on every request's path: a request costs
// one lock-free map read and two atomic additions (its bucket and the sum,
// in integer nanoseconds), where the pair of client_golang metrics costs
// five or six atomic operations and a float conversion. Each label set of
// the counter keeps its own bucket counts, so the counter and the
// histogram's _count are both sums of them, and agree in every scrape. A
// scrape that runs beside a request may see that request's bucket but not
// yet its duration in _sum (or the reverse); the next scrape sees both.
// The exposition has the series, labels, buckets and created timestamps
// the client_golang pair had; _sum is summed in nanoseconds, so it can
// differ from theirs in the last digits of a float.
type HTTP struct {
	requests, duration *prometheus.Desc

	// children holds each route's series, one per method and code, so a
	// request costs one map read by route and a short scan. It is copied on
	// write: requests read it without a lock, and a new label set (rare:
	// routes, methods and codes are few) replaces it whole.
	children atomic.Pointer[map[string][]*series]
	mu       sync.Mutex // serialises writers of children, and folds of sums
}

// series is one label set's figures.
type series struct {
	method, route, code string // the labels
	status              int    // code, as a number
	created             time.Time

	// buckets counts requests by the first bound of durationBounds they are
	// within; the last counts those longer than every bound. They are not
	// cumulative: a request adds to one.
	buckets [len(durationBuckets) + 1]atomic.Uint64
	// pending is the sum of durations, in nanoseconds, not yet folded into
	// sum; folding (under HTTP.mu) keeps it far from overflowing.
	pending atomic.Uint64
	sum     float64 // seconds; guarded by HTTP.mu
}

// foldAt is where a request folds its series' pending sum into the float
// sum, though no scrape has: 2^62 ns is about 146 years of summed request
// time, and the 2^64 where pending would wrap is three times as far, more
// than millions of hour-long requests ending at once add.
const foldAt = 1 << 62

// knownMethods are labelled as themselves; any other method is "other", so
// clients inventing methods cannot grow the series set (or the cache).
// Each maps to its constant, which the series keeps as its label rather
// than the request's string (net/http's is a slice of the request line,
// which would stay in memory with it).
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodConnect: http.MethodConnect, http.MethodOptions: http.MethodOptions, http.MethodTrace: http.MethodTrace,
}

// durationBuckets are the latency histogram's bucket bounds, in seconds:
// client_golang's defaults (5ms to 10s) and 20s, 30s and 60s above them, so
// a long request (the reference service allows 15s by default, and a drain
// waits 20s) lands in a bucket of its own, not in +Inf, where a quantile
// would read it as 10s.
var durationBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60}

// durationBounds are durationBuckets as durations, which a request's
// duration is compared with exactly: a request of 5ms is within le="0.005".
var durationBounds = func() (b [len(durationBuckets)]time.Duration) {
	for i, s := range durationBuckets {
		b[i] = time.Duration(math.Round(s * float64(time.Second)))
	}
	return b
}()

// NewHTTP registers the HTTP request metrics with reg. The latency
// histogram's buckets run from 5ms to 60s: client_golang's defaults, with
// 20s, 30s and 60s added for long requests.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewDesc("berth_http_requests_total",
			"HTTP requests served, by route template.", []string{"method", "route", "code"}, nil),
		duration: prometheus.NewDesc("berth_http_request_duration_seconds",
			"HTTP request latency, by route template.", []string{"method", "route"}, nil),
	}
	h.children.Store(&map[string][]*series{})
	if err := register(reg, "NewHTTP", onceHint+" (one HTTP serves every route of an engine)", h); err != nil {
		return nil, err
	}
	return h, nil
}

// ObserveRequest records a finished request. route must be a template
// ("/api/v1/items/:key"), never a raw path; methods outside the standard
// nine are recorded as "other", and bytes of route that are not valid
// UTF-8 as U+FFFD. A negative d is recorded as 0.
func (h *HTTP) ObserveRequest(method, route string, code int, d time.Duration) {
	s := find((*h.children.Load())[route], method, code)
	if s == nil {
		s = h.labelled(method, route, code)
	}
	d = max(d, 0)
	i := 0
	for i < len(durationBounds) && d > durationBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
	if s.pending.Add(uint64(d)) >= foldAt {
		h.mu.Lock()
		s.fold()
		h.mu.Unlock()
	}
}

// fold moves the pending nanoseconds into the float sum; the caller holds
// HTTP.mu.
func (s *series) fold() { s.sum += float64(s.pending.Swap(0)) / float64(time.Second) }

// find returns the series of method and code among a route's, or nil.
func find(route []*series, method string, code int) *series {
	for _, s := range route {
		if s.status == code && s.method == method {
			return s
		}
	}
	return nil
}

// labelled finds the series of a request whose labels are not cached as
// they came: an invented method is "other", and a route that is not valid
// UTF-8 (no Gin template is) has its bad bytes replaced, as a label must be
// valid. Both are looked up again before taking the writers' lock, so a
// client sending random methods does not serialise every request on it.
func (h *HTTP) labelled(method, route string, code int) *series {
	if m, ok := knownMethods[method]; ok {
		method = m
	} else {
		method = "other"
	}
	route = validLabel(route)
	if s := find((*h.children.Load())[route], method, code); s != nil {
		return s
	}
	return h.addChild(method, route, code)
}

// addChild makes the series of a label set not seen yet and caches it;
// method is one of knownMethods or "other", and route is valid UTF-8.
func (h *HTTP) addChild(method, route string, code int) *series {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.children.Load()
	if s := find(old[route], method, code); s != nil {
		return s
	}
	s := &series{method: method, route: route, code: strconv.Itoa(code), status: code, created: time.Now()}
	next := maps.Clone(old)
	next[route] = append(old[route][:len(old[route]):len(old[route])], s)
	h.children.Store(&next)
	return s
}

// Describe implements prometheus.Collector.
func (h *HTTP) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.requests
	ch <- h.duration
}

// Collect implements prometheus.Collector: a counter per label set, and a
// histogram per method and route that adds up their codes' buckets (made
// when the first of them was). It reads under the writers' lock, folding
// each pending sum, and makes and sends the metrics after releasing it, so
// a slow scrape never holds up a request's new label set.
func (h *HTTP) Collect(ch chan<- prometheus.Metric) {
	type histKey struct{ method, route string }
	type hist struct {
		counts  [len(durationBuckets) + 1]uint64
		sum     float64
		created time.Time
	}
	type counter struct {
		s *series
		n uint64
	}
	var counters []counter
	hists := map[histKey]*hist{}
	h.mu.Lock()
	for _, s := range allSeries(*h.children.Load()) {
		k := histKey{s.method, s.route}
		hs := hists[k]
		if hs == nil {
			hs = &hist{created: s.created}
			hists[k] = hs
		}
		s.fold()
		hs.sum += s.sum
		if s.created.Before(hs.created) {
			hs.created = s.created
		}
		var n uint64
		for i := range s.buckets {
			c := s.buckets[i].Load()
			hs.counts[i] += c
			n += c
		}
		counters = append(counters, counter{s, n})
	}
	h.mu.Unlock()
	for _, c := range counters {
		ch <- orInvalid(h.requests)(prometheus.NewConstMetricWithCreatedTimestamp(h.requests, prometheus.CounterValue,
			float64(c.n), c.s.created, c.s.method, c.s.route, c.s.code))
	}
	for k, hs := range hists {
		buckets := make(map[float64]uint64, len(durationBuckets))
		var n uint64
		for i, c := range hs.counts {
			n += c
			if i < len(durationBuckets) {
				buckets[durationBuckets[i]] = n
			}
		}
		ch <- orInvalid(h.duration)(prometheus.NewConstHistogramWithCreatedTimestamp(h.duration, n, hs.sum, buckets, hs.created, k.method, k.route))
	}
}

// orInvalid passes a made metric on, or one that fails the scrape with err
// instead of panicking: labels are valid by construction (see labelled),
// so err would be a bug here.
func orInvalid(desc *prometheus.Desc) func(prometheus.Metric, error) prometheus.Metric {
	return func(m prometheus.Metric, err error) prometheus.Metric {
		if err != nil {
			return prometheus.NewInvalidMetric(desc, err)
		}
		return m
	}
}

// allSeries lists every route's series.
func allSeries(children map[string][]*series) []*series {
	var all []*series
	for _, route := range children {
		all = append(all, route...)
	}
	return all
}
