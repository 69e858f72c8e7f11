package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Push, as a server's OnShutdown, sends the final figures of a whole
// shutdown, every family finalFamilies names and only those, to the group
// that names the job and the pod, replacing it (PUT).
func TestPushSendsTheFinalFiguresToThePodsGroup(t *testing.T) {
	var mu sync.Mutex
	var method, path string
	pushed := map[string]bool{}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		method, path = r.Method, r.URL.Path
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if err != io.EOF {
					t.Errorf("decoding the push: %v", err)
				}
				break
			}
			pushed[mf.GetName()] = true
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()

	reg := NewRegistry()
	lm, _ := NewLifespan(reg)
	h, _ := NewHTTP(reg)
	h.ObserveRequest("GET", "/api/v1/info", 200, time.Millisecond)
	a := &lifespan.App{Name: "berth", Observer: lm.OnEvent}
	a.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, sc *lifespan.Scope) (lifespan.StopFunc, error) {
		sc.Go("job", func(ctx context.Context) error { <-ctx.Done(); return nil })
		return func(context.Context) error { return nil }, nil
	}})
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 40 * time.Second, ShutdownOn: []os.Signal{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnShutdown: func(ctx context.Context, _ serve.ShutdownReport) error {
			return Push(ctx, nil, gw.URL, "berth-exit", map[string]string{"pod": "berth-7d9-x2"}, reg)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	<-srv.Signals().StartupComplete.Done()
	srv.Shutdown()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/metrics/job/berth-exit/pod/berth-7d9-x2" {
		t.Fatalf("%s %s, want PUT to the pod's group", method, path)
	}
	// Named here, not read from finalFamilies, so that dropping one there
	// fails: the chart's alerts and dashboard read each from the push.
	for _, want := range []string{
		"berth_shutdown_duration_seconds", "berth_drain_duration_seconds", "berth_drain_served_during_delay",
		"berth_drain_in_flight_at_drain_start", "berth_drain_cut_off_requests", "berth_lifecycle_signal_timestamp_seconds",
		"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_task_failures_total",
		"berth_startup_duration_seconds", "berth_http_requests_total",
		"berth_shutdown_budget_seconds", "berth_grace_period_seconds", "berth_prestop_delay_seconds",
	} {
		if !pushed[want] {
			t.Errorf("the push lacks %s", want)
		}
	}
	for name := range pushed {
		if !slices.ContainsFunc(finalFamilies, func(f string) bool { return strings.HasPrefix(name, f) }) {
			t.Errorf("the push carries %s, which a scrape reads while the process lives", name)
		}
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }))
	defer bad.Close()
	if err := Push(context.Background(), nil, bad.URL, "berth-exit", nil, reg); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a refused push = %v", err)
	}
}
