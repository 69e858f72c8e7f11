package serve

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/logbuf"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

func TestGateBeforeReadyAndProbesDuringStartup(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var warmed atomic.Bool
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		close(entered)
		<-release
		warmed.Store(true)
		return nil, nil
	}})
	// A background check that passes only once the hook has run; its
	// interval is far longer than the test, so only the refresh at the end
	// of startup can bring its result up to date.
	checks := probes.New()
	checks.Add(probes.Readiness, probes.Check{Name: "db", Interval: time.Hour, Run: func(context.Context) error {
		if !warmed.Load() {
			return errors.New("not open yet")
		}
		return nil
	}})
	f := start(t, Config{Apps: lifespan.Group{a}, Probes: checks, API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), RetryAfter: 1500 * time.Millisecond})
	code, hdr, body := f.get(f.srv.APIAddr(), "/anything")
	if code != 503 || hdr.Get("Retry-After") != "2" || !strings.Contains(body, "starting") || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("API before ready: %d Retry-After=%q nosniff=%q %q", code, hdr.Get("Retry-After"), hdr.Get("X-Content-Type-Options"), body)
	}
	if got := f.srv.TurnedAway(); got != 1 {
		t.Errorf("TurnedAway = %d, want 1", got)
	}
	// The probes below describe a hook that is running: wait until it is
	// (before, it reads "hook pending", as the run that caught this saw).
	within(t, entered, "the warm hook to start")
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
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	for _, p := range []string{"/readyz", "/startupz", "/readyz/hook/api/warm", "/readyz/db"} {
		if code, _, _ := f.get(f.srv.AdminAddr(), p); code != 200 {
			t.Errorf("%s after startup = %d", p, code)
		}
	}
	if code, _, _ := f.get(f.srv.APIAddr(), "/anything"); code != 200 {
		t.Errorf("API after ready = %d", code)
	}
	f.srv.Shutdown()
	f.delay <- time.Now()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatal(err)
	}
}

func TestStartupFailure(t *testing.T) {
	j := &journal{}
	a := app(j, "db")
	a.Append(lifespan.Hook{Name: "cache", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return nil, errors.New("cache unreachable")
	}})
	reports := make(chan ShutdownReport, 2)
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(),
		OnShutdown: func(_ context.Context, r ShutdownReport) error {
			reports <- r
			j.add("final report")
			return nil
		},
		QuitSidecars: func(context.Context) error { j.add("quit sidecars"); return nil }})
	err := within(t, f.runErr, "Run")
	var se *StartupError
	if !errors.As(err, &se) || ExitCode(err) != ExitStartup || !strings.Contains(err.Error(), `hook "cache": start: cache unreachable`) {
		t.Fatalf("Run = %v (exit %d)", err, ExitCode(err))
	}
	// The failure outlives the process: OnShutdown gets it, after the
	// rollback, once. Classic sidecars are not told to quit: in a
	// Deployment the app's container restarts in the same pod, beside them.
	if got := j.list(); !slices.Equal(got, []string{"stop db", "final report"}) {
		t.Fatalf("rollback and final report = %q", got)
	}
	if r := <-reports; r.Reason != "startup failed" || !errors.Is(r.Err, err) || r.Total != 0 || r.CutOff != 0 || len(reports) != 0 {
		t.Fatalf("final report %+v (and %d more), want the startup's error and no drain", r, len(reports))
	}
	if f.sig.StartupComplete.Signalled() || f.sig.ShutdownInitiated.Signalled() {
		t.Fatal("a failed startup signalled StartupComplete or ShutdownInitiated")
	}
}

