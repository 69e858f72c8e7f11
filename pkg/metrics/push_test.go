package metrics

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
)

// Push sends the final figures, and only those, to the group that names
// the job and the pod, replacing it (PUT).
func TestPushSendsTheFinalFiguresToThePodsGroup(t *testing.T) {
	var mu sync.Mutex
	var method, path string
	var body []byte
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		method, path, body = r.Method, r.URL.Path, b
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()

	reg := NewRegistry()
	lm, _ := NewLifespan(reg)
	h, _ := NewHTTP(reg)
	lm.OnEvent(lifespan.Event{Kind: lifespan.HookStopped, App: "berth", Hook: "db", Duration: 3 * time.Millisecond})
	h.ObserveRequest("GET", "/api/v1/info", 200, time.Millisecond)
	srv, err := serve.New(serve.Config{API: http.NotFoundHandler(), DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 38 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}

	if err := Push(context.Background(), nil, gw.URL, "berth-exit", map[string]string{"pod": "berth-7d9-x2"}, reg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/metrics/job/berth-exit/pod/berth-7d9-x2" {
		t.Fatalf("%s %s, want PUT to the pod's group", method, path)
	}
	for _, want := range []string{"berth_hook_duration_seconds", "berth_http_requests_total", "berth_grace_period_seconds", "berth_prestop_delay_seconds"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the push lacks %s", want)
		}
	}
	for _, not := range []string{"go_goroutines", "process_cpu_seconds_total", "berth_http_request_duration_seconds", "berth_phase"} {
		if bytes.Contains(body, []byte(not)) {
			t.Errorf("the push carries %s, which a scrape reads while the process lives", not)
		}
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }))
	defer bad.Close()
	if err := Push(context.Background(), nil, bad.URL, "berth-exit", nil, reg); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a refused push = %v", err)
	}
}
