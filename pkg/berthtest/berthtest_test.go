package berthtest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeT records what the helper reports, to test the helper itself.
type fakeT struct {
	mu       sync.Mutex
	cleanups []func()
	errors   []string
	fatal    string
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeT) Fatalf(format string, a ...any) {
	f.fatal = fmt.Sprintf(format, a...)
	runtime.Goexit()
}
func (f *fakeT) errorCount() int { return len(f.errorList()) }
func (f *fakeT) errorList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errors)
}
func (f *fakeT) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// inGoroutine runs fn the way the testing package runs a test, so Fatalf's
// Goexit ends only fn.
func inGoroutine(fn func()) {
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	<-done
}

func app(stopErr error, record *[]string) lifespan.Group {
	l := &lifespan.App{Name: "api"}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		*record = append(*record, "started")
		return func(context.Context) error { *record = append(*record, "stopped"); return stopErr }, nil
	}})
	return lifespan.Group{l}
}

func TestStartRunsStartupCleanupRunsShutdown(t *testing.T) {
	var record []string
	ft := &fakeT{}
	var a *berthtest.App
	inGoroutine(func() {
		a = berthtest.Start(ft, serve.Config{Apps: app(nil, &record), API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") })})
	})
	if ft.fatal != "" || strings.Join(record, ",") != "started" {
		t.Fatalf("after Start: fatal=%q record=%q", ft.fatal, record)
	}
	if code, body := a.Get(t, "/"); code != 200 || body != "hi" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, _ := a.GetAdmin(t, "/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	ft.cleanup()
	if strings.Join(record, ",") != "started,stopped" || len(ft.errors) != 0 {
		t.Fatalf("after cleanup: record=%q errors=%q", record, ft.errors)
	}
}

func TestShutdownErrorFailsTheTest(t *testing.T) {
	var record []string
	ft := &fakeT{}
	inGoroutine(func() {
		berthtest.Start(ft, serve.Config{Apps: app(errors.New("flush failed"), &record), API: http.NotFoundHandler()})
	})
	ft.cleanup()
	if len(ft.errors) != 1 || !strings.Contains(ft.errors[0], `hook "db": stop: flush failed`) {
		t.Fatalf("errors = %q", ft.errors)
	}
}

func TestFailedStartupFailsTheTest(t *testing.T) {
	ft := &fakeT{}
	l := &lifespan.App{Name: "api"}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return nil, errors.New("refused")
	}})
	inGoroutine(func() { berthtest.Start(ft, serve.Config{Apps: lifespan.Group{l}, API: http.NotFoundHandler()}) })
	if !strings.Contains(ft.fatal, `startup failed: lifespan "api": hook "db": start: refused`) {
		t.Fatalf("fatal = %q", ft.fatal)
	}
}

// What Start sets unless cfg does: no drain delay (the budget is the one a
// DrainDelay of none gives), unless a quiet period needs serve's delay to
// end early; and no log reaches slog's default logger.
func TestStartDefaults(t *testing.T) {
	var logged strings.Builder
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	api := http.NotFoundHandler()
	noDelay, err := serve.New(serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, API: api, DrainDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		cfg    serve.Config
		budget time.Duration
	}{
		{"no drain delay", serve.Config{}, noDelay.Budget()},
		{"a quiet period, serve's delay", serve.Config{DrainQuiet: time.Second}, noDelay.Budget() + serve.DefaultDrainDelay},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeT{}
			tt.cfg.Apps, tt.cfg.API = lifespan.Group{&lifespan.App{Name: "api"}}, api
			var a *berthtest.App
			inGoroutine(func() { a = berthtest.Start(ft, tt.cfg) })
			if ft.fatal != "" {
				t.Fatalf("Start: %s", ft.fatal)
			}
			if got := a.Server.Budget(); got != tt.budget {
				t.Errorf("budget %v, want %v", got, tt.budget)
			}
			ft.cleanup()
			if len(ft.errors) != 0 {
				t.Fatalf("errors = %q", ft.errors)
			}
		})
	}
	if logged.Len() != 0 {
		t.Errorf("logs reached slog's default logger:\n%s", logged.String())
	}
}

// Get and GetAdmin take a path with or without its leading slash.
func TestGetJoinsThePath(t *testing.T) {
	ft := &fakeT{}
	var a *berthtest.App
	inGoroutine(func() {
		a = berthtest.Start(ft, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}},
			API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.Path) })})
	})
	defer ft.cleanup()
	for _, path := range []string{"/api/v1/info", "api/v1/info"} {
		if code, body := a.Get(t, path); code != 200 || body != "/api/v1/info" {
			t.Errorf("Get(%q) = %d %q, want 200 /api/v1/info", path, code, body)
		}
	}
	if code, _ := a.GetAdmin(t, "readyz"); code != 200 {
		t.Errorf("GetAdmin(readyz) = %d, want 200", code)
	}
}

// deadlineT is a fakeT with a test deadline, as *testing.T has under
// go test -timeout.
type deadlineT struct {
	*fakeT
	deadline time.Time
}

func (d deadlineT) Deadline() (time.Time, bool) { return d.deadline, true }

