package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/logbuf"
)

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
	// Only a 2xx is healthy: a 404 (a wrong path) or a redirect with
	// nowhere to go is not.
	for _, status := range []int{200, 204, 299, 302, 404, 500} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		want := 1
		if status/100 == 2 {
			want = 0
		}
		if got := run([]string{"probe", srv.URL}, nil, io.Discard, io.Discard); got != want {
			t.Errorf("probe of a server answering %d = %d, want %d", status, got, want)
		}
		srv.Close()
	}
}

// A target that never answers fails the probe once its timeout passes;
// what the probe prints hides a password in the URL.
func TestProbeIsBoundedAndHidesThePassword(t *testing.T) {
	hung := stallingServer(t, "")
	withProbeTimeout(t, 50*time.Millisecond)
	u := strings.Replace(hung.URL, "http://", "http://probe:s3cr3tpw@", 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run([]string{"probe", u}, nil, io.Discard, &stderr) }()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("probe of a target that never answers = %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("probe still waits 10s on a target that never answers")
	}
	if strings.Contains(stderr.String(), "s3cr3t") || !strings.Contains(stderr.String(), "probe:") {
		t.Errorf("stderr %q: want the URL with its password hidden", stderr.String())
	}
	var out bytes.Buffer
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	if code := run([]string{"probe", strings.Replace(ok.URL, "http://", "http://probe:s3cr3tpw@", 1)}, nil, &out, io.Discard); code != 0 || strings.Contains(out.String(), "s3cr3t") {
		t.Errorf("exit %d, printed %q: want 0 and the password hidden", code, out.String())
	}
}

func TestProbePrintsWholeBody(t *testing.T) {
	big := strings.Repeat("berth_metric 1\n", 2000) // 30 kB, like /metrics
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	var out bytes.Buffer
	if code := run([]string{"probe", srv.URL}, nil, &out, io.Discard); code != 0 || !strings.HasSuffix(out.String(), big) {
		t.Fatalf("exit %d, printed %d bytes of %d", code, out.Len(), len(big))
	}
}

// A body the probe's timeout cuts short (a target that answers 200 and
// stalls) fails the probe, saying so: what it printed is not the answer.
// One longer than the probe prints passes, and says the rest is not shown.
func TestProbeSaysWhenTheBodyIsCut(t *testing.T) {
	stalled := stallingServer(t, "berth_metric 1\n")
	withProbeTimeout(t, 100*time.Millisecond)
	var out, stderr bytes.Buffer
	if code := run([]string{"probe", stalled.URL + "/metrics"}, nil, &out, &stderr); code != 1 || !strings.Contains(stderr.String(), "the answer's body was cut short after 15 bytes: ") {
		t.Errorf("probe of a body that stalls: exit %d, stderr %q; want 1 and the body named as cut short", code, stderr.String())
	}

	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(zeros{}, maxProbeBody+1<<10))
	}))
	defer huge.Close()
	withProbeTimeout(t, 30*time.Second)
	out.Reset()
	stderr.Reset()
	code := run([]string{"probe", huge.URL}, nil, &out, &stderr)
	if printed := out.Len() - len(huge.URL+" 200 OK\n"); code != 0 || printed != maxProbeBody || !strings.Contains(stderr.String(), "longer than 8 MiB; the rest is not printed") {
		t.Errorf("probe of a body over 8 MiB: exit %d, printed %d bytes, stderr %q; want 0, 8 MiB, and the cut named", code, printed, stderr.String())
	}
}

// stallingServer answers every request with prefix (flushed, unless
// empty: then not even the headers go), then holds it until the request
// ends or the test does.
func stallingServer(t *testing.T, prefix string) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefix != "" {
			io.WriteString(w, prefix)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // first: Close waits for the handler
	return srv
}

