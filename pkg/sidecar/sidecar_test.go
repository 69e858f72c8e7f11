package sidecar

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/logbuf"
	"github.com/berth-dev/berth/internal/retrytest"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string // names
		wantErr string
	}{
		{[]string{"http://127.0.0.1:15021/healthz/ready", "tcp://127.0.0.1:4143", " 127.0.0.1:9 ", ""}, []string{"127.0.0.1:15021", "127.0.0.1:4143", "127.0.0.1:9"}, ""},
		{[]string{"ftp://x:1"}, nil, `scheme "ftp" not supported`},
		{[]string{"localhost"}, nil, "needs host:port"},
		{[]string{"a:1", "tcp://a:1"}, nil, "listed twice"},
		// Every entry refused is named, not the first alone.
		{[]string{"ftp://x:1", "a:1", "localhost"}, nil, `sidecar "ftp://x:1": scheme "ftp" not supported; want http, https or tcp; sidecar "localhost": needs host:port`},
		{[]string{"127.0.0.1:99999"}, nil, `sidecar "127.0.0.1:99999": port 99999; want a number from 1 to 65535`},
		// A readiness URL without its scheme would be a TCP check, ready
		// on any accepted connection, even a proxy answering 503.
		{[]string{"127.0.0.1:15021/healthz/ready"}, nil, `sidecar "127.0.0.1:15021/healthz/ready": a tcp target is host:port alone; for a readiness URL write http://host:port/path`},
		{[]string{"tcp://127.0.0.1:1/"}, nil, "a tcp target is host:port alone"},
		{[]string{"tcp://127.0.0.1:1?x=1"}, nil, "a tcp target is host:port alone"},
		{[]string{"tcp://127.0.0.1:1#x"}, nil, "a tcp target is host:port alone"},
		{[]string{"tcp://u:s3cret@127.0.0.1:1"}, nil, `sidecar "tcp://u:xxxxx@127.0.0.1:1": a tcp target is host:port alone`},
		{[]string{"u:s3cret@127.0.0.1:1"}, nil, `sidecar "u:xxxxx@127.0.0.1:1": a tcp target is host:port alone`},
		{[]string{`http://u:s3cr"et@127.0.0.1:1/`}, nil, `sidecar "http://u:xxxxx@127.0.0.1:1/": net/url: invalid userinfo`},
		{[]string{"tcp://u:s3\x01cret@h:1"}, nil, `sidecar "tcp://u:xxxxx@h:1": net/url: invalid control character in URL`},
		{[]string{"http://u:s3cret@127.0.0.1:70000/ready"}, nil, `sidecar "http://u:xxxxx@127.0.0.1:70000/ready": port 70000`},
		{[]string{"tcp://127.0.0.1:0"}, nil, "port 0; want a number from 1 to 65535"},
		{[]string{"http://127.0.0.1:70000/ready"}, nil, "port 70000; want a number from 1 to 65535"},
		{[]string{"127.0.0.1:http"}, nil, `invalid port ":http" after host`},
		{[]string{"127.0.0.1:65535", "[::1]:1"}, []string{"127.0.0.1:65535", "[::1]:1"}, ""},
		// A host that decodes to bytes that are not UTF-8 cannot label
		// the check's metrics (one such label fails every scrape).
		{[]string{"istio%ff:15021"}, nil, `sidecar "istio%ff:15021": host "istio\xff:15021" cannot name its readiness check: check "sidecar/istio\xff:15021": name is not valid UTF-8`},
		// An http(s) URL without a port means its scheme's, as a quit URL
		// does; a TCP target has no scheme's port to mean.
		{[]string{"http://envoy/ready", "https://[::1]/ready", "http://u:s3cret@proxy/"}, []string{"envoy:80", "[::1]:443", "proxy:80"}, ""},
		{[]string{"http://envoy:80/ready", "http://envoy/ready"}, nil, `sidecar "http://envoy/ready": envoy:80 listed twice`},
		{[]string{"http://envoy:/ready"}, nil, "needs host:port"},
		// A port is a number, however many zeros lead it.
		{[]string{"envoy:08080", "[::1]:0443"}, []string{"envoy:8080", "[::1]:443"}, ""},
		{[]string{"envoy:8080", "http://envoy:08080/ready"}, nil, `sidecar "http://envoy:08080/ready": envoy:8080 listed twice`},
		{[]string{"http:///ready"}, nil, "needs host:port"},
		{[]string{"tcp://envoy"}, nil, "needs host:port"},
		// A host url.Parse decodes to one with a space would name a check
		// probes refuses: the service panicked as it wired the checks.
		{[]string{"http://[fe80::1%25en0%20x]:15021/ready"}, nil, `sidecar "http://[fe80::1%25en0%20x]:15021/ready": host "[fe80::1%en0 x]:15021" cannot name its readiness check`},
		// An IPv6 zone's '%' too: the check's sub-path, written as its name
		// reads (/readyz/sidecar/[fe80::1%en0]:15021), is a 400 before any
		// handler runs. A pod's sidecars listen on loopback.
		{[]string{"http://[fe80::1%25en0]:15021/ready"}, nil, `host "[fe80::1%en0]:15021" cannot name its readiness check: check "sidecar/[fe80::1%en0]:15021": name must not contain whitespace or any of`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := ParseTargets(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3") {
					t.Fatalf("err = %v: it shows the password", err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v", got, err)
			}
			for i := range got {
				if got[i].Name != tt.want[i] {
					t.Errorf("name %d = %q, want %q", i, got[i].Name, tt.want[i])
				}
			}
		})
	}
}

