package config

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Any value of any variable is either refused with a message naming the
// variable, or accepted within its bounds; nothing panics, and an accepted
// configuration's budget does not overflow.
func FuzzLoad(f *testing.F) {
	for _, seed := range []struct{ name, value string }{
		{"BERTH_DRAIN_DELAY", "5s"}, {"BERTH_DRAIN_DELAY", "-1h"}, {"BERTH_JOB_INTERVAL", "1ns"},
		{"BERTH_BODY_LIMIT", "99999999999999999999"}, {"BERTH_SIDECARS", "tcp://[::1]:1,http://x:2/y"},
		{"BERTH_DATABASE_URL", "postgres://u:p@h:5432/d?sslmode=disable"}, {"BERTH_DRAIN_DELY", "5s"},
		{"BERTH_SINGLE_LISTENER", "yes"}, {"BERTH_LOG_LEVEL", "DEBUG"}, {"BERTH_GRACE_PERIOD", "2562047h"},
		{"BERTH_SIDECAR_QUIT", "http://127.0.0.1:15020/quitquitquit"}, {"BERTH_PUSHGATEWAY_URL", "http://pg:9091"},
		{"BERTH_PUSH_TIMEOUT", ""}, {"BERTH_SIDECAR_QUIT_TIMEOUT", ""}, {"BERTH_SIDECAR_QUIT_AFTER_FAILED_START", "1"},
	} {
		f.Add(seed.name, seed.value)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		// The quit's settings read alone never panic, and never ask for a
		// quit on one variable: it needs the switch and a URL.
		if urls, _, err := QuitAfterRefusal(map[string]string{name: value}); urls != nil || err != nil && !strings.Contains(err.Error(), "BERTH_SIDECAR_QUIT") {
			t.Fatalf("QuitAfterRefusal(%s=%q) = %q, %v", name, value, urls, err)
		}
		cfg, err := Load(map[string]string{name: value})
		if err != nil {
			if strings.HasPrefix(name, "BERTH_") && !strings.Contains(err.Error(), name) {
				t.Fatalf("refusing %s=%q without naming it: %v", name, value, err)
			}
			return
		}
		for _, d := range []time.Duration{cfg.DrainDelay, cfg.DrainTimeout, cfg.StopTimeout, cfg.GracePeriod, cfg.Margin} {
			if d < 0 || d > 24*time.Hour {
				t.Fatalf("%s=%q accepted a duration of %v", name, value, d)
			}
		}
		if b := cfg.Serve(nil, prometheus.NewRegistry()).Budget(); b < 0 {
			t.Fatalf("%s=%q: budget %v", name, value, b)
		}
	})
}
