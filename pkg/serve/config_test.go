package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

func TestConfigValidation(t *testing.T) {
	g := lifespan.Group{&lifespan.App{Name: "api"}}
	h := http.NotFoundHandler()
	quit := func(context.Context) error { return nil }
	noop := func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, nil }
	withHook := func(app, hook string) *lifespan.App {
		a := &lifespan.App{Name: app}
		a.Append(lifespan.Hook{Name: hook, Start: noop})
		return a
	}
	taken := probes.New()
	taken.Add(probes.Readiness, probes.Check{Name: "shutdown", Run: func(context.Context) error { return nil }})
	used := probes.New()
	if _, err := New(Config{Apps: lifespan.Group{withHook("api", "db")}, API: h, Probes: used}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"defaults fit 37s", Config{Apps: g, API: h, GracePeriod: 37 * time.Second}, ""},
		{"no apps", Config{API: h}, ""},
		{"no grace period, no check", Config{Apps: g, API: h, DrainDelay: time.Hour}, ""},
		{"does not fit", Config{Apps: g, API: h, GracePeriod: 30 * time.Second},
			"shutdown needs up to 37s (preStop 0s + drain delay 5s + drain timeout 20s + stop timeout 10s + margin 2s) but GracePeriod is 30s; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least 37s, or shorten DrainDelay, DrainTimeout, StopTimeout or Margin"},
		{"sidecar quit counts", Config{Apps: g, API: h, GracePeriod: 37 * time.Second, QuitSidecars: quit},
			"+ sidecar quit 5s + margin 2s) but GracePeriod is 37s; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least 42s"},
		{"the quit after a failed startup counts too", Config{Apps: g, API: h, GracePeriod: 37 * time.Second, QuitSidecarsAfterFailedStartup: quit},
			"+ sidecar quit 5s + margin 2s) but GracePeriod is 37s; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least 42s, or shorten DrainDelay, DrainTimeout, StopTimeout, QuitTimeout or Margin"},
		{"preStop counts, and the second that closes keep-alive connections", Config{Apps: g, API: h, DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 37 * time.Second},
			"shutdown needs up to 38s (preStop 5s + keep-alive close 1s + drain timeout 20s"},
		{"final report counts", Config{Apps: g, API: h, GracePeriod: 37 * time.Second, OnShutdown: func(context.Context, ShutdownReport) error { return nil }, OnShutdownTimeout: 3 * time.Second},
			"+ final report 3s + margin 2s) but GracePeriod is 37s; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least 40s"},
		{"rounds up", Config{Apps: g, API: h, DrainDelay: 1500 * time.Millisecond, GracePeriod: 30 * time.Second}, "at least 34s"},
		{"both delays", Config{Apps: g, API: h, PreStopDelay: 5 * time.Second, DrainDelay: time.Second}, "both a drain delay (1s) and a preStop delay (5s) are set"},
		{"preStop with the default delay", Config{Apps: g, API: h, PreStopDelay: 5 * time.Second}, "both a drain delay (5s)"},
		{"negative", Config{Apps: g, API: h, DrainTimeout: -time.Second}, "DrainTimeout is -1s; it must be 0 (the default) or more"},
		{"margin too short for the late stops and the admin close", Config{Apps: g, API: h, Margin: 100 * time.Millisecond},
			"Margin is 100ms; it must be at least 500ms (or 0, the default 2s)"},
		{"the shortest margin", Config{Apps: g, API: h, Margin: MinMargin}, ""},
		{"preStop, sidecar quit and final report: each named as what to shorten", Config{Apps: g, API: h, DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 30 * time.Second,
			QuitSidecars: quit, OnShutdown: func(context.Context, ShutdownReport) error { return nil }},
			"or shorten PreStopDelay, DrainTimeout, StopTimeout, QuitTimeout, OnShutdownTimeout or Margin"},
		{"quiet as long as the delay", Config{Apps: g, API: h, DrainQuiet: 5 * time.Second}, "DrainQuiet 5s must be shorter than the drain delay (5s)"},
		{"quiet without a delay", Config{Apps: g, API: h, DrainDelay: -1, DrainQuiet: time.Second}, "DrainQuiet 1s needs a drain delay to end early, and DrainDelay is none"},
		{"quiet with a preStop sleep", Config{Apps: g, API: h, DrainDelay: -1, PreStopDelay: 5 * time.Second, DrainQuiet: time.Second},
			"DrainQuiet 1s needs a drain delay to end early, and the delay here is the pod's preStop sleep (5s)"},
		{"quiet", Config{Apps: g, API: h, DrainQuiet: time.Second}, ""},
		{"sidecars quit after a failed startup", Config{Apps: g, API: h, QuitSidecars: quit, QuitSidecarsAfterFailedStartup: quit}, ""},
		{"sidecars quit after a failed startup only", Config{Apps: g, API: h, QuitSidecarsAfterFailedStartup: quit}, ""},
		{"same ports", Config{Apps: g, API: h, APIAddr: ":80", AdminAddr: ":80"}, `APIAddr and AdminAddr are both ":80"`},
		{"missing", Config{}, "API handler is nil"},
		{"a signal no process can catch", Config{Apps: g, API: h, ShutdownOn: []os.Signal{syscall.SIGTERM, syscall.SIGKILL}},
			"ShutdownOn[1] is SIGKILL, which no process can catch, so it would start no shutdown"},
		{"a nil signal", Config{Apps: g, API: h, ShutdownOn: []os.Signal{nil}}, "ShutdownOn[0] is nil; list signals such as syscall.SIGTERM"},
		{"SIGSTOP", Config{Apps: g, API: h, ShutdownOn: []os.Signal{syscall.SIGSTOP}}, "ShutdownOn[0] is SIGSTOP, which no process can catch"},
		{"os.Kill, as signal.Notify's common misuse lists it", Config{Apps: g, API: h, ShutdownOn: []os.Signal{os.Interrupt, os.Kill}}, "ShutdownOn[1] is SIGKILL, which no process can catch"},
		{"SIGQUIT, listed", Config{Apps: g, API: h, ShutdownOn: []os.Signal{syscall.SIGQUIT}}, ""},
		{"a nil *http.ServeMux", Config{Apps: g, API: (*http.ServeMux)(nil)}, "API handler is nil (a nil *http.ServeMux, which would panic on every request)"},
		{"a nil http.HandlerFunc", Config{Apps: g, API: http.HandlerFunc(nil)}, "API handler is nil (a nil http.HandlerFunc"},
		{"a nil metrics handler", Config{Apps: g, API: h, Metrics: (*http.ServeMux)(nil)}, "Metrics handler is a nil *http.ServeMux, which would panic on every scrape"},
		{"a nil map that serves", Config{Apps: g, API: routes(nil)}, ""},
		{"a nil app", Config{Apps: lifespan.Group{g[0], nil}, API: h}, "Apps[1] is nil; give each entry of Apps an *lifespan.App, or leave it out"},
		{"a negative read header timeout", Config{Apps: g, API: h, Limits: Limits{ReadHeaderTimeout: -1}}, "Limits.ReadHeaderTimeout is -1ns; it must be 0 (the default) or more"},
		{"a negative read timeout", Config{Apps: g, API: h, Limits: Limits{ReadTimeout: -1}}, "Limits.ReadTimeout is -1ns"},
		{"a negative write timeout", Config{Apps: g, API: h, Limits: Limits{WriteTimeout: -1}}, "Limits.WriteTimeout is -1ns"},
		{"a negative idle timeout", Config{Apps: g, API: h, Limits: Limits{IdleTimeout: -1}}, "Limits.IdleTimeout is -1ns"},
		{"a negative header bound", Config{Apps: g, API: h, Limits: Limits{MaxHeaderBytes: -1}}, "Limits.MaxHeaderBytes is -1; it must be 0 (the default) or more"},
		{"a negative connection bound", Config{Apps: g, API: h, Limits: Limits{MaxConnections: -1}}, "Limits.MaxConnections is -1; it must be 0 (the default) or more"},
		{"an app without a name", Config{Apps: lifespan.Group{g[0], withHook("", "db")}, API: h}, "Apps[1] has no Name; the server names each hook's readiness check hook/APP/HOOK by it: set Name"},
		{"a dot for a hook's name", Config{Apps: lifespan.Group{withHook("api", "..")}, API: h}, `app "api", hook "..": its readiness check would be named "hook/api/.."`},
		{"two apps of one name", Config{Apps: lifespan.Group{withHook("api", "db"), withHook("api", "cache")}, API: h}, `two apps are named "api"`},
		{"a hook name a check cannot hold", Config{Apps: lifespan.Group{withHook("api", "warm cache")}, API: h},
			`app "api", hook "warm cache": its readiness check would be named "hook/api/warm cache"`},
		{"two hooks' checks of one name", Config{Apps: lifespan.Group{withHook("a", "b/c"), withHook("a/b", "c")}, API: h},
			`app "a/b", hook "c": its readiness check "hook/a/b/c" has the name of another app's hook's`},
		{"an app name a check cannot hold", Config{Apps: lifespan.Group{withHook("api?v=2", "db")}, API: h}, `app "api?v=2", hook "db"`},
		{"a check under a name the server takes", Config{Apps: g, API: h, Probes: taken}, `Probes already has a check named "shutdown"`},
		{"another server's Registry", Config{Apps: lifespan.Group{withHook("api", "db")}, API: h, Probes: used},
			"Probes already holds the checks a server adds (ping, shutdown, lifespan): it was given to another serve.New; give each Server a Registry of its own (probes.New())"},
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
}

