package serve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/logbuf"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

func TestShutdownTimeline(t *testing.T) {
	j := &journal{}
	a := &lifespan.App{Name: "api"}
	a.Append(
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
	var report ShutdownReport
	f := start(t, Config{
		Apps: lifespan.Group{a}, API: mux, DrainTimeout: 10 * time.Second,
		QuitSidecars: func(context.Context) error { j.add("quit sidecars"); return nil },
		OnShutdown:   func(_ context.Context, r ShutdownReport) error { report = r; j.add("push"); return nil },
	})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
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
	within(t, f.sig.ReadinessFailing.Done(), "ReadinessFailing")
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
	if f.sig.DrainStarted.Signalled() {
		t.Fatal("DrainStarted before the drain delay ended")
	}
	// T1: the delay ends; new connections are refused; the slow request goes on.
	f.delay <- time.Now()
	within(t, f.sig.DrainStarted.Done(), "DrainStarted")
	if _, err := net.DialTimeout("tcp", f.srv.APIAddr().String(), time.Second); err == nil {
		t.Error("API still accepting after DrainStarted")
	}
	if code, _, _ := f.get(f.srv.AdminAddr(), "/livez"); code != 200 {
		t.Errorf("admin must outlive the API; livez = %d", code)
	}
	if f.sig.InFlightDrained.Signalled() {
		t.Fatal("InFlightDrained while a request is in flight")
	}
	close(release)
	if body := within(t, slowDone, "slow request"); body != "slow" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := within(t, f.runErr, "Run to return"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The push needs the network, which a classic sidecar may provide: the
	// sidecars quit after it.
	want := []string{"slow request done", "task cancelled", "stop jobs", "stop db", "push", "quit sidecars"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
	if _, err := net.DialTimeout("tcp", f.srv.AdminAddr().String(), time.Second); err == nil {
		t.Error("admin still up after Run returned")
	}
	if report.ServedDuringDelay != 1 || report.InFlightAtDrainStart != 1 || report.CutOff != 0 || report.Reason != "shutdown called" || report.Err != nil {
		t.Errorf("report = %+v", report)
	}
	var prev time.Time
	for _, s := range f.sig.All() {
		if !s.Signalled() || s.At().Before(prev) {
			t.Errorf("signal %s: signalled %v at %v, after %v", s.Name(), s.Signalled(), s.At(), prev)
		}
		prev = s.At()
	}
	if got, want := report.Total, f.sig.ShutdownComplete.At().Sub(f.sig.ShutdownInitiated.At()); got != want || got <= 0 {
		t.Errorf("report.Total = %v, want the time between the signals, %v", got, want)
	}
	if report.Delay+report.Drain+report.Tasks+report.Hooks > report.Total {
		t.Errorf("the steps (%v %v %v %v) add up to more than the total %v", report.Delay, report.Drain, report.Tasks, report.Hooks, report.Total)
	}
}

// Requests still running at the drain timeout are cut off then: their
// contexts end before the stop hooks run (a request must not outlive the
// database it uses), and the report counts each of them.
func TestDrainTimeoutCutsOff(t *testing.T) {
	const held = 2
	j := &journal{}
	var entered sync.WaitGroup
	entered.Add(held)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-r.Context().Done() // held until the connection is cut
		j.add("request cut")
	})
	var report ShutdownReport
	const drainTimeout = 100 * time.Millisecond
	f := start(t, Config{Apps: lifespan.Group{app(j, "db")}, API: api, DrainDelay: -1, DrainTimeout: drainTimeout,
		OnShutdown: func(_ context.Context, r ShutdownReport) error { report = r; return nil }})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	for range held {
		go func() {
			resp, err := f.client.Get("http://" + f.srv.APIAddr().String() + "/")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	allIn := make(chan struct{})
	go func() { entered.Wait(); close(allIn) }()
	within(t, allIn, "requests to start")
	f.srv.Shutdown()
	err := within(t, f.runErr, "Run")
	if err == nil || !strings.Contains(err.Error(), "2 requests still running after the 100ms drain timeout were cut off") {
		t.Fatalf("Run = %v", err)
	}
	// The cut requests return at once (they honour their context): the
	// drain lasts its timeout, and not much more (a bound from below only
	// would pass a timeout that did not bound the drain). DrainStarted is
	// marked just after the timeout's clock starts, so from below the
	// bound counts from ShutdownInitiated.
	if report.Delay+report.Drain < drainTimeout || report.Drain > drainTimeout+900*time.Millisecond {
		t.Errorf("the drain took %v (%v after ShutdownInitiated), want its %v timeout", report.Drain, report.Delay+report.Drain, drainTimeout)
	}
	if ExitCode(err) != ExitUnclean || report.CutOff != held || report.Delay > 40*time.Millisecond {
		t.Fatalf("exit %d, report %+v (a negative DrainDelay means no delay)", ExitCode(err), report)
	}
	if got, want := j.list(), []string{"request cut", "request cut", "stop db"}; !slices.Equal(got, want) {
		t.Fatalf("journal %q, want %q: the cut-off requests end before the stop hooks", got, want)
	}
}

// A connection that never sent a request (a client opened it ahead of
// one) holds http.Server.Shutdown for up to 5s; when the drain timeout
// ends that wait with no request running, nothing was cut off and the
// shutdown is clean. It used to fail, with "0 requests still running".
func TestSilentConnectionIsNotCutOff(t *testing.T) {
	var report ShutdownReport
	f := start(t, Config{API: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), DrainDelay: -1, DrainTimeout: 50 * time.Millisecond,
		OnShutdown: func(_ context.Context, r ShutdownReport) error { report = r; return nil }})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	silent, err := net.Dial("tcp", f.srv.APIAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The server accepts in order and tracks a connection as new before
	// serving it, so once a later connection is served, the silent one is
	// the server's.
	if code, _, _ := f.get(f.srv.APIAddr(), "/"); code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatalf("Run = %v (exit %d), want a clean shutdown", err, ExitCode(err))
	}
	if report.CutOff != 0 {
		t.Fatalf("report %+v, want nothing cut off", report)
	}
	if n, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the silent connection is still open (read %d bytes)", n)
	}
}

// A cut-off request that ignores its context is waited for only a tenth
// of the stop timeout: the tasks and hooks then stop anyway, within their
// budget, and the log says how many requests still ran.
func TestCutOffRequestsIgnoringTheirContextWaitATenth(t *testing.T) {
	j := &journal{}
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release // deaf to its context
	})
	var logs logbuf.Buffer
	const stopTimeout = 2 * time.Second
	f := start(t, Config{Apps: lifespan.Group{app(j, "db")}, API: api, DrainDelay: -1, DrainTimeout: 50 * time.Millisecond,
		StopTimeout: stopTimeout, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	go func() {
		if resp, err := f.client.Get("http://" + f.srv.APIAddr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	within(t, entered, "request to start")
	f.srv.Shutdown()
	within(t, f.runErr, "Run") // returns although the request never does
	if got := j.list(); !slices.Equal(got, []string{"stop db"}) {
		t.Fatalf("journal %q, want the hooks stopped", got)
	}
	// A tenth, and not much more: the slack above it is for a loaded
	// machine, well short of a fifth.
	if waited := f.sig.TasksStopped.At().Sub(f.sig.InFlightDrained.At()); waited < stopTimeout/10 || waited > stopTimeout/10+300*time.Millisecond {
		t.Errorf("the stop step began %v after the drain; want it to wait a tenth of the %v stop timeout first", waited, stopTimeout)
	}
	if !strings.Contains(logs.String(), "still_running=1") {
		t.Errorf("log lacks still_running=1:\n%s", logs.String())
	}
}

// traffic sends a request every interval until stop is closed, counting
// them; it returns when the last one has been answered.
func traffic(t *testing.T, f *fixture, interval time.Duration, stop <-chan struct{}) (sent *atomic.Int64, done <-chan struct{}) {
	sent = &atomic.Int64{}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			resp, err := f.client.Get("http://" + f.srv.APIAddr().String() + "/")
			if err != nil {
				return // the listener closed: the drain has started
			}
			resp.Body.Close()
			sent.Add(1)
		}
	}()
	return sent, finished
}

func TestQuietPeriodEndsTheDelayOnceTrafficStops(t *testing.T) {
	const delay, quiet = 10 * time.Second, 150 * time.Millisecond
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: delay, DrainQuiet: quiet})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	stop := make(chan struct{})
	sent, done := traffic(t, f, 20*time.Millisecond, stop)
	f.srv.Shutdown()
	within(t, f.sig.ReadinessFailing.Done(), "ReadinessFailing")
	for sent.Load() < 10 { // requests keep arriving after readiness failed...
		select {
		case <-done:
			t.Fatal("traffic stopped early")
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(stop) // ...and then stop, as they would once the endpoints are updated
	<-done
	within(t, f.runErr, "Run")
	last := f.srv.gate.lastArrivalTime()
	t0, t1 := f.sig.ShutdownInitiated.At(), f.sig.DrainStarted.At()
	if !last.After(t0) {
		t.Fatal("no request arrived during the delay")
	}
	if gap := t1.Sub(last); gap < quiet {
		t.Errorf("the drain started %v after the last request, before the %v quiet period passed", gap, quiet)
	}
	if took := t1.Sub(t0); took >= delay {
		t.Errorf("the drain started %v after T0: the quiet period did not end the %v delay early", took, delay)
	}
}

func TestQuietPeriodIsBoundedByTheDelay(t *testing.T) {
	const delay, quiet = 400 * time.Millisecond, 150 * time.Millisecond
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: delay, DrainQuiet: quiet})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	stop := make(chan struct{})
	_, done := traffic(t, f, 20*time.Millisecond, stop) // never quiet until the listener closes
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	close(stop)
	<-done
	if took := f.sig.DrainStarted.At().Sub(f.sig.ShutdownInitiated.At()); took < delay {
		t.Errorf("the drain started %v after T0 under steady traffic, before the %v delay", took, delay)
	}
}