// Only a 2xx is ready: a sidecar answering 404 (a wrong path) or a
// redirect it would not follow is not.
func TestProbeWantsA2xx(t *testing.T) {
	for _, status := range []int{200, 204, 299, 304, 404, 418, 500, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
			defer sc.Close()
			targets, err := ParseTargets([]string{sc.URL + "/ready"})
			if err != nil {
				t.Fatal(err)
			}
			err = NewWaiter(targets, Options{Logger: quiet}).probe(t.Context(), targets[0])
			if ready := status/100 == 2; ready != (err == nil) {
				t.Fatalf("a sidecar answering %d: probe = %v, want ready %v", status, err, ready)
			}
		})
	}
}

// One probe lasts no longer than AttemptTimeout, for a sidecar that
// accepts the request and never answers.
func TestProbeIsBoundedByAttemptTimeout(t *testing.T) {
	hung := make(chan struct{})
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hung:
		}
	}))
	defer sc.Close()
	defer close(hung)
	targets, err := ParseTargets([]string{sc.URL + "/ready"})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWaiter(targets, Options{AttemptTimeout: 20 * time.Millisecond, Logger: quiet})
	done := make(chan error, 1)
	go func() { done <- w.probe(t.Context(), targets[0]) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("probe of a sidecar that never answers = %v, want its attempt's deadline", err)
		}
	case <-time.After(time.Minute): // a failure detector, not a pause: it passes in 20ms
		t.Fatal("probe of a sidecar that never answers did not return: AttemptTimeout does not bound it")
	}
}

