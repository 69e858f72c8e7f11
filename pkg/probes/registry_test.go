package probes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// CheckName takes what a sub-path can reach and names what it refuses.
func TestCheckName(t *testing.T) {
	for _, tt := range []struct{ name, err string }{
		{"db", ""},
		{"hook/api/cache", ""},
		{"a.b", ""},
		{"..a/b..", ""},
		{"", "check without a name"},
		{"a b", `check "a b": name must not contain whitespace or any of ?#%+&;= (its sub-path /readyz/NAME and ?exclude=NAME must read as written); want e.g. db or hook/api/cache`},
		{"a\rb", "must not contain whitespace"},
		{"a\vb", "must not contain whitespace"},
		{"a\u00a0b", "must not contain whitespace"},
		{"a\u2028b", "must not contain whitespace"},
		{"a?b", "must not contain whitespace or any of"},
		{"a#b", "must not contain whitespace or any of"},
		// /readyz/a%2Fb is the check "a/b", and /readyz/50% a 400 from
		// net/http before any handler runs.
		{"a%2Fb", "must not contain whitespace or any of"},
		{"50%", "must not contain whitespace or any of"},
		// ?exclude= reads '+' as a space, and splits at '&', ';' and '='.
		{"cache+warm", "must not contain whitespace or any of"},
		{"a&b", "must not contain whitespace or any of"},
		{"a;b", "must not contain whitespace or any of"},
		{"a=b", "must not contain whitespace or any of"},
		{"sidecar/127.0.0.1:15021", ""},
		{"hook/api/cache-warm_2~x", ""},
		{"hook//db", `check "hook//db": every part between '/'s must be a name, not empty, '.' or '..' (its sub-path /readyz/hook//db would reach another name); want e.g. db or hook/api/cache`},
		{"/db", "every part between '/'s must be a name"},
		{"db/", "every part between '/'s must be a name"},
		{"a/./b", "every part between '/'s must be a name"},
		{"..", "every part between '/'s must be a name"},
		// A label that is not UTF-8 would fail every scrape of the metrics.
		{"sidecar/istio\xff:15021", `check "sidecar/istio\xff:15021": name is not valid UTF-8`},
		{"caf\u00e9", ""},
	} {
		err := CheckName(tt.name)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckName(%q) = %v, want %q", tt.name, err, tt.err)
		}
	}
}

// A background check added after Start would never run (its loop starts
// with Start): Add refuses it, naming it; an inline one is still welcome.
func TestAddAfterStart(t *testing.T) {
	r := New()
	r.Start(t.Context())
	defer r.Stop()
	r.Add(Readiness, Check{Name: "inline", Run: pass})
	defer func() {
		if msg := fmt.Sprint(recover()); msg != `probes: background check "late" added after Start` {
			t.Fatalf("Add of a background check after Start: panic %q", msg)
		}
	}()
	r.Add(Readiness, Check{Name: "late", Interval: time.Second, Run: pass})
}

// Results lists every check, of every probe, sorted by name, whatever
// the order they were added in.
func TestResultsAreSortedByName(t *testing.T) {
	r := New()
	for _, name := range []string{"sidecar/envoy:15021", "db", "hook/api/warm", "cache"} {
		r.Add(Readiness, Check{Name: name, Run: pass})
	}
	r.Add(Liveness, Check{Name: "ping", Run: pass})
	var got []string
	for _, res := range r.Results() {
		got = append(got, res.Name)
	}
	if want := []string{"cache", "db", "hook/api/warm", "ping", "sidecar/envoy:15021"}; !slices.Equal(got, want) {
		t.Errorf("Results = %q, want %q", got, want)
	}
	// As a 404 for an unknown check lists them, a probe's alone.
	rec := httptest.NewRecorder()
	r.Handler(HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz/nope", nil))
	if want := `readyz has no check "nope"; its checks: cache, db, hook/api/warm, sidecar/envoy:15021`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("404 %q, want %q", rec.Body.String(), want)
	}
	rec = httptest.NewRecorder()
	r.Handler(HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/startupz/nope", nil))
	if want := `startupz has no check "nope"; it has none`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("404 %q, want %q", rec.Body.String(), want)
	}
}

