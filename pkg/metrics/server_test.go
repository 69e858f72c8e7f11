package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scrape gathers reg into name{label=value...} -> value.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			for _, l := range mt.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case mt.Gauge != nil:
				out[name] = mt.GetGauge().GetValue()
			case mt.Counter != nil:
				out[name] = mt.GetCounter().GetValue()
			}
		}
	}
	return out
}

// running makes a server of cfg, registers its collector on a registry of
// its own, and runs it; done receives what Run returns.
func running(t *testing.T, cfg serve.Config) (srv *serve.Server, reg *prometheus.Registry, done <-chan error) {
	t.Helper()
	srv, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	if err := RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(context.Background()) }()
	return srv, reg, ran
}

func TestServerMetricsFollowTheSignals(t *testing.T) {
	release := make(chan struct{})
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "warm", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		<-release
		return nil, nil
	}})
	srv, reg, done := running(t, serve.Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, ShutdownOn: []os.Signal{}})
	<-srv.Signals().Listening.Done()
	resp, err := http.Get("http://" + srv.APIAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	during := scrape(t, reg)
	if during["berth_ready"] != 0 || during["berth_http_requests_turned_away_total"] != 1 {
		t.Errorf("during startup: %v", during)
	}
	for _, absent := range []string{"berth_lifecycle_signal_timestamp_seconds{signal=StartupComplete}", "berth_shutdown_duration_seconds"} {
		if _, ok := during[absent]; ok {
			t.Errorf("%s present during startup", absent)
		}
	}
	currentIs := func(when string, m map[string]float64, want *serve.Signal) {
		t.Helper()
		for _, s := range srv.Signals().All() {
			v, ok := m["berth_lifecycle_signal{signal="+s.Name()+"}"]
			if w := map[bool]float64{true: 1}[s == want]; !ok || v != w {
				t.Errorf("%s: berth_lifecycle_signal{signal=%s} = %v (present %v), want %v", when, s.Name(), v, ok, w)
			}
		}
	}
	currentIs("during startup", during, srv.Signals().Listening)
	close(release)
	<-srv.Signals().StartupComplete.Done()
	ready := scrape(t, reg)
	if got := ready["berth_ready"]; got != 1 {
		t.Errorf("berth_ready after startup = %v", got)
	}
	currentIs("after startup", ready, srv.Signals().StartupComplete)
	srv.Shutdown()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := scrape(t, reg)
	rep, _ := srv.Report()
	if after["berth_ready"] != 0 || after["berth_shutdown_duration_seconds"] != rep.Total.Seconds() || rep.Total <= 0 || after["berth_drain_cut_off_requests"] != 0 {
		t.Errorf("after the shutdown: %v (report %+v)", after, rep)
	}
	currentIs("after the shutdown", after, srv.Signals().ShutdownComplete)
	for _, s := range srv.Signals().All() {
		got := after["berth_lifecycle_signal_timestamp_seconds{signal="+s.Name()+"}"]
		if want := float64(s.At().UnixNano()) / 1e9; got != want {
			t.Errorf("signal %s at %v, want %v", s.Name(), got, want)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// The grace period and the preStop sleep are published as the server was
// told them, so an alert can add the sleep (which the grace period counts)
// back to the shutdown duration (which starts at SIGTERM, after it).
func TestServerPublishesItsGraceAndPreStop(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     serve.Config
		grace   float64 // 0: absent
		preStop float64
	}{
		{"preStop sleep", serve.Config{DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 38 * time.Second}, 38, 5},
		{"app-side delay", serve.Config{GracePeriod: 37 * time.Second}, 37, 0},
		{"nothing told", serve.Config{}, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.API = http.NotFoundHandler()
			srv, err := serve.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			if err := RegisterServer(reg, srv); err != nil {
				t.Fatal(err)
			}
			got := scrape(t, reg)
			grace, told := got["berth_grace_period_seconds"]
			if told != (tt.grace > 0) || grace != tt.grace || got["berth_prestop_delay_seconds"] != tt.preStop {
				t.Fatalf("grace %v (present %v), preStop %v; want %v and %v", grace, told, got["berth_prestop_delay_seconds"], tt.grace, tt.preStop)
			}
			if _, ok := got["berth_prestop_delay_seconds"]; !ok {
				t.Fatal("berth_prestop_delay_seconds absent; the alert needs it from every pod")
			}
		})
	}
}

// A nil server or registry is refused when registered, not by every
// scrape after (a collector's panic fails the whole /metrics).
func TestRegisterRefusesNil(t *testing.T) {
	for name, register := range map[string]func(prometheus.Registerer) error{
		"RegisterServer": func(r prometheus.Registerer) error { return RegisterServer(r, nil) },
		"RegisterChecks": func(r prometheus.Registerer) error { return RegisterChecks(r, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := register(NewRegistry()); err == nil || !strings.Contains(err.Error(), "nil") {
				t.Errorf("%s(reg, nil) = %v, want an error naming the nil argument", name, err)
			}
		})
	}
}

// The requests served during the drain delay are counted live, from
// ReadinessFailing on, so a scrape during the delay sees them (they were
// absent until the shutdown completed), and the final figure is the same.
func TestServedDuringDelayIsLive(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/held", func(http.ResponseWriter, *http.Request) { close(entered); <-release })
	// A quiet period ends the delay 3s after the last arrival: the held
	// request keeps the drain, and so the shutdown, from completing.
	srv, reg, done := running(t, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, API: mux,
		APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", DrainDelay: time.Hour, DrainQuiet: 3 * time.Second, ShutdownOn: []os.Signal{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	<-srv.Signals().StartupComplete.Done()
	if _, ok := scrape(t, reg)["berth_drain_served_during_delay"]; ok {
		t.Error("berth_drain_served_during_delay present before the shutdown")
	}
	srv.Shutdown()
	<-srv.Signals().ReadinessFailing.Done()
	if got, ok := scrape(t, reg)["berth_drain_served_during_delay"]; !ok || got != 0 {
		t.Errorf("berth_drain_served_during_delay at ReadinessFailing = %v (present %v), want 0", got, ok)
	}
	failed := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + srv.APIAddr().String() + "/held")
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	select {
	case <-entered:
	case err := <-failed:
		t.Fatalf("the request during the delay failed (did the quiet period end first?): %v", err)
	}
	if got := scrape(t, reg)["berth_drain_served_during_delay"]; got != 1 {
		t.Errorf("berth_drain_served_during_delay during the drain = %v, want 1", got)
	}
	if _, complete := srv.Report(); complete {
		t.Fatal("the shutdown completed while a request was held")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-failed
	rep, _ := srv.Report()
	if got := scrape(t, reg)["berth_drain_served_during_delay"]; got != 1 || rep.ServedDuringDelay != 1 {
		t.Errorf("after the shutdown: gauge %v, report %d; want 1 and 1", got, rep.ServedDuringDelay)
	}
}

// A reading of the signals agrees when the latest read before and after
// the times is one signal and no time is later than its; a signal caught
// between storing its time and its place in the order (a time past the
// latest's, or a time while none is latest) makes Collect read again.
func TestSignalReadingsAgree(t *testing.T) {
	srv, err := serve.New(serve.Config{API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ShutdownOn: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	sig := srv.Signals()
	t0 := time.Now()
	for _, tt := range []struct {
		name          string
		latest, again *serve.Signal
		at            map[*serve.Signal]time.Time
		want          bool
	}{
		{"none signalled", nil, nil, map[*serve.Signal]time.Time{sig.Listening: {}}, true},
		{"the latest has the latest time", sig.StartupComplete, sig.StartupComplete,
			map[*serve.Signal]time.Time{sig.Listening: t0, sig.StartupComplete: t0.Add(time.Second), sig.ShutdownInitiated: {}}, true},
		{"the latest changed meanwhile", sig.StartupComplete, sig.ShutdownInitiated,
			map[*serve.Signal]time.Time{sig.Listening: t0, sig.StartupComplete: t0.Add(time.Second)}, false},
		{"a time later than the latest's", sig.StartupComplete, sig.StartupComplete,
			map[*serve.Signal]time.Time{sig.Listening: t0, sig.StartupComplete: t0.Add(time.Second), sig.ShutdownInitiated: t0.Add(2 * time.Second)}, false},
		{"a time while none is latest", nil, nil, map[*serve.Signal]time.Time{sig.Listening: t0}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := agree(tt.latest, tt.at, tt.again); got != tt.want {
				t.Fatalf("agree = %v, want %v", got, tt.want)
			}
		})
	}
}