func TestQuietPeriodWithoutTrafficWaitsTheQuietPeriodOnce(t *testing.T) {
	const delay, quiet = 10 * time.Second, 100 * time.Millisecond
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: delay, DrainQuiet: quiet})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	took := f.sig.DrainStarted.At().Sub(f.sig.ShutdownInitiated.At())
	if took < quiet || took >= delay {
		t.Errorf("with no traffic the drain started %v after T0; want the %v quiet period, not the %v delay", took, quiet, delay)
	}
}

// The drain delay's waits end when they should: the server's timer is
// replaced by one that answers at once and notes the moment each wait was
// asked to end, so the test reads the deadlines themselves, to the
// millisecond, without waiting for them (a bound checked only from below
// would miss a delay doubled, or a quiet period that overshoots it).
func TestDrainDelayWaitsEndWhenTheyShould(t *testing.T) {
	const delay = 5 * time.Second
	tests := []struct {
		name  string
		quiet time.Duration
		send  int             // requests sent during the first wait
		want  []time.Duration // each wait's end, after ShutdownInitiated
	}{
		{"fixed delay", 0, 0, []time.Duration{delay}},
		{"quiet period, nothing arrives: one quiet period", time.Second, 0, []time.Duration{time.Second}},
		// A request during the first wait moves the quiet period's end
		// past the delay: the second wait ends at the delay itself.
		{"quiet period that would outlast the delay: the delay bounds it", delay - time.Nanosecond, 1, []time.Duration{delay - time.Nanosecond, delay}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var ends []time.Time
			var f *fixture
			fired := make(chan time.Time)
			close(fired)
			after := func(d time.Duration) <-chan time.Time {
				mu.Lock()
				ends = append(ends, time.Now().Add(d))
				first := len(ends) == 1
				mu.Unlock()
				if first {
					for range tt.send {
						if code, _, _ := f.get(f.srv.APIAddr(), "/"); code != http.StatusNotFound {
							t.Errorf("a request during the delay: %d", code)
						}
					}
				}
				return fired
			}
			f = startAfter(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: delay, DrainQuiet: tt.quiet}, after)
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			f.srv.Shutdown()
			within(t, f.runErr, "Run")
			t0 := f.sig.ShutdownInitiated.At()
			mu.Lock()
			defer mu.Unlock()
			if len(ends) != len(tt.want) {
				t.Fatalf("%d waits, want %d (%v)", len(ends), len(tt.want), tt.want)
			}
			for i, end := range ends {
				// Never before the deadline; after it by no more than the
				// time between the server's reading of the clock and the
				// timer's (a second is far more than that ever is).
				if got := end.Sub(t0); got < tt.want[i] || got > tt.want[i]+time.Second {
					t.Errorf("wait %d ends %v after ShutdownInitiated, want %v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

// OnShutdown runs after ShutdownComplete, while the admin server still
// answers; one that does not return in time is abandoned, and Run returns
// cleanly, bounded by its timeout.
func TestOnShutdownRunsLastAndIsBounded(t *testing.T) {
	release := make(chan struct{}) // the hanging report ignores its context until the test ends
	tests := []struct {
		name    string
		run     func(ctx context.Context) error
		wantLog string
	}{
		{"returns", func(context.Context) error { return nil }, "final report sent"},
		{"fails", func(context.Context) error { return errors.New("pushgateway: 503") }, `final report failed" error="pushgateway: 503"`},
		{"hangs", func(context.Context) error { <-release; return nil }, "final report abandoned: it did not return within its timeout"},
		{"panics", func(context.Context) error { panic("pushgateway client bug") }, `final report failed" error="panic: pushgateway client bug"`},
		{"exits by Goexit", func(context.Context) error { runtime.Goexit(); return nil }, `final report failed" error="exited by runtime.Goexit without returning`},
	}
	var reports sync.WaitGroup
	defer func() { close(release); reports.Wait() }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logbuf.Buffer
			var sawComplete, adminUp atomic.Bool
			var srv atomic.Pointer[Server]
			f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnShutdownTimeout: 100 * time.Millisecond,
				OnShutdown: func(ctx context.Context, r ShutdownReport) error {
					reports.Add(1)
					defer reports.Done()
					s := srv.Load()
					sawComplete.Store(s.Signals().ShutdownComplete.Signalled() && r.Total > 0)
					conn, err := net.DialTimeout("tcp", s.AdminAddr().String(), time.Second)
					if err == nil {
						adminUp.Store(true)
						conn.Close()
					}
					return tt.run(ctx)
				}})
			srv.Store(f.srv)
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			f.srv.Shutdown()
			if err := within(t, f.runErr, "Run"); err != nil {
				t.Fatalf("Run = %v; a final report never makes the shutdown unclean", err)
			}
			if !sawComplete.Load() || !adminUp.Load() {
				t.Errorf("OnShutdown saw ShutdownComplete %v, the admin server up %v; want both", sawComplete.Load(), adminUp.Load())
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
		})
	}
}

// With the delay in a preStop sleep, the server still closes the keep-alive
// connections in use gracefully after SIGTERM: their responses carry
// "Connection: close" until they go quiet, within a second.
func TestPreStopModeClosesKeepAliveConnectionsFirst(t *testing.T) {
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1, PreStopDelay: 5 * time.Second})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer keepAlive.CloseIdleConnections()
	f.srv.Shutdown()
	within(t, f.sig.ReadinessFailing.Done(), "ReadinessFailing")
	resp, err := keepAlive.Get("http://" + f.srv.APIAddr().String() + "/")
	if err != nil {
		t.Fatalf("a request right after SIGTERM in preStop mode: %v", err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("a response after SIGTERM did not ask the client to close its connection")
	}
	within(t, f.runErr, "Run")
	last := f.srv.gate.lastArrivalTime()
	t0, t1 := f.sig.ShutdownInitiated.At(), f.sig.DrainStarted.At()
	if gap := t1.Sub(last); gap < preStopQuiet {
		t.Errorf("the drain started %v after the last request, before %v of quiet", gap, preStopQuiet)
	}
	if took := t1.Sub(t0); took > preStopCloseWindow+time.Second {
		t.Errorf("the drain started %v after SIGTERM; the close window is %v", took, preStopCloseWindow)
	}
}