// Errors and logs name a sidecar's URL with its password hidden, in its
// userinfo or its query (?password=), as the README says.
func TestErrorsHideThePassword(t *testing.T) {
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer sc.Close()
	for _, tt := range []struct{ name, url, shown string }{
		{"userinfo", strings.Replace(sc.URL, "http://", "http://probe:s3cret-pw@", 1) + "/ready", "probe:xxxxx@"},
		{"query", sc.URL + "/ready?password=s3cret-pw", "password=xxxxx"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			targets, err := ParseTargets([]string{tt.url})
			if err != nil {
				t.Fatal(err)
			}
			var logs logbuf.Buffer
			opts := Options{Deadline: 20 * time.Millisecond, InitialBackoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			waitErr := NewWaiter(targets, opts).Wait(t.Context())
			quitErr := Quit(t.Context(), []string{tt.url}, opts)
			if waitErr == nil || quitErr == nil {
				t.Fatalf("Wait = %v, Quit = %v; want both to fail on a 503", waitErr, quitErr)
			}
			for what, text := range map[string]string{"Wait's error": waitErr.Error(), "Quit's error": quitErr.Error(), "the log": logs.String()} {
				if strings.Contains(text, "s3cret") || !strings.Contains(text, tt.shown) {
					t.Errorf("%s shows the password, or not the URL: %s", what, text)
				}
			}
		})
	}
	if err := ValidateQuitURLs([]string{"ftp://u:s3cret-pw@127.0.0.1:1/quit"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("ValidateQuitURLs = %v, want an error without the password", err)
	}
}

// Checks are background readiness checks that fail after three misses in
// a row, each bounded by twice the attempt timeout.
func TestChecksSettings(t *testing.T) {
	targets, err := ParseTargets([]string{"127.0.0.1:15021", "http://127.0.0.1:15020/ready"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		interval, attemptTimeout, wantInterval, wantTimeout time.Duration
	}{
		{0, 0, 5 * time.Second, 2 * time.Second},
		{time.Second, 300 * time.Millisecond, time.Second, 600 * time.Millisecond},
		// "No limit per attempt": doubling it must not overflow into a
		// negative timeout, which registering the check refuses.
		{time.Second, math.MaxInt64, time.Second, math.MaxInt64},
	}
	for _, tt := range tests {
		checks := NewWaiter(targets, Options{AttemptTimeout: tt.attemptTimeout}).Checks(tt.interval)
		if len(checks) != 2 {
			t.Fatalf("%d checks for 2 targets", len(checks))
		}
		for _, c := range checks {
			probes.New().Add(probes.Readiness, c) // panics on a timeout it refuses
		}
		wantTimeout := tt.wantTimeout
		for i, c := range checks {
			if c.Name != "sidecar/"+targets[i].Name || c.Interval != tt.wantInterval || c.Timeout != wantTimeout || c.FailureThreshold != 3 {
				t.Errorf("Checks(%v) with AttemptTimeout %v: %s every %v, timeout %v, threshold %d; want sidecar/%s every %v, timeout %v, threshold 3",
					tt.interval, tt.attemptTimeout, c.Name, c.Interval, c.Timeout, c.FailureThreshold, targets[i].Name, tt.wantInterval, wantTimeout)
			}
		}
	}
}

// NewWaiter refuses, as a programmer's error, a target ParseTargets would
// not have made: waiting for it would fail mid-startup (a nil URL panicked
// in the wait's own goroutine, which no hook's recovery reaches, and a
// scheme it cannot probe spent the whole deadline).
func TestNewWaiterRefusesATargetParseTargetsWouldNotMake(t *testing.T) {
	mustParse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{"no URL", Target{Name: "127.0.0.1:15021"}, "no URL"},
		{"a scheme it cannot probe", Target{Name: "localhost:15021", URL: mustParse("localhost:15021")}, `scheme "localhost" not supported; want http, https or tcp`},
		{"no host", Target{Name: "x:1", URL: mustParse("http:///ready")}, "no host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good, err := ParseTargets([]string{"127.0.0.1:15020"})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, "target 1 (") || !strings.Contains(msg, tt.want) || !strings.Contains(msg, "ParseTargets") {
					t.Errorf("NewWaiter with %+v panicked with %q; want it to name target 1, say %q and point to ParseTargets", tt.target, msg, tt.want)
				}
			}()
			NewWaiter(append(good, tt.target), Options{Logger: quiet})
		})
	}
	// A name no check can have does for a waiter used only to wait: only
	// Checks needs one (and its registration refuses it).
	for _, name := range []string{"", "istio proxy"} {
		NewWaiter([]Target{{Name: name, URL: mustParse("tcp://127.0.0.1:15021")}}, Options{Logger: quiet})
	}
}