// Once Stop has returned, no background run starts again: a Start after
// it (a registry stopped before it was started, as a failed wiring does)
// runs nothing, and so does a second Start; a background check added then
// is refused, as it would never run.
func TestStartAfterStopRunsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		r := New()
		r.Add(Readiness, Check{Name: "bg", Interval: time.Second, Run: func(context.Context) error { runs.Add(1); return nil }})
		r.Stop()
		r.Start(t.Context())
		time.Sleep(3500 * time.Millisecond) // three intervals and a half of synctest's clock
		synctest.Wait()
		r.Stop()
		if n := runs.Load(); n != 0 {
			t.Errorf("Start after Stop ran the background check %d times", n)
		}
		defer func() {
			if msg := fmt.Sprint(recover()); msg != `probes: background check "late" added after Stop: it would never run` {
				t.Errorf("Add of a background check after Stop: panic %q", msg)
			}
		}()
		r.Add(Readiness, Check{Name: "late", Interval: time.Second, Run: pass})
	})
}

// A second Start does not start the background checks again: each runs
// once at Start and then once an Interval.
func TestSecondStartIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		r := New()
		r.Add(Readiness, Check{Name: "bg", Interval: time.Second, Run: func(context.Context) error { runs.Add(1); return nil }})
		r.Start(t.Context())
		r.Start(t.Context())
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		r.Stop()
		if n := runs.Load(); n != 3 { // at 0s, 1s and 2s
			t.Errorf("the background check ran %d times in 2.5s after two Starts, want 3", n)
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
		{"tab", Readiness, Check{Name: "a\tb", Run: pass}},
		{"query", Readiness, Check{Name: "a?b", Run: pass}},
		{"fragment", Readiness, Check{Name: "a#b", Run: pass}},
		{"empty segment", Readiness, Check{Name: "hook//db", Run: pass}},
		{"leading slash", Readiness, Check{Name: "/db", Run: pass}},
		{"trailing slash", Readiness, Check{Name: "db/", Run: pass}},
		{"dot segment", Readiness, Check{Name: "a/./b", Run: pass}},
		{"dot-dot segment", Readiness, Check{Name: "a/../b", Run: pass}},
		{"no run", Readiness, Check{Name: "a"}},
		{"no kind", 0, Check{Name: "a", Run: pass}},
		{"negative timeout", Readiness, Check{Name: "a", Run: pass, Timeout: -1}},
		{"negative interval", Readiness, Check{Name: "a", Run: pass, Interval: -time.Second}},
		{"negative failure threshold", Readiness, Check{Name: "a", Run: pass, FailureThreshold: -1}},
		{"negative success threshold", Readiness, Check{Name: "a", Run: pass, SuccessThreshold: -2}},
		{"duplicate", Readiness, Check{Name: "dup", Run: pass}},
		{"instant in the background", Readiness, Check{Name: "a", Run: pass, Instant: true, Interval: time.Second}},
		// An instant check runs unbounded: a Timeout would be ignored.
		{"instant with a timeout", Readiness, Check{Name: "a", Run: pass, Instant: true, Timeout: 50 * time.Millisecond}},
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
		r.Add(Readiness, Check{Name: "other", Interval: time.Hour, Run: func(context.Context) error { return nil }})
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
		r.Refresh(t.Context(), "db", "db")
		if got := runs.Load(); got != 4 {
			t.Fatalf("a refresh naming db twice: runs = %d, want 4 (db run once)", got)
		}
	})
}

