package serve

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
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

func TestSignalIsOneShot(t *testing.T) {
	s := newSignal("X")
	if s.Signalled() || !s.At().IsZero() {
		t.Fatal("a new signal is signalled")
	}
	select {
	case <-s.Done():
		t.Fatal("Done closed before the signal")
	default:
	}
	if !s.signal() {
		t.Fatal("the first signal() did not signal")
	}
	at := s.At()
	if s.signal() || s.At() != at {
		t.Fatal("a second signal() signalled again or moved the time")
	}
	within(t, s.Done(), "Done")
	if !s.Signalled() || at.IsZero() || s.Name() != "X" {
		t.Fatalf("after signal: %v %v %q", s.Signalled(), at, s.Name())
	}
	sigs := newSignals()
	if sigs.Latest() != nil {
		t.Fatal("Latest before any signal")
	}
	sigs.StartupComplete.signal()
	sigs.Listening.signal()
	if sigs.Latest() != sigs.Listening {
		t.Fatalf("Latest = %s, want the one signalled last, whatever its place in the timeline", sigs.Latest().Name())
	}
	names := []string{}
	for _, s := range sigs.All() {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, " "); got != "Listening StartupComplete ShutdownInitiated ReadinessFailing DrainStarted InFlightDrained TasksStopped HooksStopped ShutdownComplete" {
		t.Fatalf("All = %s", got)
	}
}

// stuckStop is a server on SIGUSR1 whose one hook's stop hangs until the
// server calls Exit, so a shutdown stays under way while a test sends
// signals; exited receives the exit code.
type stuckStop struct {
	*fixture
	logs     *logbuf.Buffer
	stopping chan struct{} // closed when the stop hook runs
	exited   chan int
}

func startStuckStop(t *testing.T) *stuckStop {
	st := &stuckStop{logs: &logbuf.Buffer{}, stopping: make(chan struct{}), exited: make(chan int, 1)}
	release := make(chan struct{})
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "stuck", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { close(st.stopping); <-release; return nil }, nil
	}})
	st.fixture = start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), Logger: slog.New(slog.NewTextHandler(st.logs, nil)),
		DrainDelay: -1, ShutdownOn: []os.Signal{syscall.SIGUSR1}, Exit: func(code int) { st.exited <- code; close(release) }})
	within(t, st.sig.StartupComplete.Done(), "StartupComplete")
	return st
}

// signalAndLog sends SIGUSR1 and waits until the log says logged, failing
// if the process is made to exit meanwhile.
func (st *stuckStop) signalAndLog(what, logged string) {
	st.t.Helper()
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(st.logs.String(), logged) {
		if time.Now().After(deadline) {
			st.t.Fatalf("%s: the log never said %q:\n%s", what, logged, st.logs.String())
		}
		select {
		case code := <-st.exited:
			st.t.Fatalf("%s forced exit %d", what, code)
		case <-time.After(5 * time.Millisecond): // polling a log; the condition, not the sleep, is the wait
		}
	}
}