func TestWaitRetriesUntilReady(t *testing.T) {
	var hits atomic.Int32
	httpSidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.WriteHeader(503)
		}
	}))
	defer httpSidecar.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer ln.Close()
	targets, err := ParseTargets([]string{httpSidecar.URL + "/ready", ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWaiter(targets, Options{InitialBackoff: time.Millisecond, Logger: quiet})
	app := &lifespan.App{Name: "api"}
	app.Append(w.Hook())
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer app.Stop(t.Context())
	if hits.Load() != 3 {
		t.Fatalf("readiness URL asked %d times, want 3 (two 503s, then 200)", hits.Load())
	}
}

// With several sidecars, Wait waits for each: one ready does not stand
// for the others, and the one that is not is named, in the error and in
// the log while the wait goes on.
func TestWaitWaitsForEverySidecar(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer notReady.Close()
	targets, err := ParseTargets([]string{ready.URL + "/ready", notReady.URL + "/healthz/ready"})
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	w := NewWaiter(targets, Options{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Deadline: 100 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	err = w.Wait(t.Context())
	if err == nil || !strings.Contains(err.Error(), targets[1].Name) || strings.Contains(err.Error(), "sidecar "+targets[0].Name+" ") {
		t.Fatalf("Wait = %v, want the second sidecar, and it alone, named not ready", err)
	}
	// Its first failed attempt, then each time the count doubles: a line
	// per attempt would fill the log of a long wait.
	for _, n := range []int{1, 2, 4, 8} {
		if !strings.Contains(logs.String(), fmt.Sprintf(`"msg":"waiting for sidecar","sidecar":"%s","attempt":%d,`, targets[1].Name, n)) {
			t.Errorf("no line for the sidecar waited for at its failed attempt %d:\n%s", n, logs.String())
		}
	}
	for _, n := range []int{3, 5, 6, 7} {
		if strings.Contains(logs.String(), fmt.Sprintf(`"attempt":%d,`, n)) {
			t.Errorf("a line for attempt %d, which is no power of two:\n%s", n, logs.String())
		}
	}
}

func TestWaitDeadlineNamesSidecar(t *testing.T) {
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer notReady.Close()
	targets, _ := ParseTargets([]string{notReady.URL + "/healthz/ready"})
	w := NewWaiter(targets, Options{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Deadline: 50 * time.Millisecond, Logger: quiet})
	err := w.Wait(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Fatalf("Wait = %v", err)
	}
}

// A probe still in flight when the deadline ends fails with the deadline;
// the error must still carry the sidecar's own last answer.
func TestWaitDeadlineKeepsLastRealFailure(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		select { // hangs until the waiter gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer sidecar.Close()
	defer close(release)
	targets, _ := ParseTargets([]string{sidecar.URL + "/healthz/ready"})
	w := NewWaiter(targets, Options{InitialBackoff: time.Millisecond, AttemptTimeout: time.Minute, Deadline: 200 * time.Millisecond, Logger: quiet})
	err := w.Wait(t.Context())
	if err == nil || !strings.Contains(err.Error(), "last failure: GET "+sidecar.URL+"/healthz/ready: 503 Service Unavailable") {
		t.Fatalf("Wait = %v, want the sidecar's 503, not the deadline of the probe in flight", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d probes, want 2 (a 503, then one in flight at the deadline)", hits.Load())
	}
}

func TestChecksFollowTheSidecar(t *testing.T) {
	var up atomic.Bool
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
		}
	}))
	defer sc.Close()
	targets, _ := ParseTargets([]string{sc.URL})
	reg := probes.New()
	for _, c := range NewWaiter(targets, Options{Logger: quiet}).Checks(time.Hour) {
		c.Interval = 0 // run inline so the test reads a fresh result
		reg.Add(probes.Readiness, c)
	}
	rep, _ := reg.Evaluate(t.Context(), probes.Readiness, "", nil)
	if rep.Passing || rep.Checks[0].Name != "sidecar/"+targets[0].Name {
		t.Fatalf("not-ready sidecar: %+v", rep)
	}
	up.Store(true)
	if rep, _ = reg.Evaluate(t.Context(), probes.Readiness, "", nil); !rep.Passing {
		t.Fatalf("ready sidecar: %+v", rep)
	}
}

// Whatever the interval asked for, a sidecar check runs in the background
// (an interval of 0 or less means the default): a probe reads its cached
// result and never calls the sidecar itself, however slow it is.
func TestChecksNeverRunInTheProbe(t *testing.T) {
	var hits atomic.Int32
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer sc.Close()
	targets, _ := ParseTargets([]string{sc.URL})
	for _, tt := range []struct {
		interval, want time.Duration
	}{{0, 5 * time.Second}, {-time.Second, 5 * time.Second}, {2 * time.Second, 2 * time.Second}} {
		t.Run(tt.interval.String(), func(t *testing.T) {
			reg := probes.New() // never started: only a probe could run a check
			for _, c := range NewWaiter(targets, Options{Logger: quiet}).Checks(tt.interval) {
				if c.Interval != tt.want {
					t.Errorf("Checks(%v): interval %v, want %v", tt.interval, c.Interval, tt.want)
				}
				reg.Add(probes.Readiness, c)
			}
			rep, _ := reg.Evaluate(t.Context(), probes.Readiness, "", nil)
			if hits.Load() != 0 || !errors.Is(rep.Checks[0].Err, probes.ErrNotRun) {
				t.Fatalf("the probe called the sidecar %d times (result %v); want it to read the background result", hits.Load(), rep.Checks[0].Err)
			}
		})
	}
}

func TestQuit(t *testing.T) {
	var posts atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/quitquitquit" {
			posts.Add(1)
		}
	}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer bad.Close()
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	goneURL := "http://" + gone.Addr().String() + "/shutdown"
	gone.Close()

	bounded, cancel := context.WithTimeout(t.Context(), 2*time.Second) // a refusal retried would fail, not hang
	defer cancel()
	if err := Quit(bounded, []string{ok.URL + "/quitquitquit", goneURL}, Options{Logger: quiet}); err != nil {
		t.Fatalf("Quit = %v (a sidecar already gone is not an error)", err)
	}
	if posts.Load() != 1 {
		t.Fatalf("posts = %d", posts.Load())
	}
	err := Quit(bounded, []string{bad.URL + "/quitquitquit"}, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") {
		t.Fatalf("Quit = %v", err)
	}
	// A 4xx is no quit either: a wrong path (Linkerd's /shutdown sent to
	// Istio) or method, and the sidecar runs on.
	for _, code := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		err := Quit(bounded, []string{refusing.URL + "/shutdown"}, Options{Logger: quiet})
		refusing.Close()
		if err == nil || !strings.Contains(err.Error(), http.StatusText(code)) {
			t.Errorf("Quit to a sidecar answering %d = %v, want a failure naming it", code, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Quit(ctx, []string{ok.URL + "/quitquitquit"}, Options{Logger: quiet}); err == nil {
		t.Fatal("Quit with a done context succeeded")
	}
}

// TestQuitRetriesRefusedWhenAsked: with RetryRefused, a sidecar that is
// not listening yet (its first connections refused) still gets the quit
// once it listens, late in the wait too; one that never listens is a
// failure at the context's end, not a success; one that listens and does
// not answer in time is not reported as never listening; any other failure
// is not retried; and the pauses between attempts are the backoff's.
// Without RetryRefused, a refusal is a sidecar gone.
func TestQuitRetriesRefusedWhenAsked(t *testing.T) {
	release := make(chan struct{})
	var posts atomic.Int32
	handlers := map[string]http.HandlerFunc{
		"ok":     func(http.ResponseWriter, *http.Request) { posts.Add(1) },
		"500":    func(w http.ResponseWriter, _ *http.Request) { posts.Add(1); w.WriteHeader(500) },
		"silent": func(http.ResponseWriter, *http.Request) { posts.Add(1); <-release }, // takes the quit, never answers
	}
	servers := map[string]*httptest.Server{}
	for name, h := range handlers {
		servers[name] = httptest.NewServer(h)
		defer servers[name].Close()
	}
	defer close(release) // before the servers close: they wait for their handlers
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := closed.Addr().String()
	closed.Close() // nothing listens there: a dial is refused
	never := func(int32, time.Duration) bool { return true }
	firstTwo := func(n int32, _ time.Duration) bool { return n <= 2 }
	for _, tt := range []struct {
		name     string
		retry    bool
		proxy    string
		refused  func(dial int32, since time.Duration) bool // whether this dial is refused
		window   time.Duration
		backoff  time.Duration // 0: Quit's default
		posts    int32
		maxDials int32
		err, log string
	}{
		{"listening late, retried", true, "ok", firstTwo, 500 * time.Millisecond, 10 * time.Millisecond, 1, 3, "", "sidecar told to quit"},
		// The default backoff tries at 0, 0.1s, 0.3s and 0.7s, and would
		// next at 1.5s: the attempt aimed shortly before the end finds it.
		{"listening in the last stretch, retried", true, "ok", func(_ int32, since time.Duration) bool { return since < 750*time.Millisecond },
			time.Second, 0, 1, 6, "", "sidecar told to quit"},
		{"never listening, retried", true, "ok", never, 300 * time.Millisecond, 0, 0, 6, "nothing listened there before the quit's timeout", "sidecar quit failed"},
		{"listening, not answering, retried", true, "silent", firstTwo, 300 * time.Millisecond, 10 * time.Millisecond, 1, 3,
			"it listened, but did not answer before the quit's timeout: context deadline exceeded", "sidecar quit failed"},
		{"listening at once, not answering", false, "silent", func(int32, time.Duration) bool { return false }, 300 * time.Millisecond, 0, 1, 1,
			"it listened, but did not answer before the quit's timeout: context deadline exceeded", "sidecar quit failed"},
		{"another failure, not retried", true, "500", func(int32, time.Duration) bool { return false }, time.Second, 10 * time.Millisecond, 1, 1, "500 Internal Server Error", "sidecar quit failed"},
		{"listening late, not retried", false, "ok", firstTwo, 500 * time.Millisecond, 10 * time.Millisecond, 0, 1, "", "sidecar already gone: connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			posts.Store(0)
			var dials atomic.Int32
			dialer := &net.Dialer{}
			begin := time.Now()
			proxy := servers[tt.proxy]
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					if tt.refused(dials.Add(1), time.Since(begin)) {
						return dialer.DialContext(ctx, network, nobody)
					}
					return dialer.DialContext(ctx, network, proxy.Listener.Addr().String())
				}}}
			ctx, cancel := context.WithTimeout(t.Context(), tt.window)
			defer cancel()
			var logs logbuf.Buffer
			err := Quit(ctx, []string{proxy.URL + "/quitquitquit"}, Options{Client: client, RetryRefused: tt.retry,
				InitialBackoff: tt.backoff, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Quit = %v, want %q", err, tt.err)
			}
			if posts.Load() != tt.posts {
				t.Fatalf("posts = %d, want %d", posts.Load(), tt.posts)
			}
			if n := dials.Load(); n > tt.maxDials {
				t.Fatalf("%d dials, want at most %d", n, tt.maxDials)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Fatalf("logs lack %q:\n%s", tt.log, logs.String())
			}
		})
	}
}