// Where the container is not restarted in its pod (a Job's), the config
// asks for the classic sidecars to be told to quit after a failed or
// abandoned startup too: after the rollback and the final report, within
// QuitTimeout, logged, and without changing Run's error, even when the
// quit fails or ignores its context. (Which quit runs when: see
// TestStartupEndChoosesTheQuit.)
func TestStartupFailureQuitsSidecarsWhenAsked(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	for _, tt := range []struct {
		name      string
		abandoned bool // a shutdown abandons the startup, rather than a hook failing
		quit      func(context.Context) error
		log       string
	}{
		{"told to quit", false, func(context.Context) error { return nil }, "sidecars quit done"},
		{"the quit fails", false, func(context.Context) error { return errors.New("proxy unreachable") }, "quit sidecars: proxy unreachable"},
		{"the quit ignores its context", false, func(context.Context) error { <-release; return nil }, "quit sidecars: abandoned"},
		{"an abandoned startup", true, func(context.Context) error { return nil }, "sidecars quit done"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			a := app(j, "db")
			entered := make(chan struct{})
			a.Append(lifespan.Hook{Name: "cache", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
				if tt.abandoned {
					close(entered)
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return nil, errors.New("cache unreachable")
			}})
			var logs logbuf.Buffer
			f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(),
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
				OnShutdown:   func(context.Context, ShutdownReport) error { j.add("final report"); return nil },
				QuitTimeout:  50 * time.Millisecond,
				QuitSidecars: func(context.Context) error { j.add("the shutdown's quit"); return nil },
				QuitSidecarsAfterFailedStartup: func(ctx context.Context) error {
					j.add("quit sidecars")
					return tt.quit(ctx)
				}})
			if tt.abandoned {
				within(t, entered, "cache to start")
				f.srv.Shutdown()
			}
			err := within(t, f.runErr, "Run")
			var se *StartupError
			if !errors.As(err, &se) || ExitCode(err) != ExitStartup || strings.Contains(err.Error(), "quit") {
				t.Fatalf("Run = %v (exit %d), want the startup's error alone", err, ExitCode(err))
			}
			if got := j.list(); !slices.Equal(got, []string{"stop db", "final report", "quit sidecars"}) {
				t.Fatalf("after the startup: %q", got)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Fatalf("logs when Run returned lack %q:\n%s", tt.log, logs.String())
			}
		})
	}
}

// TestStartupEndChoosesTheQuit: after a startup that did not complete,
// QuitSidecarsAfterFailedStartup runs, or nothing without it; QuitSidecars
// runs in its place only when an OS signal abandoned the startup (the pod
// and its sidecars are being stopped, so a refusal means gone). How the
// startup ended is read once: a shutdown asked for while the final report
// runs changes neither the reason nor the quit.
func TestStartupEndChoosesTheQuit(t *testing.T) {
	const (
		failed    = "failed"    // a hook's error
		bySignal  = "signal"    // SIGUSR1, one of ShutdownOn
		byCall    = "Shutdown"  // Server.Shutdown
		byServer  = "server"    // the API server failed
		lateCall  = "late call" // failed, then Shutdown during OnShutdown
		bothQuits = "both"
	)
	for _, tt := range []struct {
		end, quits string // quits: "both", "QS" or "QSAFS"
		want       []string
		reason     string
	}{
		{failed, bothQuits, []string{"QSAFS"}, "startup failed"},
		{failed, "QSAFS", []string{"QSAFS"}, "startup failed"},
		{failed, "QS", nil, "startup failed"},
		{bySignal, bothQuits, []string{"QS"}, "user defined signal 1"},
		{bySignal, "QSAFS", []string{"QSAFS"}, "user defined signal 1"},
		{bySignal, "QS", nil, "user defined signal 1"},
		{byCall, bothQuits, []string{"QSAFS"}, "shutdown called"},
		{byServer, bothQuits, []string{"QSAFS"}, "api server failed"},
		{lateCall, bothQuits, []string{"QSAFS"}, "startup failed"},
	} {
		t.Run(tt.end+", "+tt.quits, func(t *testing.T) {
			j := &journal{}
			entered, stored := make(chan struct{}), make(chan struct{})
			a := &lifespan.App{Name: "api"}
			a.Append(lifespan.Hook{Name: "slow", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
				if tt.end == failed || tt.end == lateCall {
					<-stored // OnShutdown's Server is there to call
					return nil, errors.New("cache unreachable")
				}
				close(entered)
				<-ctx.Done()
				return nil, ctx.Err()
			}})
			var srv atomic.Pointer[Server]
			cfg := Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, ShutdownOn: []os.Signal{syscall.SIGUSR1},
				OnShutdown: func(_ context.Context, r ShutdownReport) error {
					if tt.end == lateCall {
						srv.Load().Shutdown()
					}
					j.add("report: " + r.Reason)
					return nil
				}}
			if tt.quits != "QSAFS" {
				cfg.QuitSidecars = func(context.Context) error { j.add("QS"); return nil }
			}
			if tt.quits != "QS" {
				cfg.QuitSidecarsAfterFailedStartup = func(context.Context) error { j.add("QSAFS"); return nil }
			}
			f := start(t, cfg)
			srv.Store(f.srv)
			close(stored)
			switch tt.end {
			case bySignal:
				within(t, entered, "the hook to start")
				if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
			case byCall:
				within(t, entered, "the hook to start")
				f.srv.Shutdown()
			case byServer:
				within(t, entered, "the hook to start")
				f.srv.apiLn.Close()
			}
			if err := within(t, f.runErr, "Run"); ExitCode(err) != ExitStartup {
				t.Fatalf("Run = %v, want a startup error", err)
			}
			if got, want := j.list(), append([]string{"report: " + tt.reason}, tt.want...); !slices.Equal(got, want) {
				t.Fatalf("after the startup: %q, want %q", got, want)
			}
		})
	}
}