// A startup that is still running close to the test's deadline fails the
// test, naming the hook still starting: Start used to wait until go test's
// timeout panicked, with nothing reported. The test's cleanup then waits
// for the rollback: the stops of the hooks that started and OnShutdown
// run before the test ends, not after (where a log through t panics).
func TestStartupPastTheDeadlineFailsTheTest(t *testing.T) {
	var stopped, reported atomic.Bool
	release := make(chan struct{})
	l := &lifespan.App{Name: "api"}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { stopped.Store(true); return nil }, nil
	}})
	l.Append(lifespan.Hook{Name: "migrate", After: []string{"db"}, Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		<-ctx.Done() // a start that would never end on its own,
		<-release    // and is slow to notice its context
		return nil, ctx.Err()
	}})
	ft := deadlineT{&fakeT{}, time.Now().Add(200 * time.Millisecond)} // waits half of it
	inGoroutine(func() {
		berthtest.Start(ft, serve.Config{Apps: lifespan.Group{l}, API: http.NotFoundHandler(),
			OnShutdown: func(context.Context, serve.ShutdownReport) error { reported.Store(true); return nil }})
	})
	if !strings.Contains(ft.fatal, "berthtest: startup still running close to the test's deadline; still starting: api/hook:migrate") {
		t.Fatalf("fatal = %q", ft.fatal)
	}
	close(release)
	ft.cleanup()
	if !stopped.Load() || !reported.Load() {
		t.Errorf("the test's cleanups ended before the rollback did (db stopped %v, OnShutdown ran %v)", stopped.Load(), reported.Load())
	}
	if errs := ft.errorList(); len(errs) != 0 {
		t.Errorf("errors besides the fatal one: %q", errs)
	}
}

// The shutdown in Cleanup ends its wait before the test's deadline too, as
// the rollback's does: a request that outlives the drain used to hold the
// cleanup for the drain timeout, past the deadline, where go test panics
// with every goroutine's stack and the helper's own account of what was
// still running is never read. The account names the request in flight.
func TestCleanupEndsItsWaitBeforeTheDeadline(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	ft := deadlineT{&fakeT{}, time.Now().Add(1500 * time.Millisecond)}
	var a *berthtest.App
	inGoroutine(func() {
		a = berthtest.Start(ft, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, DrainTimeout: 5 * time.Second,
			API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { arrived <- struct{}{}; <-release })})
	})
	if ft.fatal != "" {
		t.Fatal(ft.fatal)
	}
	go func() {
		if resp, err := a.Client.Get(a.URL + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	ft.cleanup()
	ended := time.Now()
	close(release) // the shutdown then ends, in the background
	if ended.After(ft.deadline) {
		t.Errorf("the cleanup returned %v after the test's deadline", ended.Sub(ft.deadline).Round(time.Millisecond))
	}
	if errs := ft.errorList(); len(errs) != 1 || !strings.HasPrefix(errs[0], "berthtest: shutdown still running after ") ||
		!strings.Contains(errs[0], "(1 API requests in flight; still running: )") {
		t.Errorf("errors %q; want one naming the request in flight", errs)
	}
	<-a.Server.Signals().ShutdownComplete.Done() // no goroutine outlives the test
}

// With less than the slack left before the deadline (go test -timeout 4s),
// a quick startup still completes: the wait is then half the time left
// (it used to be negative, and every Start failed at once).
func TestStartWithAShortDeadline(t *testing.T) {
	ft := deadlineT{&fakeT{}, time.Now().Add(4 * time.Second)}
	inGoroutine(func() {
		berthtest.Start(ft, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, API: http.NotFoundHandler()})
	})
	if ft.fatal != "" {
		t.Fatalf("Start with 4s to the deadline: %s", ft.fatal)
	}
	ft.cleanup()
	if len(ft.errors) != 0 {
		t.Errorf("cleanup: %q", ft.errors)
	}
}

// The cleanup's bound saturates: a budget of "no bound" (a drain timeout
// of math.MaxInt64) plus the helper's slack wrapped negative, and a clean
// shutdown failed the test at once.
func TestUnboundedBudgetDoesNotFailTheCleanup(t *testing.T) {
	ft := &fakeT{}
	inGoroutine(func() {
		berthtest.Start(ft, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, API: http.NotFoundHandler(), DrainTimeout: math.MaxInt64})
	})
	if ft.fatal != "" {
		t.Fatal(ft.fatal)
	}
	ft.cleanup()
	if len(ft.errors) != 0 {
		t.Errorf("a clean shutdown reported %q", ft.errors)
	}
}

