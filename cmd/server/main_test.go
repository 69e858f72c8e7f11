package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/serve"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // substring of the error; "" = valid
	}{
		{"defaults", map[string]string{}, ""},
		{"bad duration", map[string]string{"BERTH_DRAIN_DELAY": "5"}, `BERTH_DRAIN_DELAY="5" is not a Go duration such as 250ms, 5s or 1m`},
		{"two bad values, both named", map[string]string{"BERTH_STOP_TIMEOUT": "soon", "BERTH_SINGLE_LISTENER": "yes"},
			`BERTH_STOP_TIMEOUT="soon" is not a Go duration`},
		{"negative", map[string]string{"BERTH_DRAIN_TIMEOUT": "-1s"}, `BERTH_DRAIN_TIMEOUT="-1s": must not be negative`},
		{"zero timeout", map[string]string{"BERTH_STOP_TIMEOUT": "0s"}, `BERTH_STOP_TIMEOUT="0s": must be more than 0`},
		{"zero margin", map[string]string{"BERTH_SHUTDOWN_MARGIN": "0s"}, `BERTH_SHUTDOWN_MARGIN="0s": must be more than 0`},
		{"log level", map[string]string{"BERTH_LOG_LEVEL": "loud"}, `BERTH_LOG_LEVEL="loud": want debug, info, warn or error`},
		{"log format", map[string]string{"BERTH_LOG_FORMAT": "xml"}, `BERTH_LOG_FORMAT="xml": want json or text`},
		{"demo fail unknown hook", map[string]string{"BERTH_DEMO_FAIL": "dbx"}, `BERTH_DEMO_FAIL="dbx": want the name of a hook: sidecars, store, cache, jobs`},
		{"demo fail sidecars without sidecars", map[string]string{"BERTH_DEMO_FAIL": "sidecars"}, "runs only when BERTH_SIDECARS is set"},
		{"sidecars", map[string]string{"BERTH_SIDECARS": "ftp://x:1"}, `BERTH_SIDECARS="ftp://x:1": sidecar "ftp://x:1": scheme "ftp" not supported`},
		{"quit url", map[string]string{"BERTH_SIDECAR_QUIT": "127.0.0.1:15020"}, `BERTH_SIDECAR_QUIT="127.0.0.1:15020"`},
		{"body limit", map[string]string{"BERTH_BODY_LIMIT": "1MB"}, `BERTH_BODY_LIMIT="1MB" is not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.env)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.DrainDelay != 5*time.Second || cfg.DrainTimeout != 20*time.Second || cfg.StopTimeout != 10*time.Second || cfg.HTTPAddr != ":8080" || cfg.AdminAddr != ":9090" || cfg.LogFormat != "json" {
					t.Fatalf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	_, err := loadConfig(map[string]string{"BERTH_STOP_TIMEOUT": "soon", "BERTH_SINGLE_LISTENER": "yes"})
	if !strings.Contains(err.Error(), `BERTH_SINGLE_LISTENER="yes" is not true or false`) {
		t.Fatalf("second problem not reported: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	loopback := map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_ADMIN_ADDR": "127.0.0.1:0", "BERTH_DEMO_WARMUP": "0s"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range loopback {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		inError string
	}{
		{"bad config", nil, with(map[string]string{"BERTH_DRAIN_DELAY": "x"}), 2, `BERTH_DRAIN_DELAY="x"`},
		{"budget does not fit", nil, with(map[string]string{"BERTH_GRACE_PERIOD": "30s"}), 2, "raise terminationGracePeriodSeconds to at least 37"},
		{"demo failure", nil, with(map[string]string{"BERTH_DEMO_FAIL": "cache"}), 1, `hook \"cache\": start: failing as BERTH_DEMO_FAIL asks`},
		{"demo failure of the sidecar wait", nil, with(map[string]string{"BERTH_DEMO_FAIL": "sidecars", "BERTH_SIDECARS": "127.0.0.1:9"}), 1,
			`hook \"sidecars\": start: failing as BERTH_DEMO_FAIL asks`},
		{"unknown command", []string{"dance"}, nil, 2, `unknown command "dance"`},
		{"probe without URL", []string{"probe"}, nil, 2, "usage: server probe URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, tt.env, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.inError) {
				t.Fatalf("stderr lacks %q:\n%s", tt.inError, stderr.String())
			}
		})
	}
	var stdout bytes.Buffer
	if code := run([]string{"version"}, nil, &stdout, io.Discard); code != 0 || stdout.String() != "dev\n" {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
}