// TestListenFailureQuitsSidecarsWhenAsked: a Run that cannot open a
// listener (the API's or the admin's) started nothing, yet a Job's pod
// would wait on its sidecars as after a failed startup; with
// QuitSidecarsAfterFailedStartup they are told to quit (logged, even when
// the quit fails), and Run still returns the listener's *ConfigError. Not
// with QuitSidecars alone, the shutdown's, nor on a second Run.
func TestListenFailureQuitsSidecarsWhenAsked(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	for _, tt := range []struct {
		name        string
		asked       bool
		api, admin  string // "": a free port
		second      bool   // a second Run, after a first that ended cleanly
		quitErr     error
		wantQuits   int32
		log, listen string
	}{
		{"the API's address taken", true, busy, "", false, nil, 1, "sidecars quit done", "APIAddr="},
		{"the admin's address taken", true, "", busy, false, nil, 1, "sidecars quit done", "AdminAddr="},
		{"the quit fails", true, busy, "", false, errors.New("proxy unreachable"), 1, "quit sidecars: proxy unreachable", "APIAddr="},
		{"not asked", false, busy, "", false, nil, 0, "", "APIAddr="},
		{"a second Run", true, "", "", true, nil, 0, "", "Run called a second time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var quits atomic.Int32
			var logs logbuf.Buffer
			cfg := Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(),
				APIAddr: cmp.Or(tt.api, "127.0.0.1:0"), AdminAddr: cmp.Or(tt.admin, "127.0.0.1:0"), DrainDelay: -1,
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
				QuitSidecars: func(context.Context) error { return nil }}
			if tt.asked {
				cfg.QuitSidecarsAfterFailedStartup = func(context.Context) error { quits.Add(1); return tt.quitErr }
			}
			srv, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.second {
				first := make(chan error, 1)
				go func() { first <- srv.Run(context.Background()) }()
				within(t, srv.Signals().StartupComplete.Done(), "StartupComplete")
				srv.Shutdown()
				if err := within(t, first, "the first Run"); err != nil {
					t.Fatalf("first Run = %v", err)
				}
			}
			before := len(logs.String()) // what the second Run logs is after this
			err = srv.Run(context.Background())
			var refused *ConfigError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tt.listen) || strings.Contains(err.Error(), "quit") {
				t.Fatalf("Run = %v, want the listener's *ConfigError alone (%q)", err, tt.listen)
			}
			if got := quits.Load(); got != tt.wantQuits {
				t.Fatalf("the sidecars were told to quit %d times, want %d", got, tt.wantQuits)
			}
			out := logs.String()[before:]
			if told := strings.Contains(out, "sidecars"); told != (tt.log != "") || !strings.Contains(out, tt.log) {
				t.Fatalf("logs, want %q about the sidecars:\n%s", tt.log, out)
			}
			// Why comes before the quit's own lines.
			if why := strings.Index(out, "a listener cannot be opened"); tt.log != "" && (why < 0 || why > strings.Index(out, tt.log)) {
				t.Fatalf("logs, want the listener's failure before %q:\n%s", tt.log, out)
			}
		})
	}
}

