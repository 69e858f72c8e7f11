package metrics

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

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

// Handler serves reg in the format the scraper asks for: OpenMetrics,
// Prometheus's protobuf or its classic text format. It panics if reg is
// nil: every scrape would fail.
func Handler(reg *prometheus.Registry) http.Handler {
	if reg == nil {
		panic("metrics: Handler with a nil *prometheus.Registry: every scrape would fail; pass the registry the metrics are registered on (NewRegistry makes one)")
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// register registers every collector for the function named by what, or
// none: at the first error it unregisters those it registered (so a caller
// can fix the cause and try again) and returns the error, naming the
// metrics that collided and adding hint.
func register(reg prometheus.Registerer, what, hint string, cs ...prometheus.Collector) error {
	if isNil(reg) {
		return fmt.Errorf("metrics: %s with a nil prometheus.Registerer: pass the registry the admin server serves (NewRegistry makes one)", what)
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("metrics: %s: registering %s: %w; %s", what, strings.Join(metricNames(c), ", "), err, hint)
		}
	}
	return nil
}

// isNil reports whether r (a Registerer or a Gatherer) is nil, or an
// interface holding a nil pointer (a *prometheus.Registry declared and
// never made), which would panic at its first use.
func isNil(r any) bool {
	if r == nil {
		return true
	}
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// onceHint is register's hint for metrics a process registers once.
const onceHint = "register them once per registry"

// metricNames are the names of the metrics c describes.
func metricNames(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// fqName finds a metric's name in a *prometheus.Desc's String, which is
// all that type shows of it.
var fqName = regexp.MustCompile(`fqName: "([^"]*)"`)

// validLabel is s as a label value can hold it: bytes that are not UTF-8
// become U+FFFD, where client_golang would panic (and a collector's panic
// fails the whole scrape).
func validLabel(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
