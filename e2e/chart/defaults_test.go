package chart

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// The chart's drain values default to package serve's table.
func TestChartDefaultsAreServesDefaults(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	drain := ch.Values["drain"].(map[string]any)
	seconds := func(key string) time.Duration {
		v, ok := drain[key].(float64)
		if !ok {
			t.Fatalf("drain.%s = %v", key, drain[key])
		}
		return time.Duration(v * float64(time.Second))
	}
	for key, want := range map[string]time.Duration{
		"delaySeconds":       serve.DefaultDrainDelay,
		"timeoutSeconds":     serve.DefaultDrainTimeout,
		"stopTimeoutSeconds": serve.DefaultStopTimeout,
		"marginSeconds":      serve.DefaultMargin,
	} {
		if got := seconds(key); got != want {
			t.Errorf("values.yaml drain.%s = %v, serve's default is %v", key, got, want)
		}
	}
	quit := ch.Values["sidecar"].(map[string]any)["quitTimeoutSeconds"].(float64)
	if got := time.Duration(quit) * time.Second; got != serve.DefaultQuitTimeout {
		t.Errorf("values.yaml sidecar.quitTimeoutSeconds = %v, serve's default is %v", got, serve.DefaultQuitTimeout)
	}
}

// The rendered pod's environment, read by the service's own configuration
// loader, gives a server whose shutdown budget is exactly the grace period
// the chart computed: the formula in the chart and the one in serve agree.
func TestRenderedGracePeriodIsTheServicesBudget(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"defaults", nil},
		{"preStop", map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 8}}},
		{"quiet period", map[string]any{"drain": map[string]any{"quietSeconds": 1.5}}},
		{"no delay", map[string]any{"drain": map[string]any{"delaySeconds": 0}}},
		{"classic sidecar", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "classic", "quitTimeoutSeconds": 3}}},
		{"native sidecar", map[string]any{"sidecar": map[string]any{"enabled": true, "mode": "native"}}},
		{"longer everything", map[string]any{"drain": map[string]any{"delaySeconds": 12, "timeoutSeconds": 45, "stopTimeoutSeconds": 30, "marginSeconds": 3}}},
		{"preStop with no delay", map[string]any{"drain": map[string]any{"mode": "preStop", "delaySeconds": 0}}},
		{"a quit call through extraEnv, the grace period set to fit", map[string]any{"terminationGracePeriodSeconds": 42,
			"extraEnv": []any{map[string]any{"name": "BERTH_SIDECAR_QUIT", "value": "http://127.0.0.1:15020/quitquitquit"}}}},
	}
	for name, values := range ciValues(t) {
		tests = append(tests, struct {
			name   string
			values map[string]any
		}{"ci/" + name, values})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := mustRender(t, tt.values, crdAPIs...).deployment.Spec.Template.Spec
			env := env(container(t, spec.Containers, "server"))
			cfg, err := config.Load(env)
			if err != nil {
				t.Fatalf("the service refuses the chart's environment: %v", err)
			}
			sc := cfg.Serve(nil, prometheus.NewRegistry())
			sc.Apps, sc.API = lifespan.Group{&lifespan.App{Name: "berth"}}, http.NotFoundHandler()
			srv, err := serve.New(sc)
			if err != nil {
				t.Fatalf("serve.New refuses the chart's settings: %v", err)
			}
			grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			if srv.Budget() != grace || cfg.GracePeriod != grace {
				t.Fatalf("chart grace period %v (BERTH_GRACE_PERIOD %v), service budget %v: they must be one number", grace, cfg.GracePeriod, srv.Budget())
			}
		})
	}
}