// A shutdown still running when the server's budget (plus slack) is over
// fails the test, saying so: the wait in Cleanup is bounded. The slack is
// set to take the whole budget back, and the stop hook is held until the
// failure is reported.
func TestShutdownPastTheBudgetFailsTheTest(t *testing.T) {
	release := make(chan struct{})
	l := &lifespan.App{Name: "api"}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { <-release; return nil }, nil
	}})
	cfg := serve.Config{Apps: lifespan.Group{l}, API: http.NotFoundHandler(), DrainDelay: -1}
	srv, err := serve.New(cfg) // the budget Start's server will have
	if err != nil {
		t.Fatal(err)
	}
	defer berthtest.SetCleanupSlack(-srv.Budget())()
	ft := &fakeT{}
	var a *berthtest.App
	inGoroutine(func() { a = berthtest.Start(ft, cfg) })
	if ft.fatal != "" {
		t.Fatal(ft.fatal)
	}
	ft.cleanup()
	close(release)
	<-a.Server.Signals().ShutdownComplete.Done()
	if len(ft.errors) != 1 || !strings.Contains(ft.errors[0], "berthtest: shutdown still running after 0s") {
		t.Fatalf("errors = %q, want the shutdown named still running", ft.errors)
	}
}

// A forced exit (a second OS signal while the shutdown runs) fails the
// test instead of ending the test binary.
func TestForcedExitFailsTheTest(t *testing.T) {
	release := make(chan struct{})
	stopping := make(chan struct{})
	l := &lifespan.App{Name: "api", StopTimeout: time.Minute}
	l.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { close(stopping); <-release; return nil }, nil
	}})
	ft := &fakeT{}
	var a *berthtest.App
	inGoroutine(func() {
		a = berthtest.Start(ft, serve.Config{Apps: lifespan.Group{l}, API: http.NotFoundHandler(), StopTimeout: time.Minute,
			ShutdownOn: []os.Signal{syscall.SIGUSR1}})
	})
	if ft.fatal != "" {
		t.Fatal(ft.fatal)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	<-stopping // the shutdown is under way, held in the stop hook
	// A second signal counts once serve's debounce (a second) has passed
	// since the first: send one every 100ms until the forced exit is
	// reported. The stop hook is held meanwhile, so the signals stay
	// serve's to handle.
	for deadline := time.Now().Add(10 * time.Second); ft.errorCount() == 0 && time.Now().Before(deadline); {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(release)
	<-a.Server.Signals().ShutdownComplete.Done()
	ft.cleanup()
	if errs := ft.errorList(); len(errs) == 0 || !strings.Contains(errs[0], "berthtest: forced exit with code") {
		t.Fatalf("errors = %q, want the forced exit reported", errs)
	}
}

// The wait for an abandoned startup's rollback ends before the test's
// deadline even when the rollback does not (a start that ignores its
// context, waited for as a late start): the test fails with Start's
// message and the wait's, where go test's timeout would otherwise panic
// first and lose both.
func TestRollbackWaitEndsBeforeTheDeadline(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{})
	l := &lifespan.App{Name: "api"}
	l.Append(lifespan.Hook{Name: "migrate", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		<-release // ignores its context
		return nil, nil
	}})
	ft := deadlineT{&fakeT{}, time.Now().Add(400 * time.Millisecond)}
	inGoroutine(func() {
		berthtest.Start(ft, serve.Config{Apps: lifespan.Group{l}, API: http.NotFoundHandler(),
			OnShutdown: func(context.Context, serve.ShutdownReport) error { close(ended); return nil }})
	})
	cleaned := make(chan struct{})
	go func() { ft.cleanup(); close(cleaned) }()
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		t.Fatal("the cleanup still waits for a rollback that outlasts the test's deadline")
	}
	if errs := ft.errorList(); !strings.Contains(ft.fatal, "startup still running") || len(errs) != 1 || !strings.Contains(errs[0], "berthtest: shutdown still running after") {
		t.Errorf("fatal %q, errors %q; want the startup named and the wait's end", ft.fatal, errs)
	}
	if time.Now().After(ft.deadline) {
		t.Errorf("the cleanup returned %v after the test's deadline", time.Since(ft.deadline))
	}
	close(release) // the rollback ends, and the server with it
	<-ended
}

// What Start promises of every cfg that sets neither: its servers listen
// on loopback only, and no OS signal reaches them (a SIGTERM or a Ctrl-C
// is the test binary's, not a shutdown of the service under test).
func TestStartListensOnLoopbackAndHandlesNoSignal(t *testing.T) {
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, syscall.SIGTERM) // the test binary lives whatever Start does
	defer signal.Stop(caught)
	ft := &fakeT{}
	var a *berthtest.App
	inGoroutine(func() {
		a = berthtest.Start(ft, serve.Config{Apps: lifespan.Group{&lifespan.App{Name: "api"}}, API: http.NotFoundHandler()})
	})
	if ft.fatal != "" {
		t.Fatal(ft.fatal)
	}
	defer ft.cleanup()
	for _, u := range []string{a.URL, a.AdminURL} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("a server listens at %s, want loopback (http://127.0.0.1:PORT)", u)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-caught
	// A server that handled SIGTERM would begin its shutdown within
	// moments; this is a bounded look for that, not a wait for anything
	// the test needs (it passes at once, however slow the machine, when
	// the signal is not handled).
	select {
	case <-a.Server.Signals().ShutdownInitiated.Done():
		t.Error("a SIGTERM to the test binary began the shutdown of the server under test")
	case <-time.After(500 * time.Millisecond):
	}
}