func TestSignalDuringStartupAbandonsIt(t *testing.T) {
	j := &journal{}
	entered := make(chan struct{})
	a := app(j, "db")
	a.Append(lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), ShutdownOn: []os.Signal{syscall.SIGUSR1}})
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
	if !f.sig.ShutdownInitiated.Signalled() || f.sig.StartupComplete.Signalled() {
		t.Fatal("want ShutdownInitiated and no StartupComplete")
	}
}

// A shutdown that begins before Run (a context done already, a Shutdown
// call) starts no app and exits as an abandoned startup, every time: it
// used to race watch's goroutine, and 10 runs in 30 started the apps,
// signalled StartupComplete after ShutdownInitiated and exited 0.
func TestShutdownBeforeRunStartsNothing(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name   string
		ctx    context.Context
		before func(*Server)
		reason string
	}{
		{"context done", done, func(*Server) {}, "context done"},
		{"Shutdown called", context.Background(), (*Server).Shutdown, "shutdown called"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			var report ShutdownReport
			srv, err := New(Config{Apps: lifespan.Group{app(j, "db")}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
				Logger: quietLogger(), ShutdownOn: []os.Signal{},
				OnShutdown: func(_ context.Context, r ShutdownReport) error { report = r; return nil }})
			if err != nil {
				t.Fatal(err)
			}
			tt.before(srv)
			err = srv.Run(tt.ctx)
			if ExitCode(err) != ExitStartup || !strings.Contains(err.Error(), "the shutdown ("+tt.reason+") began before the startup") {
				t.Fatalf("Run = %v (exit %d)", err, ExitCode(err))
			}
			if got := j.list(); len(got) != 0 {
				t.Fatalf("journal %q: an app started", got)
			}
			if report.Reason != tt.reason || !errors.Is(report.Err, err) {
				t.Fatalf("final report %+v, want reason %q and Run's error", report, tt.reason)
			}
			if srv.Signals().StartupComplete.Signalled() || srv.Signals().Latest() != srv.Signals().Listening {
				t.Fatalf("StartupComplete %v, latest %v; want no StartupComplete, Listening last", srv.Signals().StartupComplete.Signalled(), srv.Signals().Latest().Name())
			}
		})
	}
}