// TestChartRangesAreTheServices: every chart value that becomes a bounded
// BERTH_ variable accepts exactly the service's range (internal/config's
// bounds): at each edge the chart renders and the service's configuration
// loader and serve.New accept the pod's environment; just past it, helm
// install refuses, naming the key. A value the chart accepts never
// crash-loops the pod.
func TestChartRangesAreTheServices(t *testing.T) {
	type unit int
	const (
		seconds  unit = iota // an integer of seconds
		fraction             // a number of seconds
		duration             // a Go duration string, given in ms
		count                // a plain number
	)
	tests := []struct {
		key, env string
		unit     unit
		// The edge is out of reach for another, tested reason.
		skipMin, skipMax bool
	}{
		{"drain.delaySeconds", "BERTH_DRAIN_DELAY", seconds, false, false},
		{"drain.quietSeconds", "BERTH_DRAIN_QUIET", fraction, false, true}, // must also be shorter than the delay (max 600)
		{"drain.timeoutSeconds", "BERTH_DRAIN_TIMEOUT", seconds, false, false},
		{"drain.stopTimeoutSeconds", "BERTH_STOP_TIMEOUT", seconds, false, false},
		{"drain.marginSeconds", "BERTH_SHUTDOWN_MARGIN", seconds, false, false},
		{"sidecar.quitTimeoutSeconds", "BERTH_SIDECAR_QUIT_TIMEOUT", seconds, false, false},
		{"database.waitSeconds", "BERTH_DB_WAIT", seconds, false, false},
		{"database.migrateTimeoutSeconds", "BERTH_MIGRATE_TIMEOUT", seconds, false, false},
		{"database.maxItems", "BERTH_MAX_ITEMS", count, false, false},
		{"database.timeout", "BERTH_DB_TIMEOUT", duration, false, false},
		{"metrics.pushgateway.timeoutSeconds", "BERTH_PUSH_TIMEOUT", seconds, false, false},
		{"config.workMaxSeconds", "BERTH_WORK_MAX", seconds, false, false},
		{"config.demoWarmup", "BERTH_DEMO_WARMUP", duration, false, false},
		{"config.jobInterval", "BERTH_JOB_INTERVAL", duration, false, false},
		// A grace period must fit the shutdown budget, over an hour here
		// (TestRejectedValues refuses a short one); null, not 0, has the
		// chart compute it.
		{"terminationGracePeriodSeconds", "BERTH_GRACE_PERIOD", seconds, true, false},
	}
	// Room for every edge: a long drain timeout (the work cap's ceiling), a
	// classic sidecar and a Pushgateway (so their timeouts reach the pod),
	// and a startup probe that waits out the longest database wait and
	// warm-up and the longest migration.
	base := func() map[string]any {
		return map[string]any{
			"probes":   map[string]any{"startup": map[string]any{"failureThreshold": 100000}},
			"drain":    map[string]any{"timeoutSeconds": 3600, "delaySeconds": 600},
			"database": map[string]any{"timeout": "1s"}, // at most the shortest drain timeout
			"config":   map[string]any{"workMaxSeconds": 1},
			"sidecar":  map[string]any{"enabled": true, "mode": "classic"},
			"metrics":  map[string]any{"pushgateway": map[string]any{"url": "http://pushgateway:9091"}},
		}
	}
	set := func(values map[string]any, key string, v any) map[string]any {
		parts := strings.Split(key, ".")
		m := values
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
		return values
	}
	for _, tt := range tests {
		b, ok := config.BoundOf(tt.env)
		if !ok {
			t.Fatalf("%s has no bound in internal/config", tt.env)
		}
		// Values in the chart's unit at the edges and just past them.
		var lo, hi, under, over any
		switch tt.unit {
		case seconds:
			lo, hi = int(math.Ceil(float64(b.Min)/1e9)), int(b.Max/1e9)
			under, over = lo.(int)-1, hi.(int)+1
		case fraction:
			lo, hi = float64(b.Min)/1e9, float64(b.Max)/1e9
			under, over = lo.(float64)/2, hi.(float64)+0.5
		case duration:
			lo, hi = fmt.Sprintf("%gms", float64(b.Min)/1e6), fmt.Sprintf("%dms", b.Max/1e6)
			under, over = fmt.Sprintf("%gms", float64(b.Min)/2e6), fmt.Sprintf("%dms", b.Max/1e6+1)
		case count:
			lo, hi, under, over = int(b.Min), int(b.Max), int(b.Min)-1, int(b.Max)+1
		}
		if b.ZeroOK && !tt.skipMin {
			t.Run(tt.key+"=0", func(t *testing.T) { accepted(t, set(base(), tt.key, zeroOf(lo)), "") })
		}
		// 0 is accepted where it means something: then only a value
		// strictly between 0 and the minimum (a fraction or a duration of
		// half of it) is just below the range. A whole unit below a
		// minimum of 1 is that 0.
		if b.ZeroOK && under == zeroOf(lo) {
			under = nil
		}
		if tt.skipMin {
			under = nil
		} else {
			t.Run(fmt.Sprint(tt.key, "=", lo), func(t *testing.T) {
				e := accepted(t, set(base(), tt.key, lo), tt.env)
				// The value the chart was given is the one the pod gets.
				if want := map[unit]string{seconds: fmt.Sprintf("%vs", lo), count: fmt.Sprint(lo), duration: fmt.Sprint(lo)}[tt.unit]; want != "" && e[tt.env] != want {
					t.Errorf("%s=%v renders %s=%q, want %q", tt.key, lo, tt.env, e[tt.env], want)
				}
			})
		}
		if under != nil {
			t.Run(fmt.Sprint(tt.key, "=", under), func(t *testing.T) { refused(t, set(base(), tt.key, under), tt.key) })
		}
		if !tt.skipMax {
			t.Run(fmt.Sprint(tt.key, "=", hi), func(t *testing.T) { accepted(t, set(base(), tt.key, hi), tt.env) })
			if n, ok := hi.(int); ok {
				// A values file (or --set-json) hands helm every number as
				// a float64, which a template prints as 1e+09 unless it
				// converts it first.
				t.Run(fmt.Sprint(tt.key, "=", hi, "(from a values file)"), func(t *testing.T) { accepted(t, set(base(), tt.key, float64(n)), tt.env) })
			}
		}
		t.Run(fmt.Sprint(tt.key, "=", over), func(t *testing.T) { refused(t, set(base(), tt.key, over), tt.key) })
		if tt.unit == duration {
			// The same edges as Go writes them ("24h0m0s", "500µs") and in
			// each small unit: the chart takes any duration the service does.
			lo, hi := time.Duration(b.Min), time.Duration(b.Max)
			for _, e := range []struct {
				value string
				ok    bool
			}{
				{lo.String(), true}, {hi.String(), true}, {(lo / 2).String(), false}, {(hi + time.Millisecond).String(), false},
				{fmt.Sprintf("%dns", lo), true}, {fmt.Sprintf("%dns", lo-1), false},
				{fmt.Sprintf("%dus", hi/time.Microsecond), true}, {fmt.Sprintf("%dus", hi/time.Microsecond+1), false},
				{fmt.Sprintf("%dµs", lo/time.Microsecond), true}, {fmt.Sprintf("%dμs", lo/time.Microsecond), true}, // micro sign, Greek mu
				{fmt.Sprintf("%gs", lo.Seconds())[1:], true}, // ".1s", without the leading 0
			} {
				t.Run(fmt.Sprint(tt.key, "=", e.value), func(t *testing.T) {
					if e.ok {
						accepted(t, set(base(), tt.key, e.value), tt.env)
					} else {
						refused(t, set(base(), tt.key, e.value), tt.key)
					}
				})
			}
		}
	}
}