// TestQuitAimsAnAttemptBeforeItsEnd: with RetryRefused, refused attempts
// follow the backoff (100ms, doubling to 2s), and one comes a tenth of the
// time left before the deadline, at most 100ms before it, so the end of a
// long wait is not left untried. (Under synctest the times are exact.)
func TestQuitAimsAnAttemptBeforeItsEnd(t *testing.T) {
	ms := retrytest.Ms
	for _, tt := range []struct {
		window time.Duration
		want   []time.Duration
	}{
		{300 * time.Millisecond, ms(0, 100, 270)},                 // a tenth of 300ms: 30ms before
		{1200 * time.Millisecond, ms(0, 100, 300, 700, 1100)},     // a tenth would be 120ms: 100ms before
		{5 * time.Second, ms(0, 100, 300, 700, 1500, 3100, 4900)}, // the backoff's cap of 2s, then 100ms before
	} {
		t.Run(tt.window.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := retrytest.Record(t, 0, "")
				client := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
					_ = a.Try() // records when; the answer is a refusal
					return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
				})}
				ctx, cancel := context.WithTimeout(t.Context(), tt.window)
				defer cancel()
				err := Quit(ctx, []string{"http://sidecar:15020/quitquitquit"}, Options{Client: client, RetryRefused: true, Logger: quiet})
				a.Check(tt.want, err, "nothing listened there before the quit's timeout")
			})
		})
	}
}