// forceAfter waits until a second has passed since from, then sends
// SIGUSR1, which must force exit code 4.
func (st *stuckStop) forceAfter(from time.Time) {
	st.t.Helper()
	for time.Since(from) < forceDebounce {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	if code := within(st.t, st.exited, "forced exit"); code != ExitForced {
		st.t.Fatalf("exit code %d, want %d", code, ExitForced)
	}
	within(st.t, st.runErr, "Run")
}

func TestSecondSignalForcesExitAfterTheDebounce(t *testing.T) {
	st := startStuckStop(t)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	within(t, st.sig.ShutdownInitiated.Done(), "T0")
	within(t, st.stopping, "stop hook")
	// A second signal right after the first (two forwarders of one SIGTERM)
	// is ignored; one after the debounce forces the exit.
	st.signalAndLog("a second signal right after the first", "signal ignored")
	st.forceAfter(st.sig.ShutdownInitiated.At())
	if logs := st.logs.String(); !strings.Contains(logs, "second signal: exiting at once") || !strings.Contains(logs, "running=[api/hook:stuck]") ||
		!strings.Contains(logs, "last_signal=TasksStopped") {
		t.Fatalf("forced-exit log lacks what was running or the last signal:\n%s", logs)
	}
}

// A shutdown that began without a signal (Shutdown, the Run context) is
// joined by the first OS signal, however late: only a second one forces
// the exit.
func TestFirstSignalJoinsAShutdownBegunOtherwise(t *testing.T) {
	st := startStuckStop(t)
	st.srv.Shutdown()
	within(t, st.stopping, "stop hook")
	for time.Since(st.sig.ShutdownInitiated.At()) < forceDebounce {
		time.Sleep(10 * time.Millisecond)
	}
	st.signalAndLog("the first signal, during a shutdown begun by Shutdown,", "the shutdown is under way already")
	joined := time.Now()
	// A second signal at once (two forwarders of that SIGTERM) comes over a
	// second after the shutdown began but not after the first signal: it
	// is ignored.
	st.signalAndLog("a second signal right after the first", "signal ignored")
	st.forceAfter(joined)
}

// With ShutdownOn left nil, SIGTERM, SIGINT and SIGHUP each start the
// drain. Were one of them not handled, its default action would kill the
// test binary: the test cannot pass by accident.
func TestDefaultSignalsDrain(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			// A process started with SIGINT or SIGHUP ignored (these tests
			// may run under nohup, or as a shell's background job) keeps
			// ignoring it, and os/signal cannot undo that for a test: the
			// kernel then discards it, and a SIGTERM after it must be
			// what starts the shutdown.
			ignored := signal.Ignored(sig)
			reason := sig.String()
			var logs logbuf.Buffer
			srv, err := New(Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
				DrainDelay: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Exit: func(code int) { t.Errorf("exit %d", code) }})
			if err != nil {
				t.Fatal(err)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- srv.Run(context.Background()) }()
			within(t, srv.Signals().StartupComplete.Done(), "StartupComplete")
			syscall.Kill(os.Getpid(), sig)
			if ignored {
				syscall.Kill(os.Getpid(), syscall.SIGTERM)
				reason = syscall.SIGTERM.String()
			}
			if err := within(t, runErr, "Run"); err != nil {
				t.Fatalf("Run = %v, want a clean shutdown", err)
			}
			if !strings.Contains(logs.String(), "msg=ShutdownInitiated reason="+reason+" ") {
				t.Fatalf("the shutdown's reason is not %q (%v started ignored: %v):\n%s", reason, sig, ignored, logs.String())
			}
		})
	}
}

func TestRunTwiceIsRefused(t *testing.T) {
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	err := f.srv.Run(context.Background())
	if err == nil || ExitCode(err) != ExitConfig || !strings.Contains(err.Error(), "Run called a second time") {
		t.Fatalf("second Run = %v", err)
	}
	f.srv.Shutdown()
	if err := within(t, f.runErr, "first Run"); err != nil {
		t.Fatalf("the first Run, after a refused second: %v", err)
	}
}

// A hook appended after New would start with no readiness check and an
// unchecked name: Run refuses the app, naming it and the hooks, and starts
// nothing.
func TestHooksAppendedAfterNewAreRefused(t *testing.T) {
	j := &journal{}
	a := app(j, "db")
	srv, err := New(Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, Logger: quietLogger(), ShutdownOn: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	a.Append(lifespan.Hook{Name: "late?", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		j.add("start late?")
		return nil, nil
	}})
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(t.Context()) }()
	t.Cleanup(func() { // a Run that was not refused is shut down, not left running
		if !srv.Signals().ShutdownInitiated.Signalled() {
			srv.Shutdown()
		}
	})
	err = within(t, runErr, "the refused Run")
	if err == nil || ExitCode(err) != ExitConfig || !strings.Contains(err.Error(), `app "api" has hooks ["db" "late?"], where it had ["db"] at New`) {
		t.Fatalf("Run = %v, want a configuration error naming the app and its hooks", err)
	}
	if got := a.Phase(); got != lifespan.PhaseNew {
		t.Errorf("the app's phase after the refused Run = %v, want new: nothing started", got)
	}
	if got := j.list(); len(got) != 0 {
		t.Errorf("hooks ran: %q", got)
	}
}