// In preStop mode, with no request after SIGTERM, the server waits one
// quiet period (preStopQuiet) for the keep-alive connections, not the
// whole close window: the preStop sleep already kept the pod serving
// while the endpoints were updated.
func TestPreStopModeWaitsOneQuietPeriodWhenNothingArrives(t *testing.T) {
	var mu sync.Mutex
	var ends []time.Time
	fired := make(chan time.Time)
	close(fired)
	after := func(d time.Duration) <-chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		ends = append(ends, time.Now().Add(d))
		return fired
	}
	f := startAfter(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1, PreStopDelay: 5 * time.Second}, after)
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	mu.Lock()
	defer mu.Unlock()
	t0 := f.sig.ShutdownInitiated.At()
	// Never before the quiet period's end, and before the close window's
	// (what the wait would be without the quiet period).
	if len(ends) != 1 || ends[0].Sub(t0) < preStopQuiet || ends[0].Sub(t0) >= preStopCloseWindow {
		t.Fatalf("waits ending %v after ShutdownInitiated, want one, %v after it", durationsSince(t0, ends), preStopQuiet)
	}
}

// durationsSince is each of ends after t0.
func durationsSince(t0 time.Time, ends []time.Time) []time.Duration {
	out := make([]time.Duration, len(ends))
	for i, e := range ends {
		out[i] = e.Sub(t0)
	}
	return out
}

