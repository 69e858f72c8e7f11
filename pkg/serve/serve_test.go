package serve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type journal struct {
	mu sync.Mutex
	e  []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.e = append(j.e, s); j.mu.Unlock() }
func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.e)
}

// within fails the test unless ch is closed (or sends) within 10s: every
// wait in these tests is bounded.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is a server on loopback with a controllable drain delay.
type fixture struct {
	t       *testing.T
	srv     *Server
	delay   chan time.Time
	stages  chan string
	runErr  chan error
	client  *http.Client
	journal *journal
}

func start(t *testing.T, cfg Config) *fixture {
	t.Helper()
	cfg.APIAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Signals == nil {
		cfg.Signals = []os.Signal{syscall.SIGUSR2} // never sent by these tests unless asked
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, srv: srv, delay: make(chan time.Time), stages: make(chan string, 32), runErr: make(chan error, 1),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	srv.after = func(time.Duration) <-chan time.Time { return f.delay }
	srv.onStage = func(s string) { f.stages <- s }
	go func() { f.runErr <- srv.Run(context.Background()) }()
	within(t, srv.Listening(), "listeners")
	return f
}

func (f *fixture) waitStage(want string) {
	f.t.Helper()
	for {
		if got := within(f.t, f.stages, "stage "+want); got == want {
			return
		}
	}
}

func (f *fixture) get(addr net.Addr, path string) (int, http.Header, string) {
	f.t.Helper()
	resp, err := f.client.Get("http://" + addr.String() + path)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestShutdownTimeline(t *testing.T) {
	j := &journal{}
	app := lifespan.New("api")
	app.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { j.add("stop db"); return nil }, nil
		}},
		lifespan.Hook{Name: "jobs", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			s.Go("ticker", func(ctx context.Context) error { <-ctx.Done(); j.add("task cancelled"); return nil })
			return func(context.Context) error { j.add("stop jobs"); return nil }, nil
		}},
	)
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fast") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		j.add("slow request done")
		io.WriteString(w, "slow")
	})
	var report DrainReport
	f := start(t, Config{
		Group: lifespan.NewGroup(app), API: mux, DrainDelay: time.Hour, DrainTimeout: 10 * time.Second,
		QuitSidecars: func(context.Context) error { j.add("quit sidecars"); return nil },
		Observer:     observerFunc(func(r DrainReport) { report = r }),
	})
	within(t, f.srv.Ready(), "ready")
	if code, _, _ := f.get(f.srv.AdminAddr(), "/readyz"); code != 200 {
		t.Fatalf("readyz when ready = %d", code)
	}
	keepAlive := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer keepAlive.CloseIdleConnections()
	closes := func() bool {
		resp, err := keepAlive.Get("http://" + f.srv.APIAddr().String() + "/fast")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Close
	}
	if closes() {
		t.Error("a response before the drain asked to close a keep-alive connection")
	}
	slowDone := make(chan string, 1)
	go func() {
		_, _, body := f.get(f.srv.APIAddr(), "/slow")
		slowDone <- body
	}()
	within(t, entered, "slow request to start")

	f.srv.Shutdown()
	within(t, f.srv.Draining(), "T0")
	// T0..T1: not ready, alive, still serving, asking clients to reconnect.
	if code, _, _ := f.get(f.srv.AdminAddr(), "/readyz"); code != 503 {
		t.Errorf("readyz while draining = %d, want 503", code)
	}
	if _, _, body := f.get(f.srv.AdminAddr(), "/readyz?verbose"); !strings.Contains(body, "[-]shutdown failed: shutting down") {
		t.Errorf("readyz verbose while draining:\n%s", body)
	}
	if code, _, _ := f.get(f.srv.AdminAddr(), "/livez"); code != 200 {
		t.Errorf("livez while draining = %d, want 200", code)
	}
	if !closes() {
		t.Error("a response during the drain delay did not carry Connection: close")
	}
	// T1: the delay ends; new connections are refused; the slow request goes on.
	f.delay <- time.Now()
	f.waitStage("listeners-closed")
	if _, err := net.DialTimeout("tcp", f.srv.APIAddr().String(), time.Second); err == nil {
		t.Error("API still accepting after T1")
	}
	if code, _, _ := f.get(f.srv.AdminAddr(), "/livez"); code != 200 {
		t.Errorf("admin must outlive the API; livez = %d", code)
	}
	close(release)
	if body := within(t, slowDone, "slow request"); body != "slow" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := within(t, f.runErr, "Run to return"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []string{"slow request done", "task cancelled", "stop jobs", "stop db", "quit sidecars"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
	if _, err := net.DialTimeout("tcp", f.srv.AdminAddr().String(), time.Second); err == nil {
		t.Error("admin still up after Run returned")
	}
	if report.ServedDuringDelay != 1 || report.InFlightAtDelayEnd != 1 || report.CutOff != 0 || report.Signal != "shutdown called" || report.Err != nil {
		t.Errorf("report = %+v", report)
	}
}

type observerFunc func(DrainReport)

func (f observerFunc) ObserveDrain(r DrainReport) { f(r) }

func TestDrainTimeoutCutsOff(t *testing.T) {
	app := lifespan.New("api")
	entered := make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // held until the connection is cut
	})
	var report DrainReport
	f := start(t, Config{Group: lifespan.NewGroup(app), API: api, DrainTimeout: 50 * time.Millisecond,
		Observer: observerFunc(func(r DrainReport) { report = r })})
	within(t, f.srv.Ready(), "ready")
	go func() {
		resp, err := f.client.Get("http://" + f.srv.APIAddr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	within(t, entered, "request to start")
	f.srv.Shutdown()
	err := within(t, f.runErr, "Run")
	if err == nil || !strings.Contains(err.Error(), "1 requests still running after the 50ms drain timeout were cut off") {
		t.Fatalf("Run = %v", err)
	}
	if ExitCode(err) != ExitUnclean || report.CutOff != 1 {
		t.Fatalf("exit %d, report %+v", ExitCode(err), report)
	}
}

func TestGateBeforeReadyAndProbesDuringStartup(t *testing.T) {
	release := make(chan struct{})
	app := lifespan.New("api")
	app.Append(lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		<-release
		return nil, nil
	}})
	f := start(t, Config{Group: lifespan.NewGroup(app), API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), RetryAfter: 1500 * time.Millisecond})
	code, hdr, body := f.get(f.srv.APIAddr(), "/anything")
	if code != 503 || hdr.Get("Retry-After") != "2" || !strings.Contains(body, "starting") {
		t.Errorf("API before ready: %d Retry-After=%q %q", code, hdr.Get("Retry-After"), body)
	}
	for _, p := range []struct {
		path string
		code int
		body string
	}{
		{"/livez", 200, "ok"},
		{"/readyz?verbose", 503, "[-]hook/api/warm failed: hook starting"},
		{"/readyz/hook/api/warm", 503, ""},
		{"/startupz?verbose", 503, `[-]lifespan failed: app "api" is starting`},
	} {
		if code, _, body := f.get(f.srv.AdminAddr(), p.path); code != p.code || !strings.Contains(body, p.body) {
			t.Errorf("%s during startup: %d %q; want %d containing %q", p.path, code, body, p.code, p.body)
		}
	}
	close(release)
	within(t, f.srv.Ready(), "ready")
	for _, p := range []string{"/readyz", "/startupz", "/readyz/hook/api/warm"} {
		if code, _, _ := f.get(f.srv.AdminAddr(), p); code != 200 {
			t.Errorf("%s after startup = %d", p, code)
		}
	}
	if code, _, _ := f.get(f.srv.APIAddr(), "/anything"); code != 200 {
		t.Errorf("API after ready = %d", code)
	}
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatal(err)
	}
}