// StartupComplete waits for the refresh of the background checks, and a
// shutdown during that refresh cancels it instead of waiting it out.
func TestStartupCompleteWaitsForTheRefresh(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		t.Run(map[bool]string{false: "refresh ends", true: "shutdown during the refresh"}[shutdown], func(t *testing.T) {
			scheduled, refreshing, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			checks := probes.New()
			checks.Add(probes.Readiness, probes.Check{Name: "db", Interval: time.Hour, Timeout: time.Hour, Run: func(ctx context.Context) error {
				switch calls.Add(1) {
				case 1: // the scheduled run, during startup (the hook waits for it)
					close(scheduled)
				case 2: // the refresh
					close(refreshing)
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}})
			a := &lifespan.App{Name: "api"}
			a.Append(lifespan.Hook{Name: "open", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
				<-scheduled
				return nil, nil
			}})
			f := start(t, Config{Apps: lifespan.Group{a}, Probes: checks, DrainDelay: -1, API: http.NotFoundHandler()})
			within(t, refreshing, "the refresh")
			if f.sig.StartupComplete.Signalled() {
				t.Fatal("StartupComplete before the refresh of the background checks ended")
			}
			if shutdown {
				f.srv.Shutdown() // the check's timeout is an hour: only the cancellation ends it
			} else {
				close(release)
				within(t, f.sig.StartupComplete.Done(), "StartupComplete")
				f.srv.Shutdown()
			}
			if err := within(t, f.runErr, "Run"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// logHook is a slog handler that calls on for every record, in the
// logging goroutine: a test's way to act at one exact step of the server.
type logHook struct {
	slog.Handler
	on func(r slog.Record)
}

func (h logHook) Handle(_ context.Context, r slog.Record) error { h.on(r); return nil }
func (h logHook) Enabled(context.Context, slog.Level) bool      { return true }

// A startup that completes just as the shutdown abandons it (after the
// server chose to abandon it, before Stop reached the app) is abandoned
// all the same: the apps are stopped, the API never serves and the run
// ends as a startup abandoned. It used to go on to StartupComplete and a
// drain delay served by an app whose hooks were already stopped.
func TestStartupCompletingAsItIsAbandonedIsAbandoned(t *testing.T) {
	j := &journal{}
	release, ready := make(chan struct{}), make(chan struct{})
	a := &lifespan.App{Name: "api", Observer: func(e lifespan.Event) {
		if e.Kind == lifespan.PhaseChanged && e.Phase == lifespan.PhaseReady {
			close(ready)
		}
	}}
	entered := make(chan struct{})
	a.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		close(entered)
		<-release
		return func(context.Context) error { j.add("stop db"); return nil }, nil
	}})
	log := slog.New(logHook{Handler: slog.DiscardHandler, on: func(r slog.Record) {
		if r.Message == "shutdown requested during startup; abandoning it" {
			close(release) // the start completes now, before the server stops the app
			<-ready
		}
	}})
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: time.Hour, Logger: log})
	within(t, entered, "db to start")
	f.srv.Shutdown()
	err := within(t, f.runErr, "Run")
	if ExitCode(err) != ExitStartup || !strings.Contains(err.Error(), "began as the startup completed; the apps were stopped") {
		t.Fatalf("Run = %v (exit %d), want the startup abandoned", err, ExitCode(err))
	}
	if f.sig.StartupComplete.Signalled() || !slices.Equal(j.list(), []string{"stop db"}) {
		t.Errorf("StartupComplete %v, journal %q; want no StartupComplete and db stopped", f.sig.StartupComplete.Signalled(), j.list())
	}
}

// A shutdown during startup rolls back what started within the stop
// timeout from T0, as the budget counts it: no rollback stop gets a later
// deadline, in the app still starting or in an app of its group already
// ready (each used to get its hook's whole stop timeout, one after
// another).
func TestAbandonedStartupRollsBackWithinTheStopTimeout(t *testing.T) {
	const stopTimeout = 2 * time.Second
	for _, tt := range []struct {
		name       string
		readyHooks []string // hooks of an app ready before the one starting
		ownHooks   []string // hooks started in the app still starting
	}{
		{"in the app starting", nil, []string{"db", "cache"}},
		{"in an app already ready", []string{"db"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var deadlines []time.Time
			recording := func(a *lifespan.App, names []string) *lifespan.App {
				for _, n := range names {
					a.Append(lifespan.Hook{Name: n, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
						return func(ctx context.Context) error {
							dl, _ := ctx.Deadline()
							mu.Lock()
							deadlines = append(deadlines, dl)
							mu.Unlock()
							return nil
						}, nil
					}})
				}
				return a
			}
			infra := recording(&lifespan.App{Name: "infra", StopTimeout: time.Hour}, tt.readyHooks)
			api := recording(&lifespan.App{Name: "api", StopTimeout: time.Hour}, tt.ownHooks)
			entered := make(chan struct{})
			api.Append(lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
				close(entered)
				<-ctx.Done()
				return nil, ctx.Err()
			}})
			limit := shutdownWhen(t, Config{Apps: lifespan.Group{infra, api}, API: http.NotFoundHandler(), StopTimeout: stopTimeout}, entered, "warm to start")
			mu.Lock()
			defer mu.Unlock()
			if want := len(tt.readyHooks) + len(tt.ownHooks); len(deadlines) != want {
				t.Fatalf("%d rollback stops ran, want %d", len(deadlines), want)
			}
			for _, dl := range deadlines {
				if dl.IsZero() || dl.After(limit) {
					t.Errorf("a rollback stop's deadline is %v; want at most the stop timeout from T0 (%v)", dl, limit)
				}
			}
		})
	}
}

