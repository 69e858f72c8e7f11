package chart

import (
	"net/http"
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