// The background tasks and the stop hooks share one stop timeout, counted
// from InFlightDrained: a hook stops with what the tasks left of it, not a
// fresh one (its deadline is the same instant, whatever the tasks took).
func TestTasksAndHooksShareTheStopTimeout(t *testing.T) {
	deadline := make(chan time.Time, 1)
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		s.Go("refresh", func(ctx context.Context) error { <-ctx.Done(); return nil })
		return func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			deadline <- d
			return nil
		}, nil
	}})
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, StopTimeout: 5 * time.Second})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	if got, want := within(t, deadline, "the stop hook"), f.sig.InFlightDrained.At().Add(5*time.Second); !got.Equal(want) {
		t.Fatalf("the stop hook's deadline is %v after InFlightDrained, want the stop timeout's 5s", got.Sub(f.sig.InFlightDrained.At()))
	}
}

// A handler that took over its connection (Hijack: a WebSocket upgrade) is
// out of http.Server.Shutdown's sight, which returns at once; the drain
// still waits for it, so the stop hooks never run under it, and one still
// running at the drain timeout is reported cut off, as any other request.
func TestDrainWaitsForHijackedConnections(t *testing.T) {
	for _, tt := range []struct {
		name      string
		returns   bool // the handler returns during the drain
		wantCut   int64
		wantOrder []string
	}{
		{"returns during the drain", true, 0, []string{"handler done", "stop db"}},
		{"outlives the drain timeout", false, 1, []string{"stop db", "handler done"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				_ = buf.Flush()
				close(entered)
				<-release
				j.add("handler done")
				close(done)
			})
			var report ShutdownReport
			drain := 10 * time.Second
			if !tt.returns {
				drain = 100 * time.Millisecond
			}
			f := start(t, Config{Apps: lifespan.Group{app(j, "db")}, API: api, DrainDelay: -1, DrainTimeout: drain, StopTimeout: time.Second,
				OnShutdown: func(_ context.Context, r ShutdownReport) error { report = r; return nil }})
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			c, err := net.Dial("tcp", f.srv.APIAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			within(t, entered, "the handler to take over its connection")
			f.srv.Shutdown()
			if tt.returns {
				within(t, f.sig.DrainStarted.Done(), "DrainStarted")
				if f.sig.InFlightDrained.Signalled() {
					t.Error("InFlightDrained while the hijacked handler still runs")
				}
				close(release)
			} else {
				within(t, f.sig.HooksStopped.Done(), "HooksStopped")
				close(release)
			}
			<-done
			err = within(t, f.runErr, "Run")
			if got := j.list(); !slices.Equal(got, tt.wantOrder) {
				t.Errorf("journal %q, want %q", got, tt.wantOrder)
			}
			if report.CutOff != tt.wantCut || (tt.wantCut > 0) != (err != nil) {
				t.Errorf("cut off %d, Run = %v; want %d cut off, and an error only then", report.CutOff, err, tt.wantCut)
			}
		})
	}
}

