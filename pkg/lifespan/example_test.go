package lifespan_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/berth-dev/berth/pkg/lifespan"
)

// DB stands in for a real client.
type DB struct{ dsn string }

var dbKey = lifespan.NewKey[*DB]("db")

// An app with two hooks: the stop function is a closure over what the start
// opened, and state set at startup is read afterwards.
func Example() {
	app := &lifespan.App{Name: "api"}
	app.Append(
		lifespan.Hook{Name: "db", Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			db := &DB{dsn: "postgres://db"} // open it
			dbKey.Set(s, db)
			fmt.Println("db opened")
			return func(ctx context.Context) error {
				fmt.Println("db closed:", db.dsn)
				return nil
			}, nil
		}},
		lifespan.Hook{Name: "cache", Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			db := dbKey.MustGet(s) // earlier hooks' state is visible
			fmt.Println("cache warmed from", db.dsn)
			return func(context.Context) error { fmt.Println("cache flushed"); return nil }, nil
		}},
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("serving with", dbKey.MustGet(app.State()).dsn)
	if err := app.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// db opened
	// cache warmed from postgres://db
	// serving with postgres://db
	// cache flushed
	// db closed: postgres://db
}

// Several apps in one process start in order and stop in reverse.
func ExampleGroup() {
	hook := func(name string) lifespan.Hook {
		return lifespan.Hook{Name: "main", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			fmt.Println("start", name)
			return func(context.Context) error { fmt.Println("stop", name); return nil }, nil
		}}
	}
	users, billing := &lifespan.App{Name: "users"}, &lifespan.App{Name: "billing"}
	users.Append(hook("users"))
	billing.Append(hook("billing"))
	group := lifespan.Group{users, billing}
	if err := group.Start(context.Background()); err != nil {
		fmt.Println(err)
	}
	_ = group.Stop(context.Background())
	// Output:
	// start users
	// start billing
	// stop billing
	// stop users
}

// A failed start rolls back what already started and names where it failed.
func ExampleApp_Start_rollback() {
	app := &lifespan.App{Name: "api"}
	app.Append(
		lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { fmt.Println("db closed"); return nil }, nil
		}},
		lifespan.Hook{Name: "cache", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return nil, fmt.Errorf("redis: connection refused")
		}},
	)
	fmt.Println(app.Start(context.Background()))
	// Output:
	// db closed
	// lifespan "api": hook "cache": start: redis: connection refused
}

// A hook starts after the hooks its After names, whatever the order they
// were appended in, and stops before them. With Concurrency, hooks that
// need nothing of each other start at once.
func ExampleHook_after() {
	app := &lifespan.App{Name: "api", Concurrency: 4}
	step := func(name string, after ...string) lifespan.Hook {
		return lifespan.Hook{Name: name, After: after, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			fmt.Println("start", name)
			return func(context.Context) error { fmt.Println("stop", name); return nil }, nil
		}}
	}
	app.Append(step("cache", "db"), step("db"))
	_ = app.Start(context.Background())
	_ = app.Stop(context.Background())
	// Output:
	// start db
	// start cache
	// stop cache
	// stop db
}

// A handler behind serve reads the apps' state from its request's
// context, where serve's API listener put it.
func ExampleStateContextKey() {
	app := &lifespan.App{Name: "api"}
	app.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		dbKey.Set(s, &DB{dsn: "postgres://db"})
		return nil, nil
	}})
	_ = app.Start(context.Background())
	defer app.Stop(context.Background())
	// What serve does once per listener (http.Server.BaseContext):
	base := context.WithValue(context.Background(), lifespan.StateContextKey, lifespan.Values(lifespan.Group{app}))
	r := httptest.NewRequestWithContext(base, "GET", "/", nil)

	// In the handler:
	v, _ := r.Context().Value(lifespan.StateContextKey).(lifespan.Values)
	fmt.Println(dbKey.MustGet(v).dsn)
	// Output: postgres://db
}

// Request-local values layer on top of the app's state without changing it.
func ExampleKey_With() {
	user := lifespan.NewKey[string]("user")
	shared := dbKey.With(nil, &DB{dsn: "postgres://db"})
	request := user.With(shared, "ann")
	fmt.Println(user.MustGet(request), dbKey.MustGet(request).dsn)
	_, leaked := user.Get(shared)
	fmt.Println("leaked:", leaked, "names:", request.Names())
	// Output:
	// ann postgres://db
	// leaked: false names: [db user]
}
