package main

import (
	"bytes"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/serve"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunExitCodes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	loopback := map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_ADMIN_ADDR": "127.0.0.1:0", "BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": t.TempDir()}
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
		{"bad config", nil, with(map[string]string{"BERTH_DRAIN_DELAY": "x"}), 2, `"msg":"refusing to start","error":"configuration: BERTH_DRAIN_DELAY=\"x\"`},
		{"bad config, text logs", nil, with(map[string]string{"BERTH_DRAIN_DELAY": "x", "BERTH_LOG_FORMAT": "text"}), 2, `msg="refusing to start" error="configuration: BERTH_DRAIN_DELAY=\"x\"`},
		{"budget does not fit", nil, with(map[string]string{"BERTH_GRACE_PERIOD": "30s"}), 2, "raise BERTH_GRACE_PERIOD (the pod's terminationGracePeriodSeconds) to at least 37s, or shorten BERTH_DRAIN_DELAY, BERTH_DRAIN_TIMEOUT, BERTH_STOP_TIMEOUT or BERTH_SHUTDOWN_MARGIN"},
		{"demo failure", nil, with(map[string]string{"BERTH_DEMO_FAIL": "cache"}), 1, `hook \"cache\": start: failing as BERTH_DEMO_FAIL asks`},
		{"demo failure of the sidecar wait", nil, with(map[string]string{"BERTH_DEMO_FAIL": "sidecars", "BERTH_SIDECARS": "127.0.0.1:9"}), 1,
			`hook \"sidecars\": start: failing as BERTH_DEMO_FAIL asks`},
		{"sidecar never ready, the settings named", nil, with(map[string]string{"BERTH_SIDECARS": "127.0.0.1:1", "BERTH_SIDECAR_TIMEOUT": "200ms"}), 1,
			`connection refused (waited BERTH_SIDECAR_TIMEOUT=200ms for BERTH_SIDECARS: raise it`},
		{"database not there", nil, with(map[string]string{"BERTH_DATABASE_URL": "postgres://berth:s3cret@127.0.0.1:1/berth", "BERTH_DB_WAIT": "200ms"}), 1,
			`hook \"db\": start: database postgres 127.0.0.1:1/berth as berth did not answer within BERTH_DB_WAIT=200ms`},
		{"data directory that cannot be made", nil, with(map[string]string{"BERTH_DATA_DIR": notADir + "/data"}), 1,
			`hook \"db\": start: data directory (BERTH_DATA_DIR): mkdir ` + notADir + `: not a directory`},
		{"database URL of another kind", nil, with(map[string]string{"BERTH_DATABASE_URL": "mysql://u:s3cret@h/db"}), 2,
			`BERTH_DATABASE_URL=\"mysql://u:xxxxx@h/db\": want a postgres:// or postgresql:// URL`},
		{"port in use", nil, with(map[string]string{"BERTH_HTTP_ADDR": busy}), 2,
			`BERTH_HTTP_ADDR=\"` + busy + `\": listen tcp ` + busy + `: bind: address already in use`},
		{"refused by serve, in the service's words", nil, with(map[string]string{"BERTH_DRAIN_QUIET": "6s"}), 2,
			`BERTH_DRAIN_QUIET 6s must be shorter than the drain delay (5s)`},
		{"several problems, listed one by one", nil, with(map[string]string{"BERTH_DRAIN_DELAY": "x", "BERTH_FOO": "1", "BERTH_WORK_MAX": "30s"}), 2,
			`"problems":["BERTH_DRAIN_DELAY=\"x\" is not a Go duration such as 250ms, 5s or 1m; want between 100ms and 10m0s (or 0)","BERTH_FOO is not a berth variable; the README lists them","BERTH_WORK_MAX (30s) is longer than BERTH_DRAIN_TIMEOUT (20s)`},
		{"several of serve's problems, listed", nil, with(map[string]string{"BERTH_DRAIN_QUIET": "6s", "BERTH_GRACE_PERIOD": "30s"}), 2,
			`"problems":["BERTH_DRAIN_QUIET 6s must be shorter than the drain delay (5s)`},
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
			if strings.Contains(stderr.String(), "s3cret") {
				t.Fatalf("a password reached the log:\n%s", stderr.String())
			}
			if n := strings.Count(stderr.String(), `"level":"ERROR"`); tt.code == 2 && n > 1 {
				t.Fatalf("the refusal is logged %d times:\n%s", n, stderr.String())
			}
			// A refusal of the settings, before the server runs (no
			// "exiting" line then), is the first line of the log.
			out := stderr.String()
			if first, _, _ := strings.Cut(out, "\n"); tt.code == 2 && strings.Contains(out, "refusing to start") &&
				!strings.Contains(out, `"msg":"exiting"`) && !strings.Contains(first, "refusing to start") {
				t.Fatalf("a refusal of the settings comes after other lines:\n%s", out)
			}
		})
	}
	var stdout bytes.Buffer
	if code := run([]string{"version"}, nil, &stdout, io.Discard); code != 0 || stdout.String() != "dev\n" {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
}