func TestStartupFailure(t *testing.T) {
	j := &journal{}
	app := lifespan.New("api")
	app.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { j.add("stop db"); return nil }, nil
		}},
		lifespan.Hook{Name: "cache", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return nil, errors.New("cache unreachable")
		}},
	)
	f := start(t, Config{Group: lifespan.NewGroup(app), API: http.NotFoundHandler()})
	err := within(t, f.runErr, "Run")
	var se *StartupError
	if !errors.As(err, &se) || ExitCode(err) != ExitStartup || !strings.Contains(err.Error(), `hook "cache": start: cache unreachable`) {
		t.Fatalf("Run = %v (exit %d)", err, ExitCode(err))
	}
	if got := j.list(); !slices.Equal(got, []string{"stop db"}) {
		t.Fatalf("rollback = %q", got)
	}
}

func TestSignalDuringStartupAbandonsIt(t *testing.T) {
	j := &journal{}
	entered := make(chan struct{})
	app := lifespan.New("api")
	app.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { j.add("stop db"); return nil }, nil
		}},
		lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	)
	f := start(t, Config{Group: lifespan.NewGroup(app), API: http.NotFoundHandler(), Signals: []os.Signal{syscall.SIGUSR1}})
	within(t, entered, "warm to start")
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err := within(t, f.runErr, "Run")
	if !errors.Is(err, context.Canceled) || ExitCode(err) != ExitStartup {
		t.Fatalf("Run = %v", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"stop db"}) {
		t.Fatalf("rollback = %q", got)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	stopping, release := make(chan struct{}), make(chan struct{})
	app := lifespan.New("api")
	app.Append(lifespan.Hook{Name: "stuck", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { close(stopping); <-release; return nil }, nil
	}})
	exited := make(chan int, 1)
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	f := start(t, Config{Group: lifespan.NewGroup(app), API: http.NotFoundHandler(), Logger: logger,
		Signals: []os.Signal{syscall.SIGUSR1}, Exit: func(code int) { exited <- code; close(release) }})
	within(t, f.srv.Ready(), "ready")
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	within(t, f.srv.Draining(), "T0")
	within(t, stopping, "stop hook")
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	if code := within(t, exited, "forced exit"); code != ExitForced {
		t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	within(t, f.runErr, "Run")
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "second signal: exiting at once") || !strings.Contains(logs.String(), "running=[api/hook:stuck]") {
		t.Fatalf("forced-exit log lacks what was running:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestSingleListener(t *testing.T) {
	app := lifespan.New("api")
	app.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }})
	f := start(t, Config{Group: lifespan.NewGroup(app), API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") }), SingleListener: true,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })})
	within(t, f.srv.Ready(), "ready")
	if f.srv.APIAddr().String() != f.srv.AdminAddr().String() {
		t.Fatal("two listeners in single-listener mode")
	}
	for path, want := range map[string]string{"/livez": "ok\n", "/metrics": "metrics", "/x": "api"} {
		if _, _, body := f.get(f.srv.APIAddr(), path); body != want {
			t.Errorf("%s = %q, want %q", path, body, want)
		}
	}
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
}

func TestConfigValidation(t *testing.T) {
	g := lifespan.NewGroup(lifespan.New("api"))
	h := http.NotFoundHandler()
	quit := func(context.Context) error { return nil }
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"defaults fit 30s", Config{Group: g, API: h, DrainDelay: 5 * time.Second, GracePeriod: 37 * time.Second}, ""},
		{"no grace period, no check", Config{Group: g, API: h, DrainDelay: time.Hour}, ""},
		{"does not fit", Config{Group: g, API: h, DrainDelay: 5 * time.Second, GracePeriod: 30 * time.Second},
			"shutdown needs up to 37s (preStop 0s + drain delay 5s + drain timeout 20s + stop timeout 10s + margin 2s) but the grace period is 30s; raise terminationGracePeriodSeconds to at least 37"},
		{"sidecar quit counts", Config{Group: g, API: h, DrainDelay: 5 * time.Second, GracePeriod: 37 * time.Second, QuitSidecars: quit},
			"+ sidecar quit 5s + margin 2s) but the grace period is 37s; raise terminationGracePeriodSeconds to at least 42"},
		{"preStop counts", Config{Group: g, API: h, PreStopDelay: 5 * time.Second, GracePeriod: 36 * time.Second}, "at least 37"},
		{"both delays", Config{Group: g, API: h, PreStopDelay: 5 * time.Second, DrainDelay: time.Second}, "both a drain delay (1s) and a preStop delay (5s) are set"},
		{"negative", Config{Group: g, API: h, DrainDelay: -time.Second}, "DrainDelay is -1s; it must be 0 or more"},
		{"same ports", Config{Group: g, API: h, APIAddr: ":80", AdminAddr: ":80"}, `APIAddr and AdminAddr are both ":80"`},
		{"missing", Config{}, "Group is nil; API handler is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New = %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New = %v, want %q", err, tt.want)
			case tt.want != "" && ExitCode(err) != ExitConfig:
				t.Fatalf("ExitCode = %d", ExitCode(err))
			}
		})
	}
	// The server reports its budget with defaults applied.
	srv, err := New(Config{Group: g, API: h})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Budget(), 32*time.Second; got != want { // 0 delay + 20s + 10s + 2s margin
		t.Fatalf("Budget = %v, want %v", got, want)
	}
}

func TestListenFailureIsConfigError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := New(Config{Group: lifespan.NewGroup(lifespan.New("api")), API: http.NotFoundHandler(), APIAddr: ln.Addr().String(), AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if ExitCode(err) != ExitConfig || !strings.Contains(err.Error(), "listen on API address") {
		t.Fatalf("Run = %v", err)
	}
}