// withProbeTimeout sets probeTimeout to d until the test ends.
func withProbeTimeout(t *testing.T, d time.Duration) {
	old := probeTimeout
	probeTimeout = d
	t.Cleanup(func() { probeTimeout = old })
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// runningSidecar is serveSidecar on a loopback port, for a test.
type runningSidecar struct {
	url    string
	logs   *logbuf.Buffer
	exited chan int
	client *http.Client
}

// startSidecar serves a sidecar with cfg and returns once it answers
// /ready with want (so its signals are watched).
func startSidecar(t *testing.T, cfg sidecarConfig, want int) *runningSidecar {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := &runningSidecar{url: "http://" + ln.Addr().String(), logs: &logbuf.Buffer{}, exited: make(chan int, 1),
		client: &http.Client{Timeout: 5 * time.Second}}
	go func() { sc.exited <- serveSidecar(ln, cfg, slog.New(slog.NewJSONHandler(sc.logs, nil))) }()
	resp, err := sc.client.Get(sc.url + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("/ready = %d, want %d", resp.StatusCode, want)
	}
	return sc
}

// status GETs path and returns the answer's status.
func (sc *runningSidecar) status(t *testing.T, path string) int {
	t.Helper()
	resp, err := sc.client.Get(sc.url + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// quit calls the quit endpoint (Istio's path).
func (sc *runningSidecar) quit(t *testing.T) { t.Helper(); sc.quitAt(t, "/quitquitquit") }

// quitAt POSTs to the quit path given.
func (sc *runningSidecar) quitAt(t *testing.T, path string) {
	t.Helper()
	resp, err := sc.client.Post(sc.url+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// exitsFor waits for the sidecar to exit 0, logging reason as its reason.
func (sc *runningSidecar) exitsFor(t *testing.T, reason string) {
	t.Helper()
	select {
	case code := <-sc.exited:
		if code != 0 || !strings.Contains(sc.logs.String(), `"reason":"`+reason+`"`) {
			t.Fatalf("exit %d, logs:\n%s; want 0 and reason %q", code, sc.logs.String(), reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sidecar still running, want it ended by %s", reason)
	}
}

func sendSignal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

// The stand-in answers readiness at Istio's and the plain path, and quits
// at Istio's and Linkerd's.
func TestSidecarCommand(t *testing.T) {
	for _, path := range []string{"/quitquitquit", "/shutdown"} {
		t.Run(path, func(t *testing.T) {
			sc := startSidecar(t, sidecarConfig{ReadyDelay: time.Hour}, http.StatusServiceUnavailable) // not ready before its delay
			if code := sc.status(t, "/healthz/ready"); code != http.StatusServiceUnavailable {
				t.Errorf("/healthz/ready = %d before the ready delay, want 503 as /ready", code)
			}
			sc.quitAt(t, path)
			sc.exitsFor(t, "quit endpoint")
			if !strings.Contains(sc.logs.String(), "sidecar quit requested") {
				t.Fatalf("logs:\n%s", sc.logs.String())
			}
		})
	}
	sc := startSidecar(t, sidecarConfig{}, http.StatusOK)
	if code := sc.status(t, "/healthz/ready"); code != http.StatusOK {
		t.Errorf("/healthz/ready = %d once ready, want 200", code)
	}
	sc.quit(t)
	sc.exitsFor(t, "quit endpoint")
}

// A classic sidecar's hold after SIGTERM ends when the service calls its
// quit endpoint, or at once on a second signal, as a second signal ends
// the service (it used to be ignored until the hold was over), or when
// the hold is over.
func TestSidecarHoldEnds(t *testing.T) {
	for _, tt := range []struct {
		name, reason string
		hold         time.Duration
		end          func(t *testing.T, sc *runningSidecar)
	}{
		{"quit endpoint", "quit endpoint", time.Hour, func(t *testing.T, sc *runningSidecar) { sc.quit(t) }},
		{"second signal", "second signal interrupt", time.Hour, func(t *testing.T, _ *runningSidecar) { sendSignal(t, syscall.SIGINT) }},
		{"hold over", "hold over", 50 * time.Millisecond, func(*testing.T, *runningSidecar) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := startSidecar(t, sidecarConfig{Hold: tt.hold, debounce: time.Nanosecond}, http.StatusOK)
			sendSignal(t, syscall.SIGTERM)
			// The end only once the signal is handled: the hold has begun.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if !sc.logs.WaitFor(ctx, "sidecar got signal") {
				t.Fatalf("no signal logged:\n%s", sc.logs.String())
			}
			tt.end(t, sc)
			sc.exitsFor(t, tt.reason)
		})
	}
}

// A second SIGTERM within a second of the first (one SIGTERM forwarded
// twice) does not end a classic sidecar's hold, as it does not end the
// service's drain: it used to, and the proxy left while the app drained
// through it.
func TestSidecarHoldIgnoresADuplicateSignal(t *testing.T) {
	sc := startSidecar(t, sidecarConfig{Hold: time.Hour, debounce: time.Hour}, http.StatusOK)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sendSignal(t, syscall.SIGTERM)
	if !sc.logs.WaitFor(ctx, "sidecar got signal") {
		t.Fatalf("no signal logged:\n%s", sc.logs.String())
	}
	sendSignal(t, syscall.SIGTERM)
	if !sc.logs.WaitFor(ctx, "sidecar signal ignored") {
		t.Fatalf("the duplicate signal was not ignored:\n%s", sc.logs.String())
	}
	select {
	case code := <-sc.exited:
		t.Fatalf("the sidecar exited %d on a duplicate signal:\n%s", code, sc.logs.String())
	default:
	}
	sc.quit(t)
	sc.exitsFor(t, "quit endpoint")
}

// SIGHUP ends the sidecar as SIGTERM does (a classic one holds first), as
// it drains the service; it used to kill the process with no log line.
func TestSidecarHangUp(t *testing.T) {
	sc := startSidecar(t, sidecarConfig{}, http.StatusOK)
	sendSignal(t, syscall.SIGHUP)
	sc.exitsFor(t, "hangup")
}

// Every way the commands can be misused exits 2, the code for what the
// caller must fix, and says why: arguments where none are taken (they
// used to be ignored), a sidecar address already taken (it exited 1, a
// failed start), and sidecar settings the service itself would refuse: not
// a duration, a typo, a duration set to nothing (it meant the default), a
// duration out of range (the sidecar took all of these once).
func TestMisuseExits2(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"serve with arguments", []string{"serve", "--port=80"}, nil, `server: serve takes no arguments, got ["--port=80"]`},
		{"version with arguments", []string{"version", "x"}, nil, `server: version takes no arguments`},
		{"sidecar with arguments", []string{"sidecar", "x"}, nil, `server: sidecar takes no arguments`},
		{"help with arguments", []string{"help", "probe"}, nil, `server: help takes no arguments`},
		{"--help with arguments", []string{"--help", "x"}, nil, `server: --help takes no arguments`},
		{"probe of a URL without its scheme, its password hidden", []string{"probe", "admin:s3cr3tpw@127.0.0.1:9090/livez"}, nil, `"admin:xxxxx@127.0.0.1:9090/livez" is not an http:// or https:// URL with a host`},
		{"probe without a URL", []string{"probe"}, nil, "usage: server probe URL"},
		{"probe of a URL without its scheme", []string{"probe", "localhost:9090/livez"}, nil, `"localhost:9090/livez" is not an http:// or https:// URL with a host`},
		{"probe of a URL without a host", []string{"probe", "http:///livez"}, nil, "is not an http:// or https:// URL with a host"},
		{"probe of another scheme", []string{"probe", "ftp://127.0.0.1/livez"}, nil, `"ftp://127.0.0.1/livez" is not an http:// or https:// URL with a host`},
		{"probe of another scheme, its password hidden", []string{"probe", "ftp://u:s3cr3tpw@127.0.0.1/livez"}, nil, `"ftp://u:xxxxx@127.0.0.1/livez" is not an http:// or https:// URL with a host`},
		{"sidecar log format unknown", []string{"sidecar"}, map[string]string{"BERTH_LOG_FORMAT": "xml"}, `BERTH_LOG_FORMAT=\"xml\": want json or text`},
		// An empty log format is the default, as for the service: what is
		// refused here is the address, checked after the settings.
		{"sidecar log format empty", []string{"sidecar"}, map[string]string{"BERTH_LOG_FORMAT": "", "BERTH_SIDECAR_ADDR": taken.Addr().String()},
			`BERTH_SIDECAR_ADDR=\"` + taken.Addr().String() + `\": listen tcp`},
		{"an unknown command with arguments", []string{"dance", "x"}, nil, `unknown command "dance"`},
		{"sidecar on an empty port", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_ADDR": ":"},
			`BERTH_SIDECAR_ADDR=\":\": want HOST:PORT or :PORT, such as :8080`},
		{"sidecar on a port out of range", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_ADDR": ":70000"},
			`BERTH_SIDECAR_ADDR=\":70000\": want a port from 0 to 65535`},
		{"sidecar on a port in use", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_ADDR": taken.Addr().String()},
			`BERTH_SIDECAR_ADDR=\"` + taken.Addr().String() + `\": listen tcp`},
		{"sidecar delay not a duration", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_READY_DELAY": "soon"}, "BERTH_SIDECAR_READY_DELAY"},
		{"sidecar variable misspelt", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_HLOD": "5s"},
			"BERTH_SIDECAR_HLOD is not a berth variable; did you mean BERTH_SIDECAR_HOLD?"},
		{"sidecar hold set but empty", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_HOLD": ""},
			"BERTH_SIDECAR_HOLD is set but empty: unset it for its default (0s)"},
		{"sidecar hold negative", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_HOLD": "-5s"},
			`BERTH_SIDECAR_HOLD=\"-5s\": want between 1ns and 24h0m0s (or 0)`},
		{"sidecar delay negative", []string{"sidecar"}, map[string]string{"BERTH_SIDECAR_READY_DELAY": "-1s"},
			`BERTH_SIDECAR_READY_DELAY=\"-1s\": want between 1ns and 1h0m0s (or 0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			exited := make(chan int, 1)
			go func() { exited <- run(tt.args, tt.env, &stdout, &stderr) }()
			select {
			case code := <-exited:
				if code != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "s3cr3t") {
					t.Fatalf("exit %d, stderr %q; want 2 and %q, and no password", code, stderr.String(), tt.want)
				}
			case <-time.After(30 * time.Second): // a regression starts the command instead of refusing it
				t.Fatalf("still running after 30s; want it refused with exit 2 and %q", tt.want)
			}
		})
	}
}

// prune-pushgateway deletes its namespace's berth-exit groups pushed longer
// ago than its argument (only a Deployment's pods' when it names one), and
// refuses a bad argument or variable with exit
// 2 and a Pushgateway it cannot list with exit 1.
func TestPrunePushgatewayCommand(t *testing.T) {
	now := float64(time.Now().Unix())
	var mu sync.Mutex
	var deleted []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			mu.Lock()
			deleted = append(deleted, r.URL.Path)
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			return
		}
		group := func(ns, pod string, pushed float64) string {
			return fmt.Sprintf(`{"labels":{"job":"berth-exit","namespace":%q,"pod":%q},"push_time_seconds":{"metrics":[{"value":"%g"}]}}`, ns, pod, pushed)
		}
		fmt.Fprintf(w, `{"status":"success","data":[%s,%s,%s,%s,%s]}`,
			group("shop", "old", now-7200), group("shop", "new", now-60), group("other", "old", now-7200),
			group("shop", "rel-berth-7d9f8c6b5-x2x4z", now-7200), group("shop", "rel-berth-x-7d9f8c6b5-abcde", now-7200))
	}))
	defer gw.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()

	// A Pushgateway that lists a group and refuses to delete it.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			http.Error(w, "storage is read-only", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":[{"labels":{"job":"berth-exit","namespace":"shop","pod":"old"},"push_time_seconds":{"metrics":[{"value":"%g"}]}}]}`, now-7200)
	}))
	defer refusing.Close()
	withPassword := strings.Replace(refusing.URL, "http://", "http://admin:s3cr3tpw@", 1)

	env := map[string]string{"BERTH_PUSHGATEWAY_URL": gw.URL, "POD_NAMESPACE": "shop"}
	var logs bytes.Buffer
	if code := run([]string{"prune-pushgateway", "1h"}, env, io.Discard, &logs); code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	mu.Lock()
	got := slices.Clone(deleted)
	mu.Unlock()
	if len(got) != 3 || !slices.ContainsFunc(got, func(p string) bool {
		return strings.HasSuffix(p, "/namespace/shop/pod/old") || strings.HasSuffix(p, "/pod/old/namespace/shop")
	}) {
		t.Errorf("deleted %q, want the three groups of namespace shop older than 1h", got)
	}
	// With a Deployment, only its pods' groups: another release's in the
	// namespace (rel-berth-x) are its own prune's to delete.
	mu.Lock()
	deleted = nil
	mu.Unlock()
	if code := run([]string{"prune-pushgateway", "1h", "rel-berth"}, env, io.Discard, &logs); code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	mu.Lock()
	got = slices.Clone(deleted)
	mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], "rel-berth-7d9f8c6b5-x2x4z") {
		t.Errorf("deleted %q, want only the group of rel-berth's pod", got)
	}
	if !strings.Contains(logs.String(), `"msg":"pushgateway-group-deleted"`) || !strings.Contains(logs.String(), `"deleted":1`) {
		t.Errorf("logs do not name what was deleted:\n%s", logs.String())
	}
	// Without POD_NAMESPACE or a Deployment, the whole cluster's: what a
	// release uninstalled or renamed left behind included.
	mu.Lock()
	deleted = nil
	mu.Unlock()
	if code := run([]string{"prune-pushgateway", "1h"}, map[string]string{"BERTH_PUSHGATEWAY_URL": gw.URL}, io.Discard, &logs); code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	mu.Lock()
	got = slices.Clone(deleted)
	mu.Unlock()
	if len(got) != 4 || !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "/namespace/other") }) {
		t.Errorf("deleted %q, want the four groups older than 1h, of every namespace", got)
	}

	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		says string
	}{
		{"no argument", nil, env, 2, "usage: server prune-pushgateway OLDER_THAN [DEPLOYMENT]"},
		{"three arguments", []string{"1h", "rel-berth", "x"}, env, 2, "usage: server prune-pushgateway OLDER_THAN [DEPLOYMENT]"},
		{"not a Deployment's name", []string{"1h", "Rel_Berth"}, env, 2, `DEPLOYMENT=\"Rel_Berth\": want a Deployment's name`},
		{"not a duration", []string{"soon"}, env, 2, "OLDER_THAN=soon: want a Go duration from 0s to 8784h0m0s"},
		{"negative", []string{"-1h"}, env, 2, "OLDER_THAN=-1h"},
		{"longer than a year", []string{"8785h"}, env, 2, "OLDER_THAN=8785h: want a Go duration from 0s to 8784h0m0s"},
		{"no URL", []string{"1h"}, map[string]string{}, 2, "BERTH_PUSHGATEWAY_URL is not set"},
		{"bad URL", []string{"1h"}, map[string]string{"BERTH_PUSHGATEWAY_URL": "pushgateway:9091"}, 2, "BERTH_PUSHGATEWAY_URL"},
		{"misspelt variable", []string{"1h"}, map[string]string{"BERTH_PUSHGATEWAY_URI": gw.URL}, 2, "BERTH_PUSHGATEWAY_URL"},
		{"unreachable", []string{"1h"}, map[string]string{"BERTH_PUSHGATEWAY_URL": closed}, 1, "pruning the Pushgateway failed"},
		{"a name too long for a Deployment", []string{"1h", strings.Repeat("a", 254)}, env, 2, "at most 253"},
		{"a deletion refused, the password hidden", []string{"1h"}, map[string]string{"BERTH_PUSHGATEWAY_URL": withPassword}, 1, "admin:xxxxx@"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			if code := run(append([]string{"prune-pushgateway"}, tt.args...), tt.env, io.Discard, &logs); code != tt.code || !strings.Contains(logs.String(), tt.says) || strings.Contains(logs.String(), "s3cr3t") {
				t.Errorf("exit %d, want %d, logging %q:\n%s", code, tt.code, tt.says, logs.String())
			}
		})
	}
}

