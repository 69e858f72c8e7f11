package heptio

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/heptiolabs/healthcheck"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		check := Check(func() error {
			calls.Add(1)
			<-release // a hung dependency: heptio checks cannot be cancelled
			return errors.New("finally failed")
		})
		for range 5 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			if err := check(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("hung check = %v, want deadline", err)
			}
			cancel()
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d calls in flight for 5 probes, want 1", got)
		}
		close(release)
		synctest.Wait()
		// The hung call's result is gone; the next probe starts a fresh call.
		release = make(chan struct{})
		close(release)
		if err := check(t.Context()); err == nil || err.Error() != "finally failed" {
			t.Fatalf("second call = %v", err)
		}
		if got := calls.Load(); got != 2 {
			t.Fatalf("calls = %d, want 2", got)
		}
	})
}

// Probes that overlap share one call: a healthy check that takes more than
// half its timeout still passes for both, and is called once.
func TestOverlappingProbesShareACall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		check := Check(func() error {
			calls.Add(1)
			time.Sleep(600 * time.Millisecond) // healthy, but slow
			return nil
		})
		probe := func() <-chan error {
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				done <- check(ctx)
			}()
			return done
		}
		first := probe()
		time.Sleep(10 * time.Millisecond)
		second := probe() // the kubelet's and a load balancer's, say
		if err := <-first; err != nil {
			t.Errorf("first probe = %v", err)
		}
		if err := <-second; err != nil {
			t.Errorf("second probe = %v; want it to share the first's call, which ends well within its timeout", err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("%d calls for two overlapping probes, want 1", got)
		}
	})
}

// A probe that has given up starts no call that nobody would wait for.
func TestCheckGivenUpStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		check := Check(func() error { calls.Add(1); return nil })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := check(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("check with a done context = %v", err)
		}
		synctest.Wait() // a call started would have run by now
		if calls.Load() != 0 {
			t.Fatalf("%d calls started for a probe that had given up", calls.Load())
		}
	})
}

// Through the registry: Refresh, called after a change while a scheduled
// call begun before it is still running, records a result from after the
// change, as Refresh promises.
func TestRefreshIsNotAnsweredByAnOlderCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var open atomic.Bool
		reg := probes.New()
		reg.Add(probes.Readiness, probes.Check{Name: "db", Interval: time.Hour, Timeout: time.Minute, Run: Check(func() error {
			if !open.Load() {
				<-release // a ping begun before the database opened, slow to fail
				return errors.New("not open yet")
			}
			return nil
		})})
		reg.Start(t.Context())
		defer reg.Stop()
		synctest.Wait() // the scheduled call is in flight
		open.Store(true)
		refreshed := make(chan struct{})
		go func() { reg.Refresh(t.Context()); close(refreshed) }()
		synctest.Wait()
		close(release)
		<-refreshed
		rep, _ := reg.Evaluate(t.Context(), probes.Readiness, "db", nil)
		if !rep.Passing {
			t.Fatalf("after Refresh: %v; want the result of a call begun after the change", rep.Checks[0].Err)
		}
	})
}

func TestCheckPanics(t *testing.T) {
	err := Check(func() error { panic("bad") })(t.Context())
	if err == nil || err.Error() != "check panicked: bad" {
		t.Fatalf("err = %v", err)
	}
}

// A check that ends its goroutine with runtime.Goexit (t.FailNow, in a
// test) returned nothing: it fails, saying so, rather than pass.
func TestCheckGoexitFails(t *testing.T) {
	err := Check(func() error { runtime.Goexit(); return nil })(t.Context())
	if err == nil || !strings.Contains(err.Error(), "runtime.Goexit") {
		t.Fatalf("err = %v, want the check's Goexit", err)
	}
}

// The ready-made heptio checks work through the adapter and the registry.
func TestHeptioReadyMadeChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	defer down.Close()

	tests := []struct {
		name string
		c    healthcheck.Check
		ok   bool
	}{
		{"tcp open", healthcheck.TCPDialCheck(ln.Addr().String(), time.Second), true},
		{"tcp closed", healthcheck.TCPDialCheck(closedAddr, time.Second), false},
		{"http 200", healthcheck.HTTPGetCheck(up.URL, time.Second), true},
		{"http 500", healthcheck.HTTPGetCheck(down.URL, time.Second), false},
		{"dns localhost", healthcheck.DNSResolveCheck("localhost", time.Second), true},
		{"goroutines under a generous cap", healthcheck.GoroutineCountCheck(10000), true},
		{"goroutines over a cap of 1", healthcheck.GoroutineCountCheck(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := probes.New()
			reg.Add(probes.Readiness, probes.Check{Name: "c", Timeout: 2 * time.Second, Run: Check(tt.c)})
			rep, _ := reg.Evaluate(t.Context(), probes.Readiness, "", nil)
			if rep.Passing != tt.ok {
				t.Fatalf("passing = %v, want %v (err %v)", rep.Passing, tt.ok, rep.Checks[0].Err)
			}
		})
	}
}