// Refresh with a name that is no background check's panics, naming it and
// those there are: a refresh that ran nothing would leave the probes
// reading the old result.
func TestRefreshRefusesANameThatIsNoBackgroundChecks(t *testing.T) {
	r := New()
	r.Add(Readiness, Check{Name: "db", Interval: time.Hour, Run: func(context.Context) error { return nil }})
	r.Add(Readiness, Check{Name: "inline", Run: func(context.Context) error { return nil }})
	for _, tt := range []struct{ name, want string }{
		{"dbb", `probes: Refresh("dbb"): no check has that name; the background checks (those with an Interval) are ["db"]`},
		{"inline", `probes: Refresh("inline"): that check has no Interval, so it runs whenever a probe asks for it: there is no result to refresh; the background checks are ["db"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Errorf("Refresh(%q) panicked with %v, want %q", tt.name, got, tt.want)
				}
			}()
			r.Refresh(t.Context(), "db", tt.name)
		})
	}
}

// A scheduled run that started before a Refresh and ends after it does not
// overwrite the refreshed, newer result.
func TestRefreshIsNotUndoneByAnOlderRun(t *testing.T) {
	// Under synctest the clock stands still until every goroutine waits:
	// without the pause, the refresh starts on the very clock reading the
	// scheduled run did, and must still count as the later one.
	for _, pause := range []time.Duration{time.Millisecond, 0} {
		t.Run(fmt.Sprintf("refresh %v after the run", pause), func(t *testing.T) {
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
				synctest.Wait() // the first run is in flight
				time.Sleep(pause)
				r.Refresh(t.Context())
				close(release)
				synctest.Wait()
				if rep, _ := r.Evaluate(t.Context(), Readiness, "db", nil); !rep.Passing || calls.Load() != 2 {
					t.Fatalf("after the stale run ended: %+v (%d calls); want the refresh's passing result", rep.Checks, calls.Load())
				}
				// The stale run changes no verdict, but it ran and failed: the
				// counts (berth_check_failures_total) keep it.
				if res := r.Results()[0]; res.Runs != 2 || res.Failures != 1 {
					t.Errorf("Runs %d, Failures %d; want 2 runs, 1 failed", res.Runs, res.Failures)
				}
			})
		})
	}
}

// Refreshing is true in the context of a check Refresh runs, and only
// there: not in a scheduled run, nor in a probe's.
func TestRefreshingMarksOnlyARefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []bool
		r := New()
		r.Add(Readiness, Check{Name: "bg", Interval: time.Hour, Run: func(ctx context.Context) error {
			mu.Lock()
			seen = append(seen, Refreshing(ctx))
			mu.Unlock()
			return nil
		}})
		r.Add(Readiness, Check{Name: "inline", Run: func(ctx context.Context) error {
			if Refreshing(ctx) {
				t.Error("a probe's inline check sees Refreshing")
			}
			return nil
		}})
		r.Start(t.Context())
		defer r.Stop()
		synctest.Wait() // the scheduled run
		r.Refresh(t.Context())
		r.Evaluate(t.Context(), Readiness, "", nil)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(seen, []bool{false, true}) {
			t.Fatalf("Refreshing in the scheduled run, then in the refresh: %v, want [false true]", seen)
		}
	})
}

// A negative setting is refused naming the field, its value and what is
// valid.
func TestNegativeSettingsAreNamed(t *testing.T) {
	for _, tt := range []struct {
		c    Check
		want string
	}{
		{Check{Timeout: -time.Second}, `check "a": Timeout is -1s; want 0 (DefaultTimeout) or more`},
		{Check{Interval: -time.Second}, `check "a": Interval is -1s; want 0 (run in the probe) or more`},
		{Check{FailureThreshold: -1}, `check "a": FailureThreshold is -1; want 0 (1) or more`},
		{Check{SuccessThreshold: -2}, `check "a": SuccessThreshold is -2; want 0 (1) or more`},
	} {
		tt.c.Name, tt.c.Run = "a", pass
		func() {
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, tt.want) {
					t.Errorf("Add(%+v) panicked with %q, want %q", tt.c, msg, tt.want)
				}
			}()
			New().Add(Readiness, tt.c)
		}()
	}
}

// Stop waits for the CheckFuncs of the background runs in flight: one that
// honours its context has returned when Stop does (so what it uses can be
// released after Stop), and one that ignores it is waited for until its
// run's deadline and no longer: not at all once that has passed, whatever
// the Timeout of the registry's other checks.
func TestStopWaitsForTheChecksInFlight(t *testing.T) {
	for _, tt := range []struct {
		name        string
		honoursCtx  bool
		stopAfter   time.Duration // from Start, with the check's first run still held
		wantWaitFor time.Duration // how long Stop then waits
	}{
		{"honours its context", true, 0, 0},
		{"ignores its context", false, 0, 30 * time.Second},
		{"ignores its context, past its deadline", false, time.Minute, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var releaseOnce sync.Once
				free := func() { releaseOnce.Do(func() { close(release) }) }
				defer free() // on failure too: a held check would deadlock the bubble
				var returned atomic.Bool
				r := New()
				r.Add(Readiness, Check{Name: "db", Interval: time.Hour, Timeout: 30 * time.Second, Run: func(ctx context.Context) error {
					if tt.honoursCtx {
						<-ctx.Done()
					}
					<-release // what the check does on its way out: held by the test
					returned.Store(true)
					return ctx.Err()
				}})
				// A check with a longer Timeout, which returns at once.
				r.Add(Readiness, Check{Name: "cache", Interval: time.Hour, Timeout: 5 * time.Minute, Run: func(context.Context) error { return nil }})
				r.Start(t.Context())
				synctest.Wait() // the first runs are in flight
				time.Sleep(tt.stopAfter)
				begin := time.Now()
				var stopped atomic.Bool
				var took time.Duration
				go func() {
					r.Stop()
					took = time.Since(begin)
					stopped.Store(true)
				}()
				switch {
				case tt.honoursCtx:
					synctest.Wait() // Stop and the check, each blocked
					if stopped.Load() {
						t.Fatal("Stop returned while a check that saw its context end had not yet returned")
					}
					free()
					synctest.Wait()
					if !stopped.Load() || !returned.Load() {
						t.Fatalf("after the check returned: Stop returned %v, check returned %v; want both", stopped.Load(), returned.Load())
					}
				case tt.wantWaitFor > 0:
					time.Sleep(tt.wantWaitFor - time.Millisecond) // fake time
					synctest.Wait()
					if stopped.Load() {
						t.Fatalf("Stop returned after %v, before the check's run reached its deadline", took)
					}
					time.Sleep(time.Millisecond) // the run's deadline passes
					synctest.Wait()
					if !stopped.Load() {
						t.Fatal("Stop still waits past the deadline of a check that ignores its context")
					}
				default:
					synctest.Wait()
					if !stopped.Load() {
						t.Fatal("Stop waits on a check whose run passed its deadline before Stop was called")
					}
				}
				if took != tt.wantWaitFor {
					t.Errorf("Stop took %v, want %v", took, tt.wantWaitFor)
				}
			})
		})
	}
}

// Stop waits, too, for what a Refresh called that its context cut short:
// serve's refresh at the end of startup is cancelled by a shutdown, whose
// hooks then release what the check uses.
func TestStopWaitsForARefreshsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var releaseOnce sync.Once
		free := func() { releaseOnce.Do(func() { close(release) }) }
		defer free()
		r := New()
		r.Add(Readiness, Check{Name: "db", Interval: time.Hour, Timeout: time.Minute, Run: func(ctx context.Context) error {
			if Refreshing(ctx) {
				<-ctx.Done()
				<-release // its way out, held by the test
			}
			return nil
		}})
		r.Start(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		refreshed := make(chan struct{})
		go func() { r.Refresh(ctx); close(refreshed) }()
		synctest.Wait()
		cancel() // the shutdown cuts the refresh short
		<-refreshed
		var stopped atomic.Bool
		go func() { r.Stop(); stopped.Store(true) }()
		synctest.Wait()
		if stopped.Load() {
			t.Fatal("Stop returned while the check a Refresh called was still running")
		}
		free()
		synctest.Wait()
		if !stopped.Load() {
			t.Fatal("Stop still waits after the refresh's check returned")
		}
	})
}

// A probe that selects no check (none registered for its kind, or every
// one excluded) passes and lists none: Checks is empty, not nil, so a
// caller that marshals the report reads [], as before the handler's
// probes took their results from a pool.
func TestEvaluateOfNoCheckListsNone(t *testing.T) {
	r := New()
	r.Add(Readiness, Check{Name: "db", Run: pass, Instant: true})
	for _, tt := range []struct {
		name    string
		kind    Kind
		exclude []string
	}{
		{"no check of the kind", Liveness, nil},
		{"every check excluded", Readiness, []string{"db"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, ok := r.Evaluate(t.Context(), tt.kind, "", tt.exclude)
			raw, err := json.Marshal(rep.Checks)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || !rep.Passing || string(raw) != "[]" {
				t.Fatalf("Evaluate = %+v, %v; Checks marshal as %s, want a passing report listing []", rep, ok, raw)
			}
		})
	}
}