// roundTripFunc is an http.RoundTripper of one function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestValidateQuitURLs(t *testing.T) {
	for _, good := range []string{"http://127.0.0.1:15020/quitquitquit", "http://127.0.0.1:65535/quitquitquit", "https://localhost/shutdown"} {
		if err := ValidateQuitURLs([]string{good}); err != nil {
			t.Fatalf("ValidateQuitURLs(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:15020", "http://127.0.0.1:99999/quitquitquit", "http://127.0.0.1:0/quitquitquit",
		"http://127.0.0.1:/quitquitquit", "http://:15020/quitquitquit"} {
		if err := ValidateQuitURLs([]string{bad}); err == nil || !strings.Contains(err.Error(), "want http://host:port/path") {
			t.Fatalf("ValidateQuitURLs(%q) = %v", bad, err)
		}
	}
}

// Wait stops when the caller's context ends, whatever its own deadline:
// a lifespan hook's start timeout bounds the wait.
func TestWaitHonoursTheCallersContext(t *testing.T) {
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := gone.Addr().String()
	gone.Close() // nothing listens there: every attempt is refused
	targets, err := ParseTargets([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWaiter(targets, Options{InitialBackoff: time.Second, Deadline: 3 * time.Second, Logger: quiet})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = w.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "and 1 attempts") {
		t.Fatalf("Wait with an ended context = %v, want it to give up after its first attempt", err)
	}
	// So does the hook, whose context is the start timeout's.
	if _, err := w.Hook().Start(ctx, nil); err == nil || !strings.Contains(err.Error(), "and 1 attempts") {
		t.Fatalf("the hook's start with an ended context = %v, want it to give up after its first attempt", err)
	}
}

// TestWaitAttemptsBeforeTheDeadline: attempts back off from 100ms to 2s,
// and a pause that would pass the moment AttemptTimeout before the
// deadline ends there instead, so a sidecar ready by then is found.
func TestWaitAttemptsBeforeTheDeadline(t *testing.T) {
	ms := retrytest.Ms
	tests := []struct {
		name           string
		deadline       time.Duration
		attemptTimeout time.Duration
		callerDeadline time.Duration // 0: none
		readyAt        int           // the attempt that succeeds; 0: none
		attempts       []time.Duration
		err            string
	}{
		{"never ready", 10 * time.Second, time.Second, 0, 0, ms(0, 100, 300, 700, 1500, 3100, 5100, 7100, 9000), "not ready after 10s and 9 attempts; last failure: 503"},
		{"ready at the last call", 10 * time.Second, time.Second, 0, 9, ms(0, 100, 300, 700, 1500, 3100, 5100, 7100, 9000), ""},
		{"last call on the backoff's own beat", 8100 * time.Millisecond, time.Second, 0, 0, ms(0, 100, 300, 700, 1500, 3100, 5100, 7100), "after 8.1s and 8 attempts"},
		{"the caller's deadline is earlier", time.Minute, time.Second, 3 * time.Second, 0, ms(0, 100, 300, 700, 1500, 2000), "after 3s and 6 attempts"},
		{"attempt timeout longer than the wait", time.Second, 2 * time.Second, 0, 0, ms(0, 100, 300, 700), "after 1s and 4 attempts"},
		{"ready at once", time.Second, time.Second, 0, 1, ms(0), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tt.callerDeadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.callerDeadline)
					defer cancel()
				}
				targets, err := ParseTargets([]string{"127.0.0.1:15021"})
				if err != nil {
					t.Fatal(err)
				}
				w := NewWaiter(targets, Options{Deadline: tt.deadline, AttemptTimeout: tt.attemptTimeout, Logger: quiet})
				attempts := retrytest.Record(t, tt.readyAt, "503")
				err = w.wait(ctx, func(context.Context, Target) error { return attempts.Try() })
				attempts.Check(tt.attempts, err, tt.err)
			})
		})
	}
}

