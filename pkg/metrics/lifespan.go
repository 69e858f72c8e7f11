package metrics

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
)

// Lifespan records lifespan events and shutdown figures. It is a
// lifespan.Observer and a serve.DrainObserver.
type Lifespan struct {
	hookDuration     *prometheus.GaugeVec
	hookFailures     *prometheus.CounterVec
	taskFailures     *prometheus.CounterVec
	startupDuration  *prometheus.GaugeVec
	shutdownDuration *prometheus.GaugeVec
	phase            *prometheus.GaugeVec
	ready            *prometheus.GaugeVec
	servedDuringWait prometheus.Gauge
	inFlightAtT1     prometheus.Gauge
	cutOff           prometheus.Gauge
}

// NewLifespan registers the lifespan metrics with reg.
func NewLifespan(reg prometheus.Registerer) (*Lifespan, error) {
	m := &Lifespan{
		hookDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_hook_duration_seconds",
			Help: "How long each hook's start or stop took."}, []string{"app", "hook", "phase"}),
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_hook_failures_total",
			Help: "Hook starts or stops that failed, panicked or timed out."}, []string{"app", "hook", "phase"}),
		taskFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_task_failures_total",
			Help: "Background tasks that ended with an error or a panic."}, []string{"app", "task"}),
		startupDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_startup_duration_seconds",
			Help: "How long the whole startup took."}, []string{"app"}),
		shutdownDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_shutdown_duration_seconds",
			Help: "How long the whole shutdown took, from the start of the drain."}, []string{"app"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_phase",
			Help: "1 for the lifespan's current phase, 0 for the others."}, []string{"app", "phase"}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_ready",
			Help: "1 while the app is ready (started, not draining)."}, []string{"app"}),
		servedDuringWait: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_drain_served_during_delay",
			Help: "Requests that arrived during the last shutdown's drain delay."}),
		inFlightAtT1: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_drain_in_flight_at_delay_end",
			Help: "Requests in flight when the last shutdown's drain delay ended."}),
		cutOff: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_drain_cut_off_requests",
			Help: "Requests cut off by the last shutdown's drain timeout."}),
	}
	for _, c := range []prometheus.Collector{m.hookDuration, m.hookFailures, m.taskFailures, m.startupDuration,
		m.shutdownDuration, m.phase, m.ready, m.servedDuringWait, m.inFlightAtT1, m.cutOff} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var _ lifespan.Observer = (*Lifespan)(nil)
var _ serve.DrainObserver = (*Lifespan)(nil)

// OnEvent records one lifespan event.
func (m *Lifespan) OnEvent(e lifespan.Event) {
	switch e.Kind {
	case lifespan.HookStarted, lifespan.HookStopped:
		phase := "start"
		if e.Kind == lifespan.HookStopped {
			phase = "stop"
		}
		if e.Duration > 0 || e.Err == nil {
			m.hookDuration.WithLabelValues(e.App, e.Hook, phase).Set(e.Duration.Seconds())
		}
		if e.Err != nil {
			m.hookFailures.WithLabelValues(e.App, e.Hook, phase).Inc()
		}
	case lifespan.TaskExited:
		// A task ending with its context's cancellation at shutdown is clean.
		if e.Err != nil && !errors.Is(e.Err, context.Canceled) {
			m.taskFailures.WithLabelValues(e.App, e.Hook).Inc()
		}
	case lifespan.PhaseChanged:
		for _, p := range lifespan.Phases {
			v := 0.0
			if p == e.Phase {
				v = 1
			}
			m.phase.WithLabelValues(e.App, p.String()).Set(v)
		}
		ready := 0.0
		switch e.Phase {
		case lifespan.PhaseReady:
			ready = 1
			m.startupDuration.WithLabelValues(e.App).Set(e.Duration.Seconds())
		case lifespan.PhaseFailed:
			m.startupDuration.WithLabelValues(e.App).Set(e.Duration.Seconds())
		case lifespan.PhaseStopped:
			m.shutdownDuration.WithLabelValues(e.App).Set(e.Duration.Seconds())
		}
		m.ready.WithLabelValues(e.App).Set(ready)
	}
}

// ObserveDrain records a shutdown's drain figures.
func (m *Lifespan) ObserveDrain(r serve.DrainReport) {
	m.servedDuringWait.Set(float64(r.ServedDuringDelay))
	m.inFlightAtT1.Set(float64(r.InFlightAtDelayEnd))
	m.cutOff.Set(float64(r.CutOff))
}
