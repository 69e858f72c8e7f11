package lifespan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var (
	dsnKey   = NewKey[string]("dsn")
	countKey = NewKey[int]("count")
	userKey  = NewKey[string]("user")
)

func TestStateSetAtStartupReadOnlyAfter(t *testing.T) {
	l := New("api")
	var sawInSecondHook string
	var scope *Scope
	l.Append(
		Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			dsnKey.Set(s, "postgres://db")
			scope = s
			return nil, nil
		}},
		Hook{Name: "cache", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			sawInSecondHook, _ = dsnKey.Get(s) // a later hook sees an earlier hook's state
			countKey.Set(s, 3)
			return nil, nil
		}},
	)
	if st := l.State(); st != nil {
		t.Fatalf("State before ready = %v, want nil", st.Names())
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(t.Context())
	if sawInSecondHook != "postgres://db" {
		t.Errorf("second hook saw %q", sawInSecondHook)
	}
	st := l.State()
	if got := dsnKey.MustGet(st); got != "postgres://db" {
		t.Errorf("dsn = %q", got)
	}
	if got, _ := countKey.Get(st); got != 3 {
		t.Errorf("count = %d", got)
	}
	if got := st.Names(); !slices.Equal(got, []string{"count", "dsn"}) {
		t.Errorf("Names = %q", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `state "dsn" set after its start returned`) {
			t.Errorf("Set after start: recover() = %v", r)
		}
	}()
	dsnKey.Set(scope, "other")
}

func TestRequestAdditionsDoNotLeak(t *testing.T) {
	base := dsnKey.With(nil, "postgres://db")
	var wg sync.WaitGroup
	for _, user := range []string{"ann", "bob", "cid"} {
		wg.Go(func() {
			req := userKey.With(base, user)
			if got := userKey.MustGet(req); got != user {
				t.Errorf("request sees user %q, want %q", got, user)
			}
			if got := dsnKey.MustGet(req); got != "postgres://db" {
				t.Errorf("request sees dsn %q", got)
			}
		})
	}
	wg.Wait()
	if _, ok := userKey.Get(base); ok {
		t.Fatal("a request's value leaked into the shared state")
	}
	shadow := dsnKey.With(base, "override")
	if dsnKey.MustGet(shadow) != "override" || dsnKey.MustGet(base) != "postgres://db" {
		t.Fatal("shadowing changed the parent")
	}
}

func TestKeysCompareByIdentity(t *testing.T) {
	a, b := NewKey[string]("same"), NewKey[string]("same")
	st := a.With(nil, "A")
	if _, ok := b.Get(st); ok {
		t.Fatal("two keys with one name collided")
	}
	var zero Key[string]
	if _, ok := zero.Get(st); ok {
		t.Fatal("zero key found a value")
	}
	if _, ok := a.Get((*State)(nil)); ok {
		t.Fatal("nil state has a value")
	}
}

func TestTasksCancelledAfterDrainBeforeStopHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		l := New("api")
		ticks := 0
		l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("ticker", func(ctx context.Context) error {
				tk := time.NewTicker(time.Second)
				defer tk.Stop()
				for {
					select {
					case <-ctx.Done():
						j.add("task ticker done after %d ticks", ticks)
						return ctx.Err()
					case <-tk.C:
						ticks++
					}
				}
			})
			return func(context.Context) error { j.add("stop jobs"); return nil }, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3*time.Second + time.Millisecond)
		l.BeginDrain()
		if l.Phase() != PhaseDraining {
			t.Fatalf("phase = %v, want draining", l.Phase())
		}
		if got := l.Running(); !slices.Equal(got, []string{"task:ticker"}) {
			t.Errorf("Running while draining = %q (tasks keep running through the drain)", got)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"task ticker done after 3 ticks", "stop jobs"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Fatalf("journal = %q, want %q", got, want)
		}
	})
}

func TestTaskFailuresReachStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("api", WithStopTimeout(time.Second))
		block := make(chan struct{})
		l.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("crasher", func(context.Context) error { panic("bad tick") })
			s.Go("failer", func(context.Context) error { return errors.New("lost lease") })
			s.Go("deaf", func(context.Context) error { <-block; return nil })
			return nil, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		err := l.Stop(t.Context())
		for _, s := range []string{`task "crasher": panic: bad tick`, `task "failer": lost lease`, `background tasks still running 1s after cancellation: [deaf]`} {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("Stop = %v, want it to contain %q", err, s)
			}
		}
		close(block)
	})
}

func TestGroupStartsInOrderStopsInReverse(t *testing.T) {
	j := &journal{}
	a, b, c := New("a"), New("b"), New("c")
	a.Append(recorded(j, "a.db", nil, nil))
	b.Append(recorded(j, "b.db", nil, nil))
	c.Append(recorded(j, "c.db", nil, nil))
	g := NewGroup(a, b, c)
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !g.Ready() {
		t.Fatal("group not ready")
	}
	g.BeginDrain()
	if g.Ready() {
		t.Fatal("group ready while draining")
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a.db", "start b.db", "start c.db", "stop c.db", "stop b.db", "stop a.db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

func TestGroupFailureStopsEarlierApps(t *testing.T) {
	j := &journal{}
	a, b, c := New("a"), New("b"), New("c")
	a.Append(recorded(j, "a.db", nil, errors.New("a close")))
	b.Append(recorded(j, "b.db", nil, nil), recorded(j, "b.bad", errors.New("denied"), nil))
	c.Append(recorded(j, "c.db", nil, nil))
	err := NewGroup(a, b, c).Start(t.Context())
	for _, s := range []string{`lifespan "b": hook "b.bad": start: denied`, `lifespan "a": hook "a.db": stop: a close`} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Start = %v, want %q", err, s)
		}
	}
	want := []string{"start a.db", "start b.db", "start b.bad failed", "stop b.db", "stop a.db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

func TestNewGroupPanicsOnDuplicateNames(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewGroup(New("a"), New("a"))
}

func TestEventsCarryAppHookPhaseDurationError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []Event
		obs := ObserverFunc(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
		l := New("api", WithObserver(Observers(obs, nil)))
		l.Append(Hook{Name: "db", Start: func(context.Context, *Scope) (StopFunc, error) {
			time.Sleep(2 * time.Second)
			return func(context.Context) error { time.Sleep(time.Second); return errors.New("close") }, nil
		}})
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		l.BeginDrain()
		time.Sleep(4 * time.Second)
		_ = l.Stop(t.Context())

		type row struct {
			Kind  EventKind
			Hook  string
			Phase Phase
			D     time.Duration
			Err   bool
		}
		var got []row
		for _, e := range events {
			if e.App != "api" || e.Time.IsZero() {
				t.Errorf("event %+v lacks app or time", e)
			}
			got = append(got, row{e.Kind, e.Hook, e.Phase, e.Duration, e.Err != nil})
		}
		want := []row{
			{PhaseChanged, "", PhaseStarting, 0, false},
			{HookStarting, "db", PhaseStarting, 0, false},
			{HookStarted, "db", PhaseStarting, 2 * time.Second, false},
			{PhaseChanged, "", PhaseReady, 2 * time.Second, false},
			{PhaseChanged, "", PhaseDraining, 0, false},
			{PhaseChanged, "", PhaseStopping, 0, false},
			{HookStopping, "db", PhaseStopping, 0, false},
			{HookStopped, "db", PhaseStopping, time.Second, true},
			{PhaseChanged, "", PhaseStopped, 5 * time.Second, true}, // from the drain's start
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestNames(t *testing.T) {
	if PhaseDraining.String() != "draining" || Phase(99).String() != "Phase(99)" {
		t.Error("Phase.String")
	}
	if HookStopped.String() != "hook-stopped" || HookRunningStop.String() != "stopping" {
		t.Error("EventKind/HookStatus String")
	}
}