// QuitSidecars is bounded by QuitTimeout, as the budget counts it: a quit
// call that ignores its context is abandoned, and the shutdown goes on.
func TestQuitSidecarsIsBounded(t *testing.T) {
	release := make(chan struct{})
	returned := make(chan struct{})
	defer func() { close(release); <-returned }()
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1,
		QuitTimeout: 50 * time.Millisecond,
		QuitSidecars: func(context.Context) error {
			defer close(returned)
			<-release // a client that ignores its context
			return nil
		}})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	err := within(t, f.runErr, "Run")
	if err == nil || !strings.Contains(err.Error(), "quit sidecars: abandoned: it did not return within its timeout") {
		t.Errorf("Run = %v, want the quit call abandoned", err)
	}
}

// A quit or a push that gives up as its context ends (a client still
// retrying, a request cut off) returns its own error, not "abandoned": its
// context ends a sliver before the wait for it does, a tenth of the time
// left and at most 50ms. One that ignores its context is still abandoned,
// at the timeout the budget counts.
func TestBoundedKeepsAGiveUpsOwnError(t *testing.T) {
	giveUp := errors.New("nothing listened there")
	for _, tt := range []struct {
		name              string
		timeout           time.Duration
		ignores           bool
		sliverMin, sliver time.Duration // how much sooner f's context ends
	}{
		// A tenth of what is left when bounded reads it: at most 20ms.
		{"gives up as its context ends", 200 * time.Millisecond, false, time.Nanosecond, 20 * time.Millisecond},
		{"a longer timeout: the sliver's cap", time.Second, false, 50 * time.Millisecond, 50 * time.Millisecond},
		{"ignores its context", 200 * time.Millisecond, true, 15 * time.Millisecond, 20 * time.Millisecond},
	} {
		// In a bubble, on its fake clock: how long the scheduler takes to
		// run f's goroutine on a loaded machine is no part of the sliver.
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				defer close(release)
				ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
				defer cancel()
				wait, _ := ctx.Deadline()
				var own time.Time
				err := bounded(ctx, func(fctx context.Context) error {
					own, _ = fctx.Deadline()
					if tt.ignores {
						<-release
						return nil
					}
					<-fctx.Done()
					time.Sleep(5 * time.Millisecond) // the work of giving up: a log line, a close
					return giveUp
				})
				want := giveUp
				if tt.ignores {
					want = errAbandoned
				}
				if !errors.Is(err, want) {
					t.Fatalf("bounded = %v, want %v", err, want)
				}
				if tt.ignores {
					return // own was written by a goroutine still running
				}
				if sooner := wait.Sub(own); sooner < tt.sliverMin || sooner > tt.sliver {
					t.Fatalf("f's context ends %v before the wait, want %v to %v", sooner, tt.sliverMin, tt.sliver)
				}
			})
		})
	}
}