func TestDemoFailureRollsBackEarlierHooks(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_ADMIN_ADDR": "127.0.0.1:0", "BERTH_DEMO_WARMUP": "0s", "BERTH_DEMO_FAIL": "jobs"}
	if code := run(nil, env, io.Discard, &stderr); code != serve.ExitStartup {
		t.Fatalf("exit %d", code)
	}
	logs := stderr.String()
	failed := strings.Index(logs, `"hook":"jobs"`)
	cacheDropped := strings.Index(logs, `"msg":"cache dropped"`)
	storeClosed := strings.Index(logs, `"msg":"store closed"`)
	if failed < 0 || cacheDropped < failed || storeClosed < cacheDropped {
		t.Fatalf("want jobs failure, then cache and store stopped in reverse:\n%s", logs)
	}
}

func startService(t *testing.T, extra map[string]string) *berthtest.App {
	env := map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_LOG_FORMAT": "text", "BERTH_BODY_LIMIT": "64", "BERTH_WORK_MAX": "2s", "POD_NAME": "pod-a"}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServerConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.DrainDelay = 0
	return berthtest.Start(t, srv)
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, url, b)
	}
	return resp.StatusCode, out
}

func TestAPI(t *testing.T) {
	app := startService(t, nil)
	items := app.URL + "/api/v1/items/"
	tests := []struct {
		name, method, path, body string
		code                     int
		field, want              string
	}{
		{"missing item", "GET", items + "k", "", 404, "error", `no item "k"`},
		{"create", "PUT", items + "k", `{"v":1}`, 201, "v", "1"},
		{"read", "GET", items + "k", "", 200, "v", "1"},
		{"replace", "PUT", items + "k", `{"v":2}`, 200, "v", "2"},
		{"malformed", "PUT", items + "k", `{"v":`, 400, "error", "body is not valid JSON"},
		{"too large", "PUT", items + "big", `{"v":"` + strings.Repeat("x", 100) + `"}`, 413, "error", "body over the 64-byte limit"},
		{"delete", "DELETE", items + "k", "", 204, "", ""},
		{"delete again", "DELETE", items + "k", "", 404, "error", `no item "k"`},
		{"work", "GET", app.URL + "/api/v1/work?duration=10ms", "", 200, "worked", "10ms"},
		{"work bad duration", "GET", app.URL + "/api/v1/work?duration=soon", "", 400, "error", `duration="soon" is not a non-negative Go duration`},
		{"work over cap", "GET", app.URL + "/api/v1/work?duration=3s", "", 400, "error", "over the 2s cap"},
		{"info", "GET", app.URL + "/api/v1/info", "", 200, "phase", "ready"},
		{"unknown route", "GET", app.URL + "/nope", "", 404, "error", "no route GET /nope"},
		{"wrong method", "POST", app.URL + "/api/v1/info", "", 405, "error", "method POST not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("%s %s = %d %v, want %d", tt.method, tt.path, code, body, tt.code)
			}
			if tt.field != "" {
				if got := fmt.Sprint(body[tt.field]); !strings.Contains(got, tt.want) {
					t.Fatalf("%s = %q, want %q", tt.field, got, tt.want)
				}
			}
		})
	}
	code, metricsText := app.GetAdmin(t, "/metrics")
	for _, want := range []string{`berth_http_requests_total{code="201",method="PUT",route="/api/v1/items/:key"} 1`, `route="unmatched"`, `berth_hook_duration_seconds{app="berth",hook="cache",phase="start"}`} {
		if code != 200 || !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestWorkHonoursCancellation(t *testing.T) {
	app := startService(t, map[string]string{"BERTH_WORK_MAX": "1h"})
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", app.URL+"/api/v1/work?duration=1h", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// The handler must return once the client goes; if it did not, the
	// shutdown in Cleanup would hit its drain timeout and fail the test.
	cancel()
	<-done
}

func TestProbeCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for url, want := range map[string]int{ok.URL: 0, down.URL: 1, closed: 1, "::bad": 2} {
		if got := run([]string{"probe", url}, nil, io.Discard, io.Discard); got != want {
			t.Errorf("probe %s = %d, want %d", url, got, want)
		}
	}
}

func TestSidecarCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var logs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- serveSidecar(ln, sidecarConfig{ReadyDelay: time.Hour}, slog.New(slog.NewJSONHandler(&logs, nil)))
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/ready before the delay = %d", resp.StatusCode)
	}
	resp, err = client.Post("http://"+addr+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("sidecar exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not exit after quit")
	}
	if !strings.Contains(logs.String(), "sidecar quit requested") || !strings.Contains(logs.String(), `"reason":"quit endpoint"`) {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestProbePrintsWholeBody(t *testing.T) {
	big := strings.Repeat("berth_metric 1\n", 2000) // 30 kB, like /metrics
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	var out bytes.Buffer
	if code := run([]string{"probe", srv.URL}, nil, &out, io.Discard); code != 0 || !strings.HasSuffix(out.String(), big) {
		t.Fatalf("exit %d, printed %d bytes of %d", code, out.Len(), len(big))
	}
}