// Linkerd serves /ready and /shutdown on one port (4191), as the chart's
// own sidecar does. The waiter's probes and Quit can share a client, so
// the quit may go over the kept-alive connection a readiness probe left:
// a sidecar that listened there but does not answer is still reported as
// listening, as on a fresh connection.
func TestQuitOverAReusedConnectionSaysItListened(t *testing.T) {
	sc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			<-r.Context().Done() // listens, never answers the quit
		}
	}))
	defer sc.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	targets, err := ParseTargets([]string{sc.URL + "/ready"})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWaiter(targets, Options{Client: client, Logger: quiet})
	if err := w.Wait(t.Context()); err != nil { // leaves an idle connection
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = Quit(ctx, []string{sc.URL + "/shutdown"}, Options{Client: client, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "it listened, but did not answer before the quit's timeout") {
		t.Fatalf("Quit over a reused connection = %v; want the sidecar reported as listening but not answering", err)
	}
}

// onRecord is a slog handler that signals each record whose message is msg.
type onRecord struct {
	msg string
	ch  chan struct{}
}

func (h onRecord) Enabled(context.Context, slog.Level) bool { return true }
func (h onRecord) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h onRecord) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onRecord) WithGroup(string) slog.Handler      { return h }

func refusingAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A readiness URL whose ?password= comes last: the probe's error hides the
// password, but must still say why the sidecar was not ready (the
// connection refused) and still match it, as it does for a URL without a
// password.
func TestProbeErrorWithAQueryPasswordKeepsItsCause(t *testing.T) {
	targets, err := ParseTargets([]string{"http://" + refusingAddr(t) + "/ready?password=s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWaiter(targets, Options{Logger: quiet, AttemptTimeout: time.Second})
	err = w.probe(t.Context(), targets[0])
	if err == nil {
		t.Fatal("probe of a refusing address succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("probe error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("probe error = %q: the failure itself (connection refused) is cut off", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("probe error = %q no longer matches ECONNREFUSED (the unredacted one does)", err)
	}
	// And so Wait's error, whose "last failure" is the probe's.
	w = NewWaiter(targets, Options{Logger: quiet, InitialBackoff: time.Millisecond, Deadline: 30 * time.Millisecond})
	if err := w.Wait(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Wait = %v: its last failure does not say the connection was refused", err)
	}
}

// So does Quit's, for a sidecar that never listened (RetryRefused): the
// password is hidden before its error is wrapped.
func TestQuitErrorWithAQueryPasswordKeepsItsCause(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := Quit(ctx, []string{"http://" + refusingAddr(t) + "/quitquitquit?password=s3cret-pw"},
		Options{Logger: quiet, RetryRefused: true, InitialBackoff: time.Millisecond})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Quit = %v; want the refusal, without the password", err)
	}
}

// A wait whose caller gave up (a signal abandoning startup, another hook's
// failure, an errgroup cancelling with its first error as the cause) says
// so: its error matches context.Canceled, as the database wait's does, and
// does not read as the sidecar's own failure. So a startup abandoned during
// the wait reports no failure of the hook's own after the startup ended (a
// Late HookStarted, logged as an error and counted in
// berth_hook_failures_total, which alerts).
func TestWaitCancelledByTheCallerSaysSo(t *testing.T) {
	// cancelled runs wait until the first attempt was refused and the wait
	// pauses, cancels its context with cause, and returns its error.
	cancelled := func(t *testing.T, cause error, wait func(w *Waiter, ctx context.Context) error) error {
		targets, err := ParseTargets([]string{refusingAddr(t)})
		if err != nil {
			t.Fatal(err)
		}
		waiting := make(chan struct{}, 1)
		w := NewWaiter(targets, Options{InitialBackoff: time.Hour, MaxBackoff: time.Hour, Deadline: time.Hour,
			Logger: slog.New(onRecord{"waiting for sidecar", waiting})})
		ctx, cancel := context.WithCancelCause(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- wait(w, ctx) }()
		<-waiting
		cancel(cause)
		return <-errc
	}
	for _, cause := range []error{nil, errors.New("the metrics server failed")} {
		t.Run(fmt.Sprintf("cause %v", cause), func(t *testing.T) {
			err := cancelled(t, cause, func(w *Waiter, ctx context.Context) error { return w.Wait(ctx) })
			if !errors.Is(err, context.Canceled) || cause != nil && !errors.Is(err, cause) {
				t.Errorf("Wait after its caller cancelled = %q; want an error matching context.Canceled and the cause", err)
			}
			var mu sync.Mutex
			var late []lifespan.Event
			app := &lifespan.App{Name: "api", Observer: func(e lifespan.Event) {
				if e.Late && e.Kind == lifespan.HookStarted {
					mu.Lock()
					late = append(late, e)
					mu.Unlock()
				}
			}}
			err = cancelled(t, cause, func(w *Waiter, ctx context.Context) error {
				app.Append(w.Hook())
				return app.Start(ctx)
			})
			if want := cmp.Or(cause, context.Canceled); !errors.Is(err, want) {
				t.Errorf("Start = %v; want the startup abandoned for %v", err, want)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range late {
				t.Errorf("late start failure reported for a wait that was only cancelled: %v", e.Err)
			}
		})
	}
}

// Registered first, the sidecars hook runs before the others with the
// default Concurrency; with Concurrency above 1 (the README's faster
// startup), a hook that needs the network names "sidecars" in its After,
// as the package doc says, and starts only once the proxy is ready. A hook
// that names nothing starts beside the wait.
func TestHooksAfterTheWaitRunAfterIt(t *testing.T) {
	for _, tt := range []struct {
		name        string
		concurrency int
		after       []string
		wantUp      bool
	}{
		{"one at a time, registered after it", 0, nil, true},
		{"concurrently, After sidecars", 4, []string{"sidecars"}, true},
		{"concurrently, no After", 4, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				begin := time.Now()
				client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					status := http.StatusServiceUnavailable // the mesh proxy is not ready...
					if time.Since(begin) >= time.Second {
						status = http.StatusOK // ...until a second into the pod's life
					}
					return &http.Response{StatusCode: status, Status: http.StatusText(status), Body: http.NoBody, Request: r}, nil
				})}
				targets, err := ParseTargets([]string{"http://127.0.0.1:15021/healthz/ready"})
				if err != nil {
					t.Fatal(err)
				}
				w := NewWaiter(targets, Options{Client: client, Deadline: 10 * time.Second, Logger: quiet})
				app := &lifespan.App{Name: "api", Concurrency: tt.concurrency}
				var sidecarsWhenDBStarted lifespan.HookStatus
				app.Append(w.Hook(), lifespan.Hook{Name: "db", After: tt.after, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
					sidecarsWhenDBStarted = app.HookStatus("sidecars") // db dials out through the proxy
					return nil, nil
				}})
				if err := app.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				defer app.Stop(t.Context())
				if up := sidecarsWhenDBStarted == lifespan.HookUp; up != tt.wantUp {
					t.Fatalf("db started while the sidecars hook was %q; want it up: %v", sidecarsWhenDBStarted, tt.wantUp)
				}
			})
		})
	}
}

// A quit is a POST the sidecar answered with a 2xx. A URL that answers
// the POST with a redirect (a port that is some web UI's, redirecting to
// its login page; an http port redirecting to https) did not quit
// anything: the client must not follow it as a GET and report the GET's
// 200 as "sidecar told to quit", which leaves a Job's pod held open by a
// sidecar the log says was told to go.
func TestQuitDoesNotFollowARedirectAsSuccess(t *testing.T) {
	var posts atomic.Int32
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quitquitquit" {
			if r.Method == http.MethodPost {
				posts.Add(1)
			}
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		fmt.Fprint(w, "login page") // 200 to the GET the client turned the POST into
	}))
	defer ui.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := Quit(ctx, []string{ui.URL + "/quitquitquit"}, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "302 Found") || posts.Load() != 1 {
		t.Fatalf("Quit = %v after the quit URL answered its POST (%d) with 302 Found; want a failure naming the redirect", err, posts.Load())
	}
}
