package metrics

import (
	"sync"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/prometheus/client_golang/prometheus"
)

// Lifespan records lifespan events: pass its OnEvent as an app's Observer.
type Lifespan struct {
	hookDuration    *prometheus.GaugeVec
	hookFailures    *prometheus.CounterVec
	taskFailures    *prometheus.CounterVec
	startupDuration *prometheus.GaugeVec
	phase           *phases
}

var phaseDesc = prometheus.NewDesc("berth_phase",
	"1 for the app's current lifespan phase, 0 for the others.", []string{"app", "phase"}, nil)

// phases collects berth_phase: each app's current phase, read once per
// scrape, so that a scrape during a phase change sees exactly one phase
// at 1 (six gauges set one by one showed none, or two, in between).
type phases struct {
	mu  sync.Mutex
	now map[string]lifespan.Phase // by app
}

func (p *phases) set(app string, phase lifespan.Phase) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now[app] = phase
}

func (p *phases) Describe(ch chan<- *prometheus.Desc) { ch <- phaseDesc }

func (p *phases) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for app, now := range p.now {
		for phase := lifespan.PhaseNew; phase <= lifespan.PhaseFailed; phase++ {
			v := 0.0
			if phase == now {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, v, app, phase.String())
		}
	}
}

// NewLifespan registers the lifespan metrics with reg.
func NewLifespan(reg prometheus.Registerer) (*Lifespan, error) {
	m := &Lifespan{
		hookDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_hook_duration_seconds",
			Help: "How long each hook's start or stop took."}, []string{"app", "hook", "phase"}),
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_hook_failures_total",
			Help: "Hook starts or stops that failed, panicked or timed out (not a start the startup's end cut short); 0 from the hook's start."}, []string{"app", "hook", "phase"}),
		taskFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_task_failures_total",
			Help: "Background tasks that ended with an error or a panic; 0 from the task's start."}, []string{"app", "task"}),
		startupDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_startup_duration_seconds",
			Help: "How long the app's whole startup took, successful or not (a failed one's rollback included)."}, []string{"app"}),
		phase: &phases{now: map[string]lifespan.Phase{}},
	}
	if err := register(reg, "NewLifespan", onceHint+" (one Lifespan observes every app of a Group: pass its OnEvent to each)", m.hookDuration, m.hookFailures, m.taskFailures, m.startupDuration, m.phase); err != nil {
		return nil, err
	}
	return m, nil
}

// OnEvent records one lifespan event; it is a lifespan.Observer.
func (m *Lifespan) OnEvent(e lifespan.Event) {
	e.App, e.Hook = validLabel(e.App), validLabel(e.Hook)
	switch e.Kind {
	case lifespan.HookStarting:
		// The failure counters exist at 0 before anything can fail, so
		// rate() and increase() see the first failure.
		m.hookFailures.WithLabelValues(e.App, e.Hook, "start")
		m.hookFailures.WithLabelValues(e.App, e.Hook, "stop")
	case lifespan.TaskStarted:
		m.taskFailures.WithLabelValues(e.App, e.Hook)
	case lifespan.HookStarted, lifespan.HookStopped:
		if e.Late && e.Kind == lifespan.HookStarted {
			// A start cut short (not counted) that then failed by itself.
			m.hookFailures.WithLabelValues(e.App, e.Hook, "start").Inc()
			return
		}
		if e.Late {
			return // a stop's timeout was counted; its late outcome is no second stop
		}
		phase := "start"
		if e.Kind == lifespan.HookStopped {
			phase = "stop"
		}
		if e.Duration > 0 || e.Err == nil {
			m.hookDuration.WithLabelValues(e.App, e.Hook, phase).Set(e.Duration.Seconds())
		}
		if e.Err != nil && !e.CutShort { // cut short by the startup's end: not this hook's failure
			m.hookFailures.WithLabelValues(e.App, e.Hook, phase).Inc()
		}
	case lifespan.TaskExited:
		if e.Err != nil { // nil for a task the stop cancelled
			m.taskFailures.WithLabelValues(e.App, e.Hook).Inc()
		}
	case lifespan.PhaseChanged:
		m.phase.set(e.App, e.Phase)
		if e.Phase == lifespan.PhaseReady || e.Phase == lifespan.PhaseFailed {
			m.startupDuration.WithLabelValues(e.App).Set(e.Duration.Seconds())
		}
	}
}
