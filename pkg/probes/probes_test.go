package probes

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pass(context.Context) error { return nil }

func fail(msg string) CheckFunc {
	return func(context.Context) error { return errors.New(msg) }
}

func serve(h http.Handler, method, target string, hdr ...string) (int, string, http.Header) {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestHandler(t *testing.T) {
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: pass})
	r.Add(Readiness, Check{Name: "db", Run: fail("dial tcp 10.0.0.1:5432: refused")})
	r.Add(Readiness|Startup, Check{Name: "hook/api/warm", Run: pass})
	public := r.Handler(HandlerOptions{})
	admin := r.Handler(HandlerOptions{ShowReasons: true})

	tests := []struct {
		name     string
		h        http.Handler
		method   string
		target   string
		hdr      []string
		wantCode int
		wantBody string
		notBody  string
	}{
		{"livez ok", public, "GET", "/livez", nil, 200, "ok\n", ""},
		{"livez verbose", public, "GET", "/livez?verbose", nil, 200, "[+]ping ok\nlivez check passed\n", ""},
		{"readyz failing lists checks, withholds reason", public, "GET", "/readyz", nil, 503,
			"[-]db failed: reason withheld\n[+]hook/api/warm ok\nreadyz check failed\n", "refused"},
		{"admin shows reason", admin, "GET", "/readyz?verbose", nil, 503, "[-]db failed: dial tcp 10.0.0.1:5432: refused\n", ""},
		{"exclude the failing check", public, "GET", "/readyz?exclude=db", nil, 200, "ok\n", ""},
		{"exclude repeatable, unknown warned", public, "GET", "/readyz?verbose&exclude=db&exclude=nope&exclude=hook/api/warm", nil, 200,
			"warn: some checks cannot be excluded: no matches for nope\nreadyz check passed\n", ""},
		{"exclude named twice, unknown named twice: each once", public, "GET", "/readyz?verbose&exclude=db&exclude=db&exclude=zz&exclude=nope&exclude=zz", nil, 200,
			"[+]hook/api/warm ok\nwarn: some checks cannot be excluded: no matches for nope, zz\nreadyz check passed\n", ""},
		{"more excludes than the small buffer", public, "GET", "/readyz?verbose&exclude=a&exclude=b&exclude=c&exclude=d&exclude=e&exclude=f&exclude=g&exclude=h&exclude=db", nil, 200,
			"warn: some checks cannot be excluded: no matches for a, b, c, d, e, f, g, h\nreadyz check passed\n", ""},
		{"sub-path of a passing check", public, "GET", "/readyz/hook/api/warm", nil, 200, "ok\n", ""},
		{"sub-path beside an exclude of another check: no warning", public, "GET", "/readyz/hook/api/warm?verbose&exclude=db", nil, 200,
			"[+]hook/api/warm ok\n", "cannot be excluded"},
		{"sub-path of a failing check", public, "GET", "/readyz/db", nil, 503, "[-]db failed", ""},
		{"sub-path of another probe's check", public, "GET", "/livez/db", nil, 404, `livez has no check "db"`, ""},
		{"startupz", public, "GET", "/startupz", nil, 200, "ok\n", ""},
		{"HEAD", public, "HEAD", "/livez", nil, 200, "", ""},
		{"POST refused", public, "POST", "/livez", nil, 405, "use GET or HEAD", ""},
		{"unknown probe", public, "GET", "/healthz", nil, 404, "not found", ""},
		{"json by query", public, "GET", "/readyz?format=json", nil, 503,
			`{"probe":"readyz","status":"failed","checks":[{"name":"db","ok":false,"reason":"reason withheld"},{"name":"hook/api/warm","ok":true}]}`, "refused"},
		{"json by Accept", admin, "GET", "/livez", []string{"Accept", "application/json"}, 200,
			`{"probe":"livez","status":"ok","checks":[{"name":"ping","ok":true}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := serve(tt.h, tt.method, tt.target, tt.hdr...)
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			if tt.notBody != "" && strings.Contains(body, tt.notBody) {
				t.Errorf("body %q leaks %q", body, tt.notBody)
			}
			if code < 400 && hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
		})
	}
}

func TestJSONIsValid(t *testing.T) {
	r := New()
	r.Add(Readiness, Check{Name: "db", Run: fail("x")})
	_, body, hdr := serve(r.Handler(HandlerOptions{ShowReasons: true}), "GET", "/readyz?format=json")
	var rep jsonReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("json %q: %v", body, err)
	}
	if rep.Status != "failed" || len(rep.Checks) != 1 || rep.Checks[0].Reason != "x" {
		t.Fatalf("report = %+v", rep)
	}
}

func TestThresholdsStopFlapping(t *testing.T) {
	var outcomes []error
	var i int
	r := New()
	r.Add(Readiness, Check{Name: "dep", FailureThreshold: 3, SuccessThreshold: 2, Run: func(context.Context) error {
		err := outcomes[i]
		i++
		return err
	}})
	e := errors.New("down")
	outcomes = []error{nil, e, e, nil, e, e, e, nil, nil}
	want := []bool{true, true, true, true, true, true, false, false, true}
	for step, w := range want {
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		if rep.Passing != w {
			t.Fatalf("step %d (outcome %v): passing = %v, want %v", step, outcomes[step], rep.Passing, w)
		}
	}
	res := r.Results()[0]
	if res.ConsecutiveSuccesses != 2 || res.ConsecutiveFailures != 0 || res.Err != nil {
		t.Fatalf("result = %+v", res)
	}
}

func TestFirstResultCountsAtOnce(t *testing.T) {
	r := New()
	r.Add(Readiness, Check{Name: "dep", FailureThreshold: 5, Run: fail("down")})
	if rep, _ := r.Evaluate(t.Context(), Readiness, "", nil); rep.Passing {
		t.Fatal("a check failing from the start reported passing")
	}
}

func TestInlineCheckTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		r := New()
		r.Add(Readiness, Check{Name: "deaf", Timeout: 2 * time.Second, Run: func(context.Context) error {
			<-release // ignores its context
			return nil
		}})
		begin := time.Now()
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		if took := time.Since(begin); took != 2*time.Second {
			t.Errorf("probe took %v, want the 2s timeout", took)
		}
		if rep.Passing || !errors.Is(rep.Checks[0].Err, context.DeadlineExceeded) {
			t.Errorf("report = %+v", rep)
		}
		close(release)
	})
}

func TestBackgroundCheckNeverBlocksProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		r := New()
		r.Add(Readiness, Check{Name: "slow-db", Interval: 10 * time.Second, Timeout: 30 * time.Second, Run: func(ctx context.Context) error {
			runs.Add(1)
			select {
			case <-time.After(5 * time.Second): // a slow dependency
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
		r.Start(t.Context())
		defer r.Stop()

		probe := func() (bool, time.Duration) {
			begin := time.Now()
			rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
			return rep.Passing, time.Since(begin)
		}
		synctest.Wait()
		if ok, took := probe(); ok || took != 0 {
			t.Fatalf("before first result: passing=%v took=%v; want failing at once", ok, took)
		}
		if res := r.Results()[0]; !errors.Is(res.Err, ErrNotRun) {
			t.Fatalf("reason before first run = %v", res.Err)
		}
		time.Sleep(6 * time.Second)
		if ok, took := probe(); !ok || took != 0 {
			t.Fatalf("after first result: passing=%v took=%v; want passing at once", ok, took)
		}
		time.Sleep(20 * time.Second)
		for range 50 {
			probe()
		}
		if got := runs.Load(); got != 3 {
			t.Fatalf("check ran %d times in 26s at a 10s interval (probes must not run it), want 3", got)
		}
	})
}

func TestAddPanicsOnMistakes(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		c    Check
	}{
		{"no name", Readiness, Check{Run: pass}},
		{"space", Readiness, Check{Name: "a b", Run: pass}},
		{"no run", Readiness, Check{Name: "a"}},
		{"no kind", 0, Check{Name: "a", Run: pass}},
		{"negative", Readiness, Check{Name: "a", Run: pass, Timeout: -1}},
		{"duplicate", Readiness, Check{Name: "dup", Run: pass}},
		{"instant in the background", Readiness, Check{Name: "a", Run: pass, Instant: true, Interval: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			r.Add(Liveness, Check{Name: "dup", Run: pass})
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			r.Add(tt.kind, tt.c)
		})
	}
}

func TestKindString(t *testing.T) {
	if got := (Readiness | Startup).String(); got != "readyz|startupz" {
		t.Fatal(got)
	}
}

func TestHandlerOverHTTP(t *testing.T) {
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: pass})
	srv := httptest.NewServer(r.Handler(HandlerOptions{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// An instant check runs in the probe's goroutine, without a deadline of its
// own; an ordinary inline check gets its timeout. A panic is a failure
// either way.
func TestInstantChecks(t *testing.T) {
	r := New()
	var instantDeadline, inlineDeadline bool
	r.Add(Readiness, Check{Name: "flag", Instant: true, Run: func(ctx context.Context) error {
		_, instantDeadline = ctx.Deadline()
		return nil
	}})
	r.Add(Readiness, Check{Name: "dial", Run: func(ctx context.Context) error {
		_, inlineDeadline = ctx.Deadline()
		return nil
	}})
	r.Add(Liveness, Check{Name: "bad", Instant: true, Run: func(context.Context) error { panic("nil map") }})
	rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
	if !rep.Passing || instantDeadline || !inlineDeadline {
		t.Fatalf("passing %v; instant check had a deadline %v, inline check %v", rep.Passing, instantDeadline, inlineDeadline)
	}
	rep, _ = r.Evaluate(t.Context(), Liveness, "", nil)
	if rep.Passing || rep.Checks[0].Err == nil || !strings.Contains(rep.Checks[0].Err.Error(), "check panicked: nil map") {
		t.Fatalf("a panicking instant check: %+v", rep.Checks)
	}
}

// A probe runs its instant checks back to back, timing each from the end
// of the one before: each one's start and duration are still its own,
// whatever runs beside it (here an inline check that ends last). synctest's
// clock stands still except while a check sleeps, so the figures are
// exact. (That each takes one clock read, not three, is a cost, which
// BenchmarkReadyzHandler in cmd/server measures.)
func TestInstantChecksAreTimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := New()
		sleeps := func(d time.Duration) CheckFunc {
			return func(context.Context) error { time.Sleep(d); return nil }
		}
		r.Add(Readiness, Check{Name: "a", Instant: true, Run: sleeps(5 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "inline", Run: sleeps(30 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "b", Instant: true, Run: sleeps(7 * time.Millisecond)})
		r.Add(Readiness, Check{Name: "c", Instant: true, Run: pass})
		begin := time.Now()
		rep, _ := r.Evaluate(t.Context(), Readiness, "", nil)
		want := map[string]struct{ start, took time.Duration }{
			"a": {0, 5 * time.Millisecond}, "inline": {0, 30 * time.Millisecond},
			"b": {5 * time.Millisecond, 7 * time.Millisecond}, "c": {12 * time.Millisecond, 0},
		}
		for _, res := range rep.Checks {
			w := want[res.Name]
			if got := res.LastRun.Sub(begin); got != w.start || res.Duration != w.took {
				t.Errorf("%s: started %v, took %v; want %v and %v", res.Name, got, res.Duration, w.start, w.took)
			}
		}
		if time.Since(begin) != 30*time.Millisecond {
			t.Errorf("the probe took %v; want the inline check's 30ms, the instants (12ms) running beside it", time.Since(begin))
		}
		for _, res := range r.Results() { // the registry keeps what the probe saw
			if w := want[res.Name]; res.Duration != w.took {
				t.Errorf("%s: recorded %v, want %v", res.Name, res.Duration, w.took)
			}
		}
	})
}

// Refresh brings a background check's result up to date at once and
// leaves its schedule alone.
func TestRefreshRunsBackgroundChecksNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var open atomic.Bool
		var runs atomic.Int32
		r := New()
		r.Add(Readiness, Check{Name: "db", Interval: time.Hour, Run: func(context.Context) error {
			runs.Add(1)
			if !open.Load() {
				return errors.New("not open yet")
			}
			return nil
		}})
		r.Add(Readiness, Check{Name: "inline", Run: func(context.Context) error { runs.Add(100); return nil }})
		r.Start(t.Context())
		defer r.Stop()
		synctest.Wait()
		if rep, _ := r.Evaluate(t.Context(), Readiness, "db", nil); rep.Passing {
			t.Fatal("db passing before it opened")
		}
		open.Store(true)
		r.Refresh(t.Context())
		if rep, _ := r.Evaluate(t.Context(), Readiness, "db", nil); !rep.Passing {
			t.Fatalf("db after Refresh: %+v", rep.Checks)
		}
		if got := runs.Load(); got != 2 {
			t.Fatalf("runs = %d; want the first run and the refresh, and no inline check", got)
		}
		r.Refresh(t.Context(), "other")
		if got := runs.Load(); got != 2 {
			t.Fatalf("a refresh of another check ran db (runs = %d)", got)
		}
		r.Refresh(t.Context(), "db")
		if got := runs.Load(); got != 3 {
			t.Fatalf("a refresh of db by name: runs = %d, want 3", got)
		}
	})
}

// A scheduled run that started before a Refresh and ends after it does not
// overwrite the refreshed, newer result.
func TestRefreshIsNotUndoneByAnOlderRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int32
		r := New()
		r.Add(Readiness, Check{Name: "db", Interval: time.Hour, Timeout: time.Minute, Run: func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				<-release // the first scheduled run, begun before the database opened
				return errors.New("not open yet")
			}
			return nil
		}})
		r.Start(t.Context())
		defer r.Stop()
		synctest.Wait()              // the first run is in flight
		time.Sleep(time.Millisecond) // fake time: the refresh begins strictly later
		r.Refresh(t.Context())
		close(release)
		synctest.Wait()
		if rep, _ := r.Evaluate(t.Context(), Readiness, "db", nil); !rep.Passing || calls.Load() != 2 {
			t.Fatalf("after the stale run ended: %+v (%d calls); want the refresh's passing result", rep.Checks, calls.Load())
		}
	})
}