// TestChartChoicesAreTheServices: every value values.schema.json lists for
// a key that becomes a BERTH_ variable is one the service's configuration
// loader accepts. A choice added to the schema before the service knows it
// would pass helm install and crash-loop the pod.
func TestChartChoicesAreTheServices(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties map[string]struct{ Enum []any }
		}
	}
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ key, env string }{
		{"config.logLevel", "BERTH_LOG_LEVEL"},
		{"config.logFormat", "BERTH_LOG_FORMAT"},
		{"config.demoFail", "BERTH_DEMO_FAIL"},
	} {
		section, leaf, _ := strings.Cut(tt.key, ".")
		choices := schema.Properties[section].Properties[leaf].Enum
		if len(choices) == 0 {
			t.Fatalf("values.schema.json lists no values for %s", tt.key)
		}
		for _, v := range choices {
			t.Run(fmt.Sprint(tt.key, "=", v), func(t *testing.T) {
				// The sidecar runs, so that every hook config.demoFail may
				// name (its sidecars hook too) is one the service runs.
				values := map[string]any{section: map[string]any{leaf: v}, "sidecar": map[string]any{"enabled": true}}
				name := tt.env
				if v == "" {
					name = "" // none, which may be rendered as no variable
				}
				e := accepted(t, values, name)
				if name != "" && e[tt.env] != fmt.Sprint(v) {
					t.Errorf("%s=%v renders %s=%q", tt.key, v, tt.env, e[tt.env])
				}
			})
		}
	}
}

func zeroOf(v any) any {
	switch v.(type) {
	case string:
		return "0"
	case float64:
		return 0.0
	}
	return 0
}

// accepted renders values and hands the pod's environment to the service;
// name, unless empty, must be in it (a 0 may be rendered as no variable).
func accepted(t *testing.T, values map[string]any, name string) map[string]string {
	t.Helper()
	r, err := render(t, values)
	if err != nil {
		t.Fatalf("helm refuses a value the service accepts: %v", err)
	}
	e := env(container(t, r.deployment.Spec.Template.Spec.Containers, "server"))
	if _, ok := e[name]; name != "" && !ok {
		t.Fatalf("the pod has no %s", name)
	}
	cfg, err := config.Load(e)
	if err != nil {
		t.Fatalf("the service refuses what the chart rendered (%s=%q): %v", name, e[name], err)
	}
	sc := cfg.Serve(nil, prometheus.NewRegistry())
	sc.Apps, sc.API = lifespan.Group{&lifespan.App{Name: "berth"}}, http.NotFoundHandler()
	if _, err := serve.New(sc); err != nil {
		t.Fatalf("serve.New refuses what the chart rendered: %v", err)
	}
	return e
}

// refused expects helm to refuse values, naming key's last part.
func refused(t *testing.T, values map[string]any, key string) {
	t.Helper()
	_, err := render(t, values)
	leaf := key[strings.LastIndex(key, ".")+1:]
	if err == nil || !strings.Contains(err.Error(), leaf) {
		t.Fatalf("err = %v; want helm to refuse it, naming %s", err, leaf)
	}
}
