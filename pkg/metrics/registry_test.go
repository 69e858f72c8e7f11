package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
)

// Registering berth's metrics twice on one registry (one Lifespan per app
// of a Group, say) is refused with the function and the metrics named, not
// client_golang's bare "duplicate metrics collector registration
// attempted".
func TestRegisteringTwiceNamesTheMetrics(t *testing.T) {
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "a"}}, API: http.NotFoundHandler(),
		ShutdownOn: []os.Signal{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	checks := probes.New()
	for _, tc := range []struct {
		name, metric string
		register     func(prometheus.Registerer) error
	}{
		{"NewHTTP", "berth_http_requests_total", func(r prometheus.Registerer) error { _, err := NewHTTP(r); return err }},
		{"NewLifespan", "berth_hook_duration_seconds", func(r prometheus.Registerer) error { _, err := NewLifespan(r); return err }},
		{"RegisterServer", "berth_lifecycle_signal_timestamp_seconds", func(r prometheus.Registerer) error { return RegisterServer(r, srv) }},
		{"RegisterChecks", "berth_check_up", func(r prometheus.Registerer) error { return RegisterChecks(r, checks) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if err := tc.register(reg); err != nil {
				t.Fatal(err)
			}
			err := tc.register(reg)
			if err == nil || !strings.Contains(err.Error(), "metrics: "+tc.name+": registering ") ||
				!strings.Contains(err.Error(), tc.metric) || !strings.Contains(err.Error(), "once per registry") {
				t.Errorf("second %s = %v, want an error naming %s and %s, and what to do", tc.name, err, tc.name, tc.metric)
			}
		})
	}
}

// A registration that fails part way leaves nothing of itself registered,
// so the caller can remove the cause and register again.
func TestFailedRegistrationLeavesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	other, err := NewLifespan(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	taken := other.phase
	reg.MustRegister(taken) // NewLifespan registers berth_phase last
	if _, err := NewLifespan(reg); err == nil || !strings.Contains(err.Error(), "berth_phase") {
		t.Fatalf("NewLifespan beside another berth_phase = %v, want an error naming it", err)
	}
	reg.Unregister(taken)
	if _, err := NewLifespan(reg); err != nil {
		t.Fatalf("NewLifespan once the cause is gone = %v, want it to register afresh", err)
	}
}

// Handler answers a scraper in the format it asks for: OpenMetrics (as
// Prometheus asks first) or the classic text format.
func TestHandlerNegotiatesTheFormat(t *testing.T) {
	reg := NewRegistry()
	for _, tt := range []struct{ accept, contentType, ends string }{
		{"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", "application/openmetrics-text", "# EOF\n"},
		{"text/plain;version=0.0.4", "text/plain", "\n"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept", tt.accept)
		rec := httptest.NewRecorder()
		Handler(reg).ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || !strings.HasPrefix(ct, tt.contentType) || !strings.HasSuffix(rec.Body.String(), tt.ends) || strings.HasSuffix(rec.Body.String(), "# EOF\n") != (tt.ends == "# EOF\n") {
			t.Errorf("Accept %s: %d %s, body ending %q; want %s ending %q", tt.accept, rec.Code, ct, rec.Body.String()[max(rec.Body.Len()-10, 0):], tt.contentType, tt.ends)
		}
	}
}

// A nil registry is refused with an error that names it, by every
// function that registers, where it used to be a nil-pointer panic
// naming nothing; Handler, which returns no error, panics saying so.
func TestNilRegistryIsRefused(t *testing.T) {
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "a"}}, API: http.NotFoundHandler(),
		ShutdownOn: []os.Signal{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var declared *prometheus.Registry // never made
	for _, tt := range []struct {
		name, fn string
		register func() error
	}{
		{"NewHTTP", "NewHTTP", func() error { _, err := NewHTTP(nil); return err }},
		{"NewLifespan", "NewLifespan", func() error { _, err := NewLifespan(nil); return err }},
		{"RegisterServer", "RegisterServer", func() error { return RegisterServer(nil, srv) }},
		{"RegisterChecks", "RegisterChecks", func() error { return RegisterChecks(nil, probes.New()) }},
		{"a *prometheus.Registry declared, never made", "NewHTTP", func() error { _, err := NewHTTP(declared); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := "metrics: " + tt.fn + " with a nil prometheus.Registerer: pass the registry the admin server serves (NewRegistry makes one)"
			if err := tt.register(); err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
	defer func() {
		if v := recover(); !strings.Contains(fmt.Sprint(v), "metrics: Handler with a nil *prometheus.Registry") {
			t.Fatalf("Handler(nil) panicked with %v, want a panic naming the nil registry", v)
		}
	}()
	Handler(nil)
}
