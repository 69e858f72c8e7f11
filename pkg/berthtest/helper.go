package berthtest

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/serve"
)

// TB is the part of testing.TB the helper uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// App is a running service under test.
type App struct {
	// URL is the API's base URL ("http://127.0.0.1:PORT"); AdminURL the
	// admin server's (probes, metrics).
	URL      string
	AdminURL string
	// Client talks to both; it has a timeout, so no test hangs on it.
	Client *http.Client
	Server *serve.Server
}

// startupSlack is how long before the test's deadline (go test -timeout)
// Start stops waiting for a startup (or at half the time left, if less):
// time to fail the test with the hooks still starting, before go test
// panics with every goroutine's stack.
const startupSlack = 5 * time.Second

// cleanupSlack is what the wait for the shutdown in Cleanup allows past
// the server's budget before it fails the test (the test's deadline
// bounds it too).
var cleanupSlack = 30 * time.Second

// Start runs cfg's apps and servers on loopback ports and returns once
// startup has completed (StartupComplete); a failed startup fails the test,
// and so does one still running 5s before the test's deadline (or at half
// the time left, when less), when t has one (a *testing.T run with
// -timeout), naming the hooks still starting (Cleanup then waits for the
// rollback of what did start).
// Unless set in cfg: there is no drain delay (a test has no endpoints to
// propagate; with DrainQuiet set, serve's default delay, which the quiet
// period ends early), OS signals are not handled, logs are discarded, and a forced
// exit fails the test instead of exiting. The shutdown runs in t.Cleanup,
// which fails the test if the shutdown reports an error or outlasts the
// server's budget (plus 30s of slack), or runs until a second before the
// test's deadline (or half the time left, when less): it then names the
// requests in flight and what still runs, where go test's timeout would
// panic with every goroutine's stack and none of that.
func Start(t TB, cfg serve.Config) *App {
	t.Helper()
	cfg.APIAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.DrainDelay == 0 && cfg.DrainQuiet == 0 {
		cfg.DrainDelay = -1 // a quiet period needs serve's delay to end early
	}
	if cfg.ShutdownOn == nil {
		cfg.ShutdownOn = []os.Signal{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Exit == nil {
		cfg.Exit = func(code int) { t.Errorf("berthtest: forced exit with code %d", code) }
	}
	srv, err := serve.New(cfg)
	if err != nil {
		t.Fatalf("berthtest: %v", err)
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	var expired <-chan time.Time
	var deadline time.Time // the test's, if it has one
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok = d.Deadline(); ok {
			// Half of what is left when that is less than the slack:
			// a test run with a short -timeout still gets its startup.
			left := time.Until(deadline)
			timer := time.NewTimer(max(left-startupSlack, left/2))
			defer timer.Stop()
			expired = timer.C
		}
	}
	// The server's shutdown budget, plus slack, bounds the wait for Run
	// in Cleanup (saturating: a budget of "no bound" stays one).
	budget := time.Duration(math.MaxInt64)
	if b := srv.Budget(); cleanupSlack <= 0 || b < budget-cleanupSlack {
		budget = b + cleanupSlack
	}
	// The wait ends a second before the test's deadline (or halfway
	// there), so that go test's timeout, which panics with every
	// goroutine's stack, never swallows what the test is failed for.
	bounded := func() time.Duration {
		if deadline.IsZero() {
			return budget
		}
		left := time.Until(deadline)
		return min(budget, max(left-time.Second, left/2))
	}
	waitForRun := func(report bool, bound time.Duration) {
		select {
		case err := <-done:
			if err != nil && report {
				t.Errorf("berthtest: shutdown: %v", err)
			}
		case <-time.After(bound):
			t.Errorf("berthtest: shutdown still running after %v (%d API requests in flight; still running: %s)",
				bound.Round(time.Millisecond), srv.InFlight(), strings.Join(cfg.Apps.Running(), ", "))
		}
	}
	select {
	case <-srv.Signals().StartupComplete.Done():
	case err := <-done:
		t.Fatalf("berthtest: %v", err)
		return nil
	case <-expired:
		running := cfg.Apps.Running()
		srv.Shutdown() // abandons the startup; Run goes on to roll it back
		// The test ends once its cleanups have waited for the rollback:
		// its hooks' stops and OnShutdown run while the test is still
		// running, and leave no goroutine behind. Run's error is the
		// abandoned startup, which the test already fails for.
		t.Cleanup(func() { waitForRun(false, bounded()) })
		t.Fatalf("berthtest: startup still running close to the test's deadline; still starting: %s", strings.Join(running, ", "))
		return nil
	}
	t.Cleanup(func() {
		srv.Shutdown()
		waitForRun(true, bounded())
	})
	return &App{
		URL:      "http://" + srv.APIAddr().String(),
		AdminURL: "http://" + srv.AdminAddr().String(),
		Client:   &http.Client{Timeout: 30 * time.Second},
		Server:   srv,
	}
}

// Get requests path (relative to URL, with or without its leading slash)
// and returns the status and body; a transport error fails the test.
func (a *App) Get(t TB, path string) (int, string) {
	t.Helper()
	return a.do(t, a.URL, path)
}

// GetAdmin is Get on the admin server.
func (a *App) GetAdmin(t TB, path string) (int, string) {
	t.Helper()
	return a.do(t, a.AdminURL, path)
}

func (a *App) do(t TB, base, path string) (int, string) {
	t.Helper()
	url := base + "/" + strings.TrimPrefix(path, "/")
	resp, err := a.Client.Get(url)
	if err != nil {
		t.Fatalf("berthtest: GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("berthtest: GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
