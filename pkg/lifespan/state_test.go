package lifespan

import (
	"context"
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