func TestContextEndStartsTheShutdown(t *testing.T) {
	srv, err := New(Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, Logger: quietLogger(), ShutdownOn: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var report ShutdownReport
	srv.cfg.OnShutdown = func(_ context.Context, r ShutdownReport) error { report = r; return nil }
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	within(t, srv.Signals().StartupComplete.Done(), "StartupComplete")
	cancel()
	if err := within(t, done, "Run"); err != nil {
		t.Fatal(err)
	}
	if report.Reason != "context done" {
		t.Fatalf("reason = %q", report.Reason)
	}
}

// The hooks, their stops (a shutdown's, and a failed startup's rollback),
// OnShutdown, the sidecars' quit and the background checks see the values
// of Run's context (a logger, a trace), as they would of any context their
// caller gives.
func TestHooksAndOnShutdownSeeRunsContextValues(t *testing.T) {
	type key struct{}
	for _, tt := range []struct {
		name      string
		startFail bool
		want      []string
	}{
		{"a shutdown", false, []string{"start db", "start cache", "stop cache", "stop db", "OnShutdown", "quit sidecars"}},
		{"a failed startup's rollback", true, []string{"start db", "start cache", "stop db", "OnShutdown", "quit sidecars after a failed startup"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			seen := func(ctx context.Context, what string) {
				if v, _ := ctx.Value(key{}).(string); v == "run's" {
					j.add(what)
				} else {
					j.add(what + " without Run's values")
				}
			}
			a := &lifespan.App{Name: "api"}
			for _, n := range []string{"db", "cache"} {
				a.Append(lifespan.Hook{Name: n, Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
					seen(ctx, "start "+n)
					if n == "cache" && tt.startFail {
						return nil, errors.New("refused")
					}
					return func(ctx context.Context) error { seen(ctx, "stop "+n); return nil }, nil
				}})
			}
			// A background check runs many times (at the start, in the
			// refresh after startup): each run counts.
			var checkRuns, checkRunsWithout atomic.Int32
			checks := probes.New()
			checks.Add(probes.Readiness, probes.Check{Name: "dep", Interval: time.Hour, Run: func(ctx context.Context) error {
				if v, _ := ctx.Value(key{}).(string); v != "run's" {
					checkRunsWithout.Add(1)
				}
				checkRuns.Add(1)
				return nil
			}})
			srv, err := New(Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
				DrainDelay: -1, Logger: quietLogger(), ShutdownOn: []os.Signal{}, Probes: checks,
				OnShutdown:                     func(ctx context.Context, _ ShutdownReport) error { seen(ctx, "OnShutdown"); return nil },
				QuitSidecars:                   func(ctx context.Context) error { seen(ctx, "quit sidecars"); return nil },
				QuitSidecarsAfterFailedStartup: func(ctx context.Context) error { seen(ctx, "quit sidecars after a failed startup"); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- srv.Run(context.WithValue(t.Context(), key{}, "run's")) }()
			if !tt.startFail {
				within(t, srv.Signals().StartupComplete.Done(), "StartupComplete")
				srv.Shutdown()
			}
			within(t, done, "Run")
			if got := j.list(); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if n := checkRunsWithout.Load(); n > 0 {
				t.Errorf("%d of the background check's %d runs without Run's values", n, checkRuns.Load())
			}
			if !tt.startFail && checkRuns.Load() == 0 {
				t.Error("the background check never ran: the refresh after startup runs it")
			}
		})
	}
}

// A signal's time carries the monotonic clock's reading, so the deadlines
// built from it (the stop budget, the drain delay) and the durations in
// the report do not move when the wall clock steps.
func TestSignalTimesAreMonotonic(t *testing.T) {
	s := newSignal("Test")
	if !s.At().IsZero() {
		t.Fatal("a signal not signalled has a time")
	}
	s.signal()
	if at := s.At(); at == at.Round(0) {
		t.Errorf("At() = %v has no monotonic clock reading", at)
	}
	g := &gate{}
	g.lastArrival.Store(int64(time.Since(clockBase)))
	if last := g.lastArrivalTime(); last == last.Round(0) {
		t.Errorf("the last arrival %v has no monotonic clock reading", last)
	}
}

// The default signals leave out SIGINT and SIGHUP when the process started
// with them ignored (nohup, a shell's background job): signal.Notify would
// otherwise turn an ignored hang-up into a shutdown. SIGTERM always counts.
func TestDefaultSignalsKeepWhatStartedIgnored(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ignored []os.Signal
		want    []os.Signal
	}{
		{"none ignored", nil, []os.Signal{syscall.SIGTERM, os.Interrupt, syscall.SIGHUP}},
		{"nohup", []os.Signal{syscall.SIGHUP}, []os.Signal{syscall.SIGTERM, os.Interrupt}},
		{"a background job", []os.Signal{os.Interrupt}, []os.Signal{syscall.SIGTERM, syscall.SIGHUP}},
		{"SIGTERM ignored too", []os.Signal{syscall.SIGTERM, os.Interrupt, syscall.SIGHUP}, []os.Signal{syscall.SIGTERM}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultSignals(func(s os.Signal) bool { return slices.Contains(tt.ignored, s) })
			if !slices.Equal(got, tt.want) {
				t.Fatalf("defaultSignals = %v, want %v", got, tt.want)
			}
		})
	}
}