// InFlightDrained comes when the last request returns: http.Server.Shutdown
// alone looks for idle connections at intervals that grow to 500ms, and
// signalled it 250ms to 500ms after a request of 1.25s ended (the request's
// length puts its end between two of those looks, whatever the jitter).
func TestInFlightDrainedFollowsTheLastRequest(t *testing.T) {
	entered, finished := make(chan struct{}), make(chan time.Time, 1)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(1250 * time.Millisecond) // the request's work, not synchronisation
		finished <- time.Now()
	})
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: api, DrainDelay: -1})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	answered := make(chan error, 1)
	go func() {
		resp, err := f.client.Get("http://" + f.srv.APIAddr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	<-entered
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := within(t, answered, "the response"); err != nil {
		t.Fatalf("the request in flight failed: %v", err)
	}
	if lag := f.sig.InFlightDrained.At().Sub(<-finished); lag > 150*time.Millisecond {
		t.Errorf("InFlightDrained came %v after the last request returned; want it within 150ms", lag)
	}
}

// A panic in OnShutdown or QuitSidecars is their error, as a hook's panic
// is: it used to end the process (exit 2) before the sidecars were told to
// quit, leaving a Job's classic sidecar running. A runtime.Goexit (t.FailNow,
// in a test) is an error too: the quit did not finish, where Run used to
// read it as done and exit 0.
func TestPanicsInTheLastStepsAreErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		end     func()
		want    string
		wantErr func(error) bool
	}{
		{"panic", func() { panic("quit bug") }, "quit sidecars: panic: quit bug", func(err error) bool {
			var p *lifespan.PanicError
			return errors.As(err, &p)
		}},
		{"Goexit", runtime.Goexit, "quit sidecars: exited by runtime.Goexit without returning", func(err error) bool { return errors.Is(err, errGoexit) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var quitCalled atomic.Bool
			var logs logbuf.Buffer
			f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1,
				Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
				OnShutdown: func(context.Context, ShutdownReport) error { tt.end(); return nil },
				QuitSidecars: func(context.Context) error {
					quitCalled.Store(true)
					tt.end()
					return nil
				}})
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			f.srv.Shutdown()
			err := within(t, f.runErr, "Run")
			if !quitCalled.Load() || !tt.wantErr(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("quit called %v; Run = %v; want %q as Run's error", quitCalled.Load(), err, tt.want)
			}
			if ExitCode(err) != ExitUnclean {
				t.Errorf("exit %d, want %d", ExitCode(err), ExitUnclean)
			}
			if out := logs.String(); !strings.Contains(out, "sidecars quit failed") || !strings.Contains(out, "final report failed") {
				t.Errorf("the log does not say the quit and the report failed:\n%s", out)
			}
		})
	}
}

// A server that fails (its listener gone under it) starts the shutdown,
// and the run ends unclean, naming the server: it used to exit 0 after a
// clean drain, as though the process had been asked to stop.
func TestServerFailureEndsTheRunUnclean(t *testing.T) {
	var report ShutdownReport
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1,
		OnShutdown: func(_ context.Context, r ShutdownReport) error { report = r; return nil }})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	if err := f.srv.apiLn.Close(); err != nil {
		t.Fatal(err)
	}
	err := within(t, f.runErr, "Run")
	if ExitCode(err) != ExitUnclean || err == nil || !strings.Contains(err.Error(), "api server failed") {
		t.Fatalf("Run = %v (exit %d), want the API server's failure, exit %d", err, ExitCode(err), ExitUnclean)
	}
	if report.Reason != "api server failed" || !errors.Is(report.Err, net.ErrClosed) {
		t.Errorf("report: reason %q, err %v", report.Reason, report.Err)
	}
}