// shutdownWhen serves cfg, calls Shutdown once ready is closed (what names
// it), requires Run to end as a startup that did not complete, and
// returns the bound the shutdown sets on every stop still to come: T0
// (ShutdownInitiated) plus cfg.StopTimeout.
func shutdownWhen(t *testing.T, cfg Config, ready <-chan struct{}, what string) time.Time {
	t.Helper()
	f := start(t, cfg)
	within(t, ready, what)
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); ExitCode(err) != ExitStartup {
		t.Fatalf("Run = %v", err)
	}
	return f.sig.ShutdownInitiated.At().Add(cfg.StopTimeout)
}

// A shutdown (a SIGTERM, say) that comes while a startup that failed by
// itself is rolling back bounds what is left of the rollback by the stop
// timeout from T0, as for any abandoned startup (the README's exit code 1:
// "for a signal, within BERTH_STOP_TIMEOUT of it"): a stop under way then,
// and each after it, ends by T0 + StopTimeout, not by its hook's own
// (here an hour), which the pod's grace period does not count.
func TestShutdownDuringAFailedStartupsRollbackBoundsIt(t *testing.T) {
	const stopTimeout = 300 * time.Millisecond
	for _, tt := range []struct {
		name    string
		sameApp bool // the started hooks are in the app that fails, or in an app before it
	}{
		{"in the app that failed", true},
		{"in an app started before it", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stopping := make(chan struct{})
			var mu sync.Mutex
			ended := map[string]time.Time{} // each stop's deadline when its context ended
			waitingStop := func(name string, began chan struct{}) lifespan.Hook {
				return lifespan.Hook{Name: name, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
					return func(ctx context.Context) error { // honours its context, as a pool draining would
						if began != nil {
							close(began)
						}
						<-ctx.Done()
						dl, _ := ctx.Deadline()
						mu.Lock()
						ended[name] = dl
						mu.Unlock()
						return nil
					}, nil
				}}
			}
			db, cache := waitingStop("db", nil), waitingStop("cache", stopping)
			warm := lifespan.Hook{Name: "warm", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
				return nil, errors.New("warm failed")
			}}
			// Each hook's own stop timeout is an hour: only the shutdown bounds the stops.
			api := &lifespan.App{Name: "api", StopTimeout: time.Hour}
			apps := lifespan.Group{api}
			if tt.sameApp {
				api.Append(db, cache, warm)
			} else {
				infra := &lifespan.App{Name: "infra", StopTimeout: time.Hour}
				infra.Append(db, cache)
				api.Append(warm)
				apps = lifespan.Group{infra, api}
			}
			limit := shutdownWhen(t, Config{Apps: apps, API: http.NotFoundHandler(), StopTimeout: stopTimeout}, stopping, "the rollback's first stop")
			mu.Lock()
			defer mu.Unlock()
			for _, name := range []string{"cache", "db"} {
				if dl, ok := ended[name]; !ok || dl.After(limit) {
					t.Errorf("the rollback's stop of %s ended with the deadline %v (ended: %v); want at most the stop timeout from T0 (%v)",
						name, dl.Format(time.RFC3339Nano), ok, limit.Format(time.RFC3339Nano))
				}
			}
		})
	}
}

