package metrics

import (
	"errors"
	"time"

	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	signalTimeDesc = prometheus.NewDesc("berth_lifecycle_signal_timestamp_seconds",
		"When each lifecycle signal was signalled (Unix time); absent until it is.", []string{"signal"}, nil)
	currentSignalDesc = prometheus.NewDesc("berth_lifecycle_signal",
		"1 for the lifecycle signal signalled last, 0 for the others.", []string{"signal"}, nil)
	readyDesc = prometheus.NewDesc("berth_ready",
		"1 from StartupComplete until ReadinessFailing, else 0.", nil, nil)
	inFlightDesc = prometheus.NewDesc("berth_http_requests_in_flight",
		"API requests being served now.", nil, nil)
	turnedAwayDesc = prometheus.NewDesc("berth_http_requests_turned_away_total",
		"API requests answered 503 because startup had not completed.", nil, nil)
	shutdownDurationDesc = prometheus.NewDesc("berth_shutdown_duration_seconds",
		"How long the shutdown took, ShutdownInitiated to ShutdownComplete; absent until it completes.", nil, nil)
	servedDuringDelayDesc = prometheus.NewDesc("berth_drain_served_during_delay",
		"Requests that arrived during the shutdown's drain delay, counted live from ReadinessFailing; absent before it.", nil, nil)
	inFlightAtDrainDesc = prometheus.NewDesc("berth_drain_in_flight_at_drain_start",
		"Requests in flight when the drain started (DrainStarted); absent until the shutdown completes.", nil, nil)
	cutOffDesc = prometheus.NewDesc("berth_drain_cut_off_requests",
		"Requests cut off by the drain timeout; absent until the shutdown completes.", nil, nil)
	budgetDesc = prometheus.NewDesc("berth_shutdown_budget_seconds",
		"The longest the shutdown can take with the server's settings: preStop + drain delay (after a preStop sleep without one, 1s to close keep-alive connections) + drain timeout + stop timeout (+ sidecar quit, + final report) + margin.", nil, nil)
	graceDesc = prometheus.NewDesc("berth_grace_period_seconds",
		"The pod's terminationGracePeriodSeconds, as the server was told (BERTH_GRACE_PERIOD); absent when it was not.", nil, nil)
	preStopDesc = prometheus.NewDesc("berth_prestop_delay_seconds",
		"The pod's preStop sleep, as the server was told (BERTH_PRESTOP_DELAY): the grace period counts it, the shutdown duration (from SIGTERM) does not; 0 for none.", nil, nil)
	drainDurationDesc = prometheus.NewDesc("berth_drain_duration_seconds",
		"How long the wait for in-flight requests took, DrainStarted to InFlightDrained; absent until the shutdown completes.", nil, nil)
)

// server collects a serve.Server's figures at scrape time: nothing is
// copied, so a scrape sees the signals and the gate as they are.
type server struct{ srv *serve.Server }

// RegisterServer registers a collector of srv's lifecycle with reg: the
// signals' times, readiness, the requests in flight and those turned away
// by the startup gate, and, once the shutdown is complete, its report.
func RegisterServer(reg prometheus.Registerer, srv *serve.Server) error {
	if srv == nil {
		return errors.New("metrics: RegisterServer with a nil *serve.Server: every scrape would fail")
	}
	return register(reg, "RegisterServer", onceHint, server{srv})
}

func (c server) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{signalTimeDesc, currentSignalDesc, readyDesc, inFlightDesc, turnedAwayDesc,
		budgetDesc, graceDesc, preStopDesc, shutdownDurationDesc, servedDuringDelayDesc, inFlightAtDrainDesc, cutOffDesc, drainDurationDesc} {
		ch <- d
	}
}

// agree reports whether a reading of the signals holds together: latest
// (read before the times at) is still the latest (again, read after
// them), and no signal has a time later than latest's, or any time while
// none is latest, as one caught between storing its time and taking its
// place in the order would.
func agree(latest *serve.Signal, at map[*serve.Signal]time.Time, again *serve.Signal) bool {
	if again != latest {
		return false
	}
	for _, t := range at {
		if !t.IsZero() && (latest == nil || t.After(at[latest])) {
			return false
		}
	}
	return true
}

func (c server) Collect(ch chan<- prometheus.Metric) {
	sig := c.srv.Signals()
	all := sig.All()
	// One reading of the signals for the whole scrape, taken again if one
	// was signalled while it was read (the latest changed, or a signal
	// had its time but not yet its place in the order, so that a time
	// later than the latest's shows): the signal shown as the latest, the
	// times and berth_ready agree with each other. (No test reaches the
	// retry in Collect, as a signal would have to fire between two atomic
	// loads; agree's own test fabricates such readings.)
	var latest *serve.Signal
	at := make(map[*serve.Signal]time.Time, len(all))
	for range 3 {
		latest = sig.Latest()
		for _, s := range all {
			at[s] = s.At()
		}
		if agree(latest, at, sig.Latest()) {
			break
		}
	}
	for _, s := range all {
		if !at[s].IsZero() {
			ch <- prometheus.MustNewConstMetric(signalTimeDesc, prometheus.GaugeValue, float64(at[s].UnixNano())/1e9, s.Name())
		}
		current := 0.0
		if s == latest {
			current = 1
		}
		ch <- prometheus.MustNewConstMetric(currentSignalDesc, prometheus.GaugeValue, current, s.Name())
	}
	ready := 0.0
	if !at[sig.StartupComplete].IsZero() && at[sig.ReadinessFailing].IsZero() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(c.srv.InFlight()))
	ch <- prometheus.MustNewConstMetric(turnedAwayDesc, prometheus.CounterValue, float64(c.srv.TurnedAway()))
	ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, c.srv.Budget().Seconds())
	if g := c.srv.GracePeriod(); g > 0 {
		ch <- prometheus.MustNewConstMetric(graceDesc, prometheus.GaugeValue, g.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(preStopDesc, prometheus.GaugeValue, c.srv.PreStopDelay().Seconds())
	if !at[sig.ReadinessFailing].IsZero() { // live, so a scrape during the delay sees it move
		ch <- prometheus.MustNewConstMetric(servedDuringDelayDesc, prometheus.GaugeValue, float64(c.srv.ServedDuringDelay()))
	}
	if r, ok := c.srv.Report(); ok {
		ch <- prometheus.MustNewConstMetric(shutdownDurationDesc, prometheus.GaugeValue, r.Total.Seconds())
		ch <- prometheus.MustNewConstMetric(inFlightAtDrainDesc, prometheus.GaugeValue, float64(r.InFlightAtDrainStart))
		ch <- prometheus.MustNewConstMetric(cutOffDesc, prometheus.GaugeValue, float64(r.CutOff))
		ch <- prometheus.MustNewConstMetric(drainDurationDesc, prometheus.GaugeValue, r.Drain.Seconds())
	}
}
