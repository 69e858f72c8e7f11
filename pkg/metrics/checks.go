package metrics

import (
	"errors"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	checkUpDesc = prometheus.NewDesc("berth_check_up",
		"1 if the check's last thresholded result is passing, else 0, from the cached result; one series per probe the check belongs to; absent until the check's first run.", []string{"check", "probe"}, nil)
	checkFailuresDesc = prometheus.NewDesc("berth_check_failures_total",
		"Runs of the check that failed; 0 from the start.", []string{"check"}, nil)
	checkDurationDesc = prometheus.NewDesc("berth_check_duration_seconds",
		"How long the check's last run took.", []string{"check"}, nil)
	checkLastRunDesc = prometheus.NewDesc("berth_check_last_run_timestamp_seconds",
		"When the check last ran (Unix time); absent before its first run.", []string{"check"}, nil)
)

// checks collects probe results at scrape time from the registry's cache.
type checks struct{ reg *probes.Registry }

// RegisterChecks registers a collector of every check's cached result. A
// scrape never runs a check.
func RegisterChecks(reg prometheus.Registerer, p *probes.Registry) error {
	if p == nil {
		return errors.New("metrics: RegisterChecks with a nil *probes.Registry: every scrape would fail")
	}
	return register(reg, "RegisterChecks", onceHint, checks{reg: p})
}

func (c checks) Describe(ch chan<- *prometheus.Desc) {
	ch <- checkUpDesc
	ch <- checkFailuresDesc
	ch <- checkDurationDesc
	ch <- checkLastRunDesc
}

func (c checks) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.reg.Results() {
		ch <- prometheus.MustNewConstMetric(checkFailuresDesc, prometheus.CounterValue, float64(r.Failures), r.Name)
		if r.Ran {
			up := 0.0
			if r.Passing {
				up = 1
			}
			for _, k := range []probes.Kind{probes.Liveness, probes.Readiness, probes.Startup} {
				if r.Kind&k != 0 {
					ch <- prometheus.MustNewConstMetric(checkUpDesc, prometheus.GaugeValue, up, r.Name, k.String())
				}
			}
			ch <- prometheus.MustNewConstMetric(checkDurationDesc, prometheus.GaugeValue, r.Duration.Seconds(), r.Name)
			ch <- prometheus.MustNewConstMetric(checkLastRunDesc, prometheus.GaugeValue, float64(r.LastRun.UnixNano())/1e9, r.Name)
		}
	}
}
