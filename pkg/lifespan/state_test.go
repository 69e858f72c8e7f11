package lifespan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	dsnKey   = NewKey[string]("dsn")
	countKey = NewKey[int]("count")
	userKey  = NewKey[string]("user")
)

func TestStateSetAtStartupReadOnlyAfter(t *testing.T) {
	l := &App{Name: "api"}
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

// A Group reads each app's state in its order: the first app that set a
// key wins, an app not started yet has nothing, and a value layered on the
// Group with With sees through to every app.
func TestGroupIsValues(t *testing.T) {
	started := func(name string, set func(s *Scope)) *App {
		a := &App{Name: name}
		a.Append(Hook{Name: "h", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			set(s)
			return nil, nil
		}})
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Stop(context.Background()) })
		return a
	}
	first := started("first", func(s *Scope) { dsnKey.Set(s, "postgres://first") })
	second := started("second", func(s *Scope) { dsnKey.Set(s, "postgres://second"); countKey.Set(s, 2) })
	idle := &App{Name: "idle"}
	g := Group{idle, nil, first, second}
	for _, tt := range []struct {
		name string
		got  func() (any, bool)
		want any
	}{
		{"the first app's value", func() (any, bool) { return dsnKey.Get(g) }, "postgres://first"},
		{"a later app's key", func() (any, bool) { return countKey.Get(g) }, 2},
		{"a key no app set", func() (any, bool) { return userKey.Get(g) }, nil},
		{"a layer over the Group", func() (any, bool) { return countKey.Get(userKey.With(g, "ann")) }, 2},
		{"the layer's own value", func() (any, bool) { return userKey.Get(userKey.With(g, "ann")) }, "ann"},
		{"an empty Group", func() (any, bool) { return dsnKey.Get(Group{}) }, nil},
	} {
		got, ok := tt.got()
		if ok != (tt.want != nil) || ok && got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, ok, tt.want)
		}
	}
	if got := userKey.With(g, "ann").Names(); !slices.Equal(got, []string{"count", "dsn", "user"}) {
		t.Errorf("Names over a Group = %q", got)
	}
	if _, ok := userKey.Get(g); ok {
		t.Error("a layer's value reached the Group")
	}
}

// A key of an interface type set to nil (no error yet, say) was set: Get
// says so, as Names does, and MustGet returns the nil.
func TestANilInterfaceValueIsSet(t *testing.T) {
	errKey := NewKey[error]("last-error")
	a := &App{Name: "api"}
	a.Append(Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		errKey.Set(s, nil)
		return nil, nil
	}})
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(t.Context())
	for name, v := range map[string]Values{"the app's state": a.State(), "a layer over it": errKey.With(a.State(), nil)} {
		if got, ok := errKey.Get(v); !ok || got != nil {
			t.Errorf("%s: Get = %v, %v; want nil, true (Names: %q)", name, got, ok, a.State().Names())
		}
		if got := errKey.MustGet(v); got != nil {
			t.Errorf("%s: MustGet = %v, want nil", name, got)
		}
	}
}

// With Concurrency, a hook's Scope sees what the hooks that started
// earlier set (Scope's doc): not what a sibling still starting has set so
// far. Otherwise a hook that reads a value it forgot to name in After
// gets it or not depending on timing, and may use a value its sibling
// then abandons (a pool the sibling closes as its own start fails).
func TestConcurrentSiblingsStateIsNotVisibleBeforeItStarted(t *testing.T) {
	setByDB := make(chan struct{})
	readByCache := make(chan struct{})
	var saw string
	var seen bool
	l := &App{Name: "api", Concurrency: 2}
	l.Append(
		Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			dsnKey.Set(s, "postgres://db")
			close(setByDB)
			<-readByCache // db has not started yet while cache reads
			return nil, nil
		}},
		Hook{Name: "cache", Start: func(_ context.Context, s *Scope) (StopFunc, error) { // no After: "db"
			<-setByDB
			saw, seen = dsnKey.Get(s)
			close(readByCache)
			return nil, nil
		}},
	)
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(t.Context())
	if seen {
		t.Errorf("cache, starting beside db, read dsn = %q from db, which had not started (its start had not returned)", saw)
	}
}

// What a start sets it reads back at once, a hook After it reads once it
// has succeeded, and the app's State holds once ready; when the start
// fails, the hook After it never starts.
func TestStatePublishedWhenItsStartSucceeds(t *testing.T) {
	failing := errors.New("db refused")
	for _, tt := range []struct {
		name    string
		dbErr   error
		wantDSN bool // in the State, and seen by "migrate", After db
	}{
		{"db starts", nil, true},
		{"db fails", failing, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ownRead, migrateRead bool
			l := &App{Name: "api", Concurrency: 2}
			l.Append(
				Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
					dsnKey.Set(s, "postgres://db")
					_, ownRead = dsnKey.Get(s)
					return nil, tt.dbErr
				}},
				Hook{Name: "migrate", After: []string{"db"}, Start: func(_ context.Context, s *Scope) (StopFunc, error) {
					_, migrateRead = dsnKey.Get(s)
					return nil, nil
				}},
			)
			err := l.Start(t.Context())
			defer l.Stop(t.Context())
			if !ownRead {
				t.Error("db did not read back what it set")
			}
			if (err == nil) != tt.wantDSN || migrateRead != tt.wantDSN {
				t.Fatalf("Start = %v, migrate saw dsn: %v; want dsn published: %v", err, migrateRead, tt.wantDSN)
			}
			if tt.wantDSN {
				if v, ok := dsnKey.Get(l.State()); !ok || v != "postgres://db" {
					t.Errorf("State's dsn = %q, %v", v, ok)
				}
			}
		})
	}
}