// A server that fails during startup abandons it, and Run's error (and the
// report OnShutdown gets) names the server: it used to be only the
// abandoned hook's "context canceled".
func TestServerFailureDuringStartupIsNamed(t *testing.T) {
	entered := make(chan struct{})
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "slow", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	reported := make(chan error, 1)
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1,
		OnShutdown: func(_ context.Context, r ShutdownReport) error { reported <- r.Err; return nil }})
	within(t, entered, "the hook's start")
	if err := f.srv.apiLn.Close(); err != nil {
		t.Fatal(err)
	}
	err := within(t, f.runErr, "Run")
	if ExitCode(err) != ExitStartup || !strings.Contains(err.Error(), "api server failed") || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run = %v (exit %d); want the API server's failure, exit %d", err, ExitCode(err), ExitStartup)
	}
	if rep := within(t, reported, "OnShutdown"); !errors.Is(rep, net.ErrClosed) {
		t.Errorf("report's Err = %v, want the API server's failure", rep)
	}
}

// The admin server's graceful close, the run's last step, waits for a
// scrape in flight no longer than half the margin the budget leaves for
// the exit (it waited a fixed second, past a margin of 100ms); then its
// connection is closed, so the scrape's handler, told by its context,
// does not outlive Run.
func TestAdminCloseFitsTheMargin(t *testing.T) {
	entered, release := make(chan context.Context, 1), make(chan struct{})
	defer close(release)
	scrape := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Context()
		select { // a scrape that outlasts the shutdown, unless cut off
		case <-release:
		case <-r.Context().Done():
		}
	})
	const margin = time.Second
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1,
		Metrics: scrape, Margin: margin, GracePeriod: time.Minute})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	go func() {
		client := &http.Client{Transport: &http.Transport{}} // no timeout of its own: only the server ends the scrape
		defer client.CloseIdleConnections()
		if resp, err := client.Get("http://" + f.srv.AdminAddr().String() + "/metrics"); err == nil {
			resp.Body.Close()
		}
	}()
	scrapeCtx := within(t, entered, "the scrape to begin")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	// Half the margin, and well under the whole of it, whatever the
	// machine's load.
	if took := time.Since(f.sig.ShutdownComplete.At()); took < margin/2 || took >= margin*9/10 {
		t.Errorf("Run returned %v after ShutdownComplete with a scrape in flight; want about %v, half the margin", took, margin/2)
	}
	within(t, scrapeCtx.Done(), "the scrape's context to end: its connection closed as Run returned")
}

// heldCheck is a registry with one background check whose first
// scheduled run (not the refresh at StartupComplete) stays in flight until
// its context ends, then sends whether released was set by then.
func heldCheck(released *atomic.Bool) (*probes.Registry, <-chan bool) {
	sawReleased := make(chan bool, 1)
	var runs atomic.Int32
	checks := probes.New()
	checks.Add(probes.Liveness, probes.Check{Name: "db-ping", Interval: time.Hour, Timeout: time.Minute, Run: func(ctx context.Context) error {
		if !probes.Refreshing(ctx) && runs.Add(1) == 1 {
			<-ctx.Done()
			sawReleased <- released.Load()
		}
		return nil
	}})
	return checks, sawReleased
}

// The background checks end before the stop hooks run: a check still in
// flight when the shutdown reaches the hooks has returned before the first
// StopFunc releases what it checks, and none starts after.
func TestBackgroundChecksEndBeforeTheHooksStop(t *testing.T) {
	var released atomic.Bool // the hook's resource, released by its stop
	checks, sawReleased := heldCheck(&released)
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { released.Store(true); return nil }, nil
	}})
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, Probes: checks})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatal(err)
	}
	if within(t, sawReleased, "the check's first run to end") {
		t.Error("the check was still running when the hook's stop released what it checks")
	}
}

// Report may be read as soon as ShutdownComplete is signalled, from any
// goroutine, while the run goes on to log and hand out the report: the
// stored report is never written again (run with -race: the run wrote its
// Total into the report others read).
func TestReportIsSafeToReadOnceComplete(t *testing.T) {
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			<-f.sig.ShutdownComplete.Done()
			for range 100 {
				if r, ok := f.srv.Report(); !ok || r.Reason == "" {
					t.Errorf("Report = %+v, %v once ShutdownComplete was signalled", r, ok)
					return
				}
			}
		})
	}
	f.srv.Shutdown()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatal(err)
	}
	readers.Wait()
}