// A negative duration is refused for what it is; the budget counts it as
// 0, so it does not also claim a shutdown of 2562047h that no grace
// period fits.
func TestNegativeDurationIsTheOnlyProblem(t *testing.T) {
	_, err := New(Config{API: http.NotFoundHandler(), StopTimeout: -5 * time.Second, GracePeriod: 30 * time.Second})
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0] != "StopTimeout is -5s; it must be 0 (the default) or more" {
		t.Fatalf("New = %v; want the one problem of the negative StopTimeout", err)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"defaults", Config{}, 37 * time.Second}, // 5s delay + 20s + 10s + 2s margin
		{"no delay", Config{DrainDelay: -1}, 32 * time.Second},
		{"preStop instead, and 1s to close keep-alive connections", Config{DrainDelay: -1, PreStopDelay: 8 * time.Second}, 41 * time.Second},
		{"sidecar quit", Config{QuitSidecars: func(context.Context) error { return nil }, QuitTimeout: 3 * time.Second}, 40 * time.Second},
		{"sidecar quit after a failed startup only", Config{QuitSidecarsAfterFailedStartup: func(context.Context) error { return nil }, QuitTimeout: 3 * time.Second}, 40 * time.Second},
		{"both sidecar quits: one runs", Config{QuitSidecars: func(context.Context) error { return nil },
			QuitSidecarsAfterFailedStartup: func(context.Context) error { return nil }, QuitTimeout: 3 * time.Second}, 40 * time.Second},
		{"saturates", Config{DrainTimeout: math.MaxInt64 - time.Second, StopTimeout: time.Hour}, math.MaxInt64},
		{"final report", Config{OnShutdown: func(context.Context, ShutdownReport) error { return nil }}, 39 * time.Second},
		{"a negative part counts as 0, not as a huge one", Config{DrainTimeout: -time.Second}, 17 * time.Second},
		{"negative parts by the maximum", Config{DrainTimeout: math.MinInt64, StopTimeout: math.MaxInt64}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Budget(); got != tt.want {
				t.Fatalf("Budget = %v, want %v", got, tt.want)
			}
		})
	}
	srv, err := New(Config{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Budget(); got != 37*time.Second {
		t.Fatalf("Server.Budget = %v", got)
	}
}

// One listener serves the API, the probes and the metrics; the probes, on
// the public port then, never show why a check fails.
func TestSingleListener(t *testing.T) {
	checks := probes.New()
	checks.Add(probes.Liveness, probes.Check{Name: "vault", Instant: true, Run: func(context.Context) error { return errors.New("token expired at vault.internal:8200") }})
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("api")) }), SingleListener: true,
		DrainDelay: -1, Probes: checks, Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	if f.srv.APIAddr().String() != f.srv.AdminAddr().String() {
		t.Fatal("two listeners in single-listener mode")
	}
	for path, want := range map[string]string{"/livez/ping": "ok\n", "/metrics": "metrics", "/x": "api"} {
		if _, _, body := f.get(f.srv.APIAddr(), path); body != want {
			t.Errorf("%s = %q, want %q", path, body, want)
		}
	}
	if code, _, body := f.get(f.srv.APIAddr(), "/livez?verbose"); code != http.StatusServiceUnavailable || strings.Contains(body, "vault.internal") || !strings.Contains(body, "vault") {
		t.Errorf("/livez?verbose on the public port = %d %q; want 503 naming the check and not its reason", code, body)
	}
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
}