// podsOf matches a Deployment's pods, whose names Kubernetes generates as
// NAME-HASH-XXXXX with what comes before the five random characters cut to
// 58, and no other Deployment's.
func TestPodsOf(t *testing.T) {
	long := strings.Repeat("a", 50) // 50 + "-" + a 10-character hash + "-" passes 58
	longer := strings.Repeat("b", 60)
	for _, tt := range []struct {
		deployment, pod string
		want            bool
	}{
		{"rel-berth", "rel-berth-7d9f8c6b5-x2x4z", true},
		{"rel-berth", "rel-berth-5c4d-x2x4z", true},
		{"rel-berth", "rel-berth-x-7d9f8c6b5-abcde", false}, // release rel-berth-x's
		{"rel-berth", "rel-berth-postgresql-0", false},
		{"rel-berth", "other-7d9f8c6b5-x2x4z", false},
		{"rel-berth", "rel-berth-7d9f8c6b5-x2x4", false},
		{long, long + "-7d9f8c6" + "x2x4z", true},   // the hash cut to 58, and its dash
		{long, long + "-x-7d9f8c" + "x2x4z", false}, // Deployment LONG-x's, cut
		{longer, longer[:57] + "-x2x4z", false},
		{longer, longer[:58] + "x2x4z", true},  // the name itself cut
		{longer, longer[:58] + "abcde", false}, // cut, but no generated end
		// A longer Deployment's pods, cut to 58: "canary1" is not written
		// in Kubernetes's safe alphabet, as a hash would be.
		{long, (long + "-canary1-7d9f8c6b5-")[:58] + "x2x4z", false},
		{long, (long + "-canary12345-7d9f8c6b5-")[:58] + "x2x4z", false},
		{"rel-berth", "rel-berth-7d9f8c6b5-abcde", false}, // not a generated end
	} {
		if got := podsOf(tt.deployment).MatchString(tt.pod); got != tt.want {
			t.Errorf("podsOf(%q).MatchString(%q) = %v, want %v", tt.deployment, tt.pod, got, tt.want)
		}
	}
}

// help, -h and --help print the usage, which names every command, and
// exit 0.
func TestHelpPrintsTheUsage(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		var stdout bytes.Buffer
		if code := run([]string{arg}, nil, &stdout, io.Discard); code != 0 || !strings.Contains(stdout.String(), "usage: server [serve | sidecar | probe URL | prune-pushgateway OLDER_THAN [DEPLOYMENT] | version | help]") {
			t.Errorf("server %s: exit %d, printed %q", arg, code, stdout.String())
		}
	}
}