// A background check that ignores its context holds the hooks for no
// more than a tenth of the stop timeout: its Timeout (a minute here) is
// not the shutdown's to wait out, and the log says a check is still
// running.
func TestAStuckBackgroundCheckDoesNotHoldTheHooks(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var runs atomic.Int32
	checks := probes.New()
	checks.Add(probes.Liveness, probes.Check{Name: "stuck", Interval: time.Hour, Timeout: time.Minute, Run: func(ctx context.Context) error {
		if !probes.Refreshing(ctx) && runs.Add(1) == 1 {
			<-release // ignores its context
		}
		return nil
	}})
	stopped := make(chan time.Time, 1)
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { stopped <- time.Now(); return nil }, nil
	}})
	var logs logbuf.Buffer
	const stopTimeout = 2 * time.Second
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, StopTimeout: stopTimeout,
		Probes: checks, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	at := within(t, stopped, "the hook's stop, with the check still stuck")
	within(t, f.runErr, "Run")
	// A tenth of the stop timeout is the wait; half of it is far past that.
	if waited := at.Sub(f.sig.TasksStopped.At()); waited >= stopTimeout/2 {
		t.Errorf("the hook's stop began %v after TasksStopped; the checks' wait is a tenth of the %v stop timeout", waited, stopTimeout)
	}
	if !strings.Contains(logs.String(), "background checks still running as the hooks stop") {
		t.Errorf("no warning of the check still running:\n%s", logs.String())
	}
}

// With the stop budget spent by a task that outlived it, the checks still
// get a moment to end, and nothing is blamed on a check when none was
// running.
func TestASpentStopBudgetBlamesNoCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	checks := probes.New()
	checks.Add(probes.Liveness, probes.Check{Name: "cache", Interval: time.Hour, Run: func(context.Context) error { return nil }})
	a := &lifespan.App{Name: "api"}
	a.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		s.Go("stuck", func(context.Context) error { <-release; return nil }) // ignores its context
		return nil, nil
	}})
	var logs logbuf.Buffer
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, StopTimeout: 200 * time.Millisecond,
		Probes: checks, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	if strings.Contains(logs.String(), "background checks still running") {
		t.Errorf("a check blamed with none running:\n%s", logs.String())
	}
}

// A shutdown during startup ends the background checks before the
// rollback stops the hooks that started, as a shutdown does.
func TestAbandonedStartupEndsTheChecksBeforeTheRollback(t *testing.T) {
	var released atomic.Bool
	checks, sawReleased := heldCheck(&released)
	starting := make(chan struct{})
	a := &lifespan.App{Name: "api"}
	a.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { released.Store(true); return nil }, nil
		}},
		lifespan.Hook{Name: "warm", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
			close(starting)
			<-ctx.Done() // until the startup is abandoned
			return nil, ctx.Err()
		}},
	)
	f := start(t, Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), DrainDelay: -1, Probes: checks})
	within(t, starting, "the second hook's start")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
	if within(t, sawReleased, "the check's first run to end") {
		t.Error("the check was still running when the rollback's stop released what it checks")
	}
}

// /readyz fails from T0 on, however slow the log: here the line
// ShutdownInitiated logs is still being written (a slow log sink) when
// ReadinessFailing comes and the kubelet probes. Readiness used to wait
// for that write, as every signal waited for the line before it.
func TestReadinessFailsAtT0WhileItsLogLineIsWritten(t *testing.T) {
	writing, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	defer free()
	var lines []string // in the order written
	var mu sync.Mutex
	logger := slog.New(logHook{on: func(r slog.Record) {
		if r.Message == "ShutdownInitiated" {
			once.Do(func() { close(writing) })
			<-release
		}
		mu.Lock()
		lines = append(lines, r.Message)
		mu.Unlock()
	}})
	f := start(t, Config{Apps: lifespan.Group{app(&journal{}, "db")}, API: http.NotFoundHandler(), DrainDelay: -1, Logger: logger})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	go f.srv.Shutdown()
	within(t, writing, "ShutdownInitiated's log line")
	within(t, f.sig.ReadinessFailing.Done(), "ReadinessFailing while ShutdownInitiated's line is written")
	if code, _, _ := f.get(f.srv.AdminAddr(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d after ReadinessFailing; want 503", code)
	}
	free()
	if err := within(t, f.runErr, "Run"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var marks []string
	for _, l := range lines {
		if strings.HasPrefix(l, "Shutdown") || strings.HasSuffix(l, "Failing") || strings.HasSuffix(l, "Started") || strings.HasSuffix(l, "Drained") || strings.HasSuffix(l, "Stopped") {
			marks = append(marks, l)
		}
	}
	if want := []string{"ShutdownInitiated", "ReadinessFailing", "DrainStarted", "InFlightDrained", "TasksStopped", "HooksStopped", "ShutdownComplete"}; !slices.Equal(marks, want) {
		t.Errorf("signals logged in the order %q; want %q", marks, want)
	}
}