// TestRefusalsQuitSidecarsWhenAsked: with
// BERTH_SIDECAR_QUIT_AFTER_FAILED_START, a Job's classic sidecars are told
// to quit however the service ends without serving: a refused
// configuration, a grace period serve refuses, a port in use, a failed
// startup. As that can come before a sidecar listens, a refused connection
// is retried until the quit's timeout, and is a failure then, not a
// sidecar gone. Not when the switch is unset, nor when the quit's own
// settings are refused, which the log says.
func TestRefusalsQuitSidecarsWhenAsked(t *testing.T) {
	var quits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/quitquitquit" {
			quits.Add(1)
		}
	}))
	defer proxy.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := "http://" + closed.Addr().String() + "/quitquitquit" // nothing listens there
	closed.Close()
	quitURL := proxy.URL + "/quitquitquit"
	asked := map[string]string{"BERTH_SIDECAR_QUIT": quitURL, "BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"}
	notListening := map[string]string{"BERTH_SIDECAR_QUIT": silent, "BERTH_SIDECAR_QUIT_TIMEOUT": "300ms"}
	with := func(a, b map[string]string) map[string]string {
		m := maps.Clone(a)
		maps.Copy(m, b)
		return m
	}
	for _, tt := range []struct {
		name      string
		env       map[string]string
		code      int
		wantQuits int32
		log       string // "": nothing about the sidecars
	}{
		{"configuration refused", map[string]string{"BERTH_DRAIN_DELAY": "x"}, serve.ExitConfig, 1, `"msg":"sidecars quit done"`},
		{"grace period refused by serve", map[string]string{"BERTH_GRACE_PERIOD": "30s"}, serve.ExitConfig, 1, `"msg":"sidecars quit done"`},
		{"port in use", map[string]string{"BERTH_HTTP_ADDR": busy.Addr().String()}, serve.ExitConfig, 1, `"msg":"sidecars quit done"`},
		{"startup failed", map[string]string{"BERTH_DEMO_FAIL": "cache"}, serve.ExitStartup, 1, `"msg":"sidecars quit done"`},
		{"configuration refused, nothing listening", with(notListening, map[string]string{"BERTH_DRAIN_DELAY": "x"}), serve.ExitConfig, 0, "nothing listened there before the quit's timeout"},
		{"port in use, nothing listening", with(notListening, map[string]string{"BERTH_HTTP_ADDR": busy.Addr().String()}), serve.ExitConfig, 0, "nothing listened there before the quit's timeout"},
		{"startup failed, nothing listening", with(notListening, map[string]string{"BERTH_DEMO_FAIL": "cache"}), serve.ExitStartup, 0, "nothing listened there before the quit's timeout"},
		{"not asked", map[string]string{"BERTH_DRAIN_DELAY": "x", "BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "false"}, serve.ExitConfig, 0, ""},
		// Each of these would reach the sidecar, were the quit attempted.
		{"the quit's own timeout refused", map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": "11m"}, serve.ExitConfig, 0,
			`"msg":"sidecars not told to quit: the quit's own settings are refused","error":"configuration: BERTH_SIDECAR_QUIT_TIMEOUT=\"11m\"`},
		{"one of the quit's URLs refused", map[string]string{"BERTH_SIDECAR_QUIT": quitURL + ",127.0.0.1:1/quitquitquit"}, serve.ExitConfig, 0,
			`"msg":"sidecars not told to quit: the quit's own settings are refused"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			quits.Store(0)
			env := with(map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_ADMIN_ADDR": "127.0.0.1:0", "BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": t.TempDir()}, asked)
			maps.Copy(env, tt.env)
			var stderr bytes.Buffer
			if code := run(nil, env, io.Discard, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, stderr.String())
			}
			if got := quits.Load(); got != tt.wantQuits {
				t.Fatalf("the sidecar was told to quit %d times, want %d:\n%s", got, tt.wantQuits, stderr.String())
			}
			if out := stderr.String(); tt.log == "" && strings.Contains(out, "sidecar") || !strings.Contains(out, tt.log) {
				t.Fatalf("logs, want %q about the sidecars:\n%s", tt.log, out)
			}
		})
	}
}

func TestDemoFailureRollsBackEarlierHooks(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_ADMIN_ADDR": "127.0.0.1:0", "BERTH_DEMO_WARMUP": "0s", "BERTH_DEMO_FAIL": "jobs", "BERTH_DATA_DIR": t.TempDir()}
	if code := run(nil, env, io.Discard, &stderr); code != serve.ExitStartup {
		t.Fatalf("exit %d", code)
	}
	logs := stderr.String()
	failed := strings.Index(logs, `"hook":"jobs"`)
	cacheDropped := strings.Index(logs, `"msg":"cache dropped"`)
	dbClosed := strings.Index(logs, `"msg":"database closed"`)
	if failed < 0 || cacheDropped < failed || dbClosed < cacheDropped {
		t.Fatalf("want jobs failure, then the cache and the database closed in reverse:\n%s", logs)
	}
}

// Durations are logged as seconds under a _seconds key, whatever the
// format, and whatever the code that logged them passed.
func TestLogsGiveDurationsInSeconds(t *testing.T) {
	for _, json := range []bool{true, false} {
		var out strings.Builder
		log := newLogger(&out, slog.LevelInfo, json)
		log.Info("waiting", "hold", 1500*time.Millisecond, "delay_seconds", 2*time.Second, "count", 3)
		want := []string{`"hold_seconds":1.5`, `"delay_seconds":2`, `"count":3`}
		if !json {
			want = []string{"hold_seconds=1.5", "delay_seconds=2", "count=3"}
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("json=%v: %q lacks %s", json, out.String(), w)
			}
		}
	}
}