// New reads which signals the process ignores: with SIGHUP ignored, as
// under nohup, the default signals leave it out.
func TestNewKeepsAnIgnoredHangupIgnored(t *testing.T) {
	ignoring(t, syscall.SIGHUP, true)
	srv, err := New(Config{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(srv.cfg.ShutdownOn, os.Signal(syscall.SIGHUP)) || !slices.Contains(srv.cfg.ShutdownOn, os.Signal(syscall.SIGTERM)) {
		t.Fatalf("ShutdownOn = %v with SIGHUP ignored; want SIGTERM and not SIGHUP", srv.cfg.ShutdownOn)
	}
}

// ignoring sets whether the process ignores sig for the rest of t, and
// then restores what it was: the tests may themselves run under nohup, or
// as a shell's background job. Call it before a server Notifies for sig.
func ignoring(t *testing.T, sig os.Signal, ignore bool) {
	t.Helper()
	set := func(ignore bool) {
		if ignore {
			signal.Ignore(sig)
		} else {
			signal.Reset(sig)
		}
	}
	was := signal.Ignored(sig)
	set(ignore)
	t.Cleanup(func() { set(was) })
}

// signalLog records the messages of the records it handles, in the order
// they reach it. ShutdownInitiated's record is a slow write: it waits
// (bounded) until another signal's record arrives, as a log line still
// being written when the next signal fires would.
type signalLog struct {
	names   []string // the signals' names: the records that end the wait
	mu      sync.Mutex
	msgs    []string
	arrived chan struct{} // made when ShutdownInitiated's record arrives
	woken   bool
}

func (h *signalLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalLog) WithGroup(string) slog.Handler            { return h }

func (h *signalLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Message == "ShutdownInitiated" && h.arrived == nil:
		arrived := make(chan struct{})
		h.arrived = arrived
		h.mu.Unlock()
		select {
		case <-arrived:
		case <-time.After(200 * time.Millisecond): // none came: the next signal waits for this line
		}
		h.mu.Lock()
	case h.arrived != nil && !h.woken && slices.Contains(h.names, r.Message):
		close(h.arrived)
		h.woken = true
	}
	h.msgs = append(h.msgs, r.Message)
	return nil
}

// The signals' lines are logged in the order the signals fire, however
// slow the log: ShutdownInitiated's line was written after the signal had
// woken the shutdown, which then logged ReadinessFailing before it (two
// runs of thirty, with no slow log at all).
func TestSignalsAreLoggedInTheOrderTheyFire(t *testing.T) {
	h := &signalLog{}
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1, Logger: slog.New(h)})
	for _, s := range f.sig.All() {
		h.names = append(h.names, s.Name())
	}
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatalf("Run = %v, want a clean shutdown", err)
	}
	fired := slices.Clone(f.sig.All())
	slices.SortStableFunc(fired, func(a, b *Signal) int { return a.At().Compare(b.At()) })
	var want, got []string
	for _, s := range fired {
		want = append(want, s.Name())
	}
	h.mu.Lock()
	for _, m := range h.msgs {
		if slices.Contains(h.names, m) {
			got = append(got, m)
		}
	}
	h.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("signals logged in the order %v, want the order they fired, %v", got, want)
	}
}