// A startup that fails by itself (a hook's start returns an error) rolls
// back what started: the background checks have ended before that rollback
// releases what they check, as they do for a shutdown and for an abandoned
// startup. The pool is a hook of the app that failed, or of an app before
// it, which Group.Start stops after the failed app (with nothing of its
// own started) rolled back.
func TestFailedStartupEndsTheChecksBeforeTheRollback(t *testing.T) {
	for _, sameApp := range []bool{true, false} {
		t.Run(map[bool]string{true: "in the app that failed", false: "in an app before it"}[sameApp], func(t *testing.T) {
			var released atomic.Bool
			running := make(chan struct{})
			sawReleased := make(chan bool, 1)
			var runs atomic.Int32
			checks := probes.New()
			checks.Add(probes.Liveness, probes.Check{Name: "db-ping", Interval: time.Hour, Timeout: time.Minute, Run: func(ctx context.Context) error {
				if !probes.Refreshing(ctx) && runs.Add(1) == 1 {
					close(running)
					<-ctx.Done()
					sawReleased <- released.Load()
				}
				return nil
			}})
			pool := lifespan.Hook{Name: "pool", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
				return func(context.Context) error { released.Store(true); return nil }, nil
			}}
			warm := lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
				<-running // the check is in flight, using the pool
				return nil, errors.New("warm failed")
			}}
			api := &lifespan.App{Name: "api"}
			apps := lifespan.Group{api}
			if sameApp {
				api.Append(pool, warm)
			} else {
				db := &lifespan.App{Name: "db"}
				db.Append(pool)
				api.Append(warm)
				apps = lifespan.Group{db, api}
			}
			f := start(t, Config{Apps: apps, API: http.NotFoundHandler(), DrainDelay: -1, Probes: checks})
			if err := within(t, f.runErr, "Run"); ExitCode(err) != ExitStartup {
				t.Fatalf("Run = %v", err)
			}
			if within(t, sawReleased, "the check's first run to end") {
				t.Error("the check was still running when the failed startup's rollback released what it checks")
			}
		})
	}
}

// A shutdown that abandons a Group's startup between two apps ends the run
// with an error that says so, as it does within an app: not with the
// later app's refusal to start after its Stop, which reads as a wiring
// mistake ("Start called after Stop") in the log and in OnShutdown's
// report.
func TestShutdownBetweenAppsNamesTheAbandonment(t *testing.T) {
	j := &journal{}
	srvc, bStopped := make(chan *Server, 1), make(chan struct{})
	b := app(j, "cache")
	b.Name = "b"
	b.Observer = func(e lifespan.Event) {
		if e.Kind == lifespan.PhaseChanged && e.Phase == lifespan.PhaseStopped {
			close(bStopped)
		}
	}
	a := app(j, "db")
	a.Observer = func(e lifespan.Event) {
		if e.Kind == lifespan.PhaseChanged && e.Phase == lifespan.PhaseReady {
			// a has started, b not yet: the shutdown comes now, and
			// reaches b (Stop, in reverse) before the Group starts it.
			within(t, srvc, "the server").Shutdown()
			within(t, bStopped, "b to be stopped")
		}
	}
	f := start(t, Config{Apps: lifespan.Group{a, b}, API: http.NotFoundHandler(), DrainDelay: -1})
	srvc <- f.srv
	err := within(t, f.runErr, "Run")
	if ExitCode(err) != ExitStartup || !slices.Equal(j.list(), []string{"stop db"}) {
		t.Fatalf("Run = %v (exit %d), journal %q; want an abandoned startup, db stopped", err, ExitCode(err), j.list())
	}
	if strings.Contains(err.Error(), "Start called after Stop") || !strings.Contains(err.Error(), "shutdown called") {
		t.Errorf("Run = %v; want an error that says the shutdown (shutdown called) abandoned the startup", err)
	}
}