// Every response of the admin server, and of the single listener, is
// marked nosniff: /metrics and the 404s were not.
func TestAdminResponsesAreNosniff(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single listener %v", single), func(t *testing.T) {
			f := start(t, Config{API: http.NotFoundHandler(), SingleListener: single, DrainDelay: -1, Metrics: metrics})
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			for _, path := range []string{"/metrics", "/livez", "/nope/x"} {
				if code, hdr, _ := f.get(f.srv.AdminAddr(), path); hdr.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: %d without nosniff", path, code)
				}
			}
			f.srv.Shutdown()
			within(t, f.runErr, "Run")
		})
	}
}

func TestListenFailureIsConfigError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tt := range []struct{ api, admin, want string }{
		{ln.Addr().String(), "127.0.0.1:0", `APIAddr="` + ln.Addr().String() + `": listen tcp`},
		{"127.0.0.1:0", ln.Addr().String(), `AdminAddr="` + ln.Addr().String() + `": listen tcp`},
	} {
		srv, err := New(Config{API: http.NotFoundHandler(), APIAddr: tt.api, AdminAddr: tt.admin, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Run(context.Background())
		if ExitCode(err) != ExitConfig || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "address already in use; want an address this process may listen on") {
			t.Fatalf("Run = %v, want %q", err, tt.want)
		}
	}
}

// routes is a handler that a nil map serves (every path a 404): a nil
// handler New must not refuse.
type routes map[string]http.Handler

func (r routes) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if h, ok := r[req.URL.Path]; ok {
		h.ServeHTTP(w, req)
		return
	}
	http.NotFound(w, req)
}
