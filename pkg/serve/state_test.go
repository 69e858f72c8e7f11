package serve

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/berth-dev/berth/pkg/lifespan"
)

// Every API request's context holds the apps' state: each app's keys, read
// in the Group's order, on the API listener and, with SingleListener, on
// the one listener; and BaseContext, for a server that mounts APIHandler,
// holds the same.
func TestAPIRequestsCarryTheAppsState(t *testing.T) {
	dsn, region := lifespan.NewKey[string]("dsn"), lifespan.NewKey[string]("region")
	setting := func(name string, set func(*lifespan.Scope)) *lifespan.App {
		a := &lifespan.App{Name: name}
		a.Append(lifespan.Hook{Name: "h", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			set(s)
			return nil, nil
		}})
		return a
	}
	read := func(ctx context.Context) string {
		v, _ := ctx.Value(lifespan.StateContextKey).(lifespan.Values)
		d, _ := dsn.Get(v)
		r, _ := region.Get(v)
		return d + " " + r
	}
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("SingleListener=%v", single), func(t *testing.T) {
			apps := lifespan.Group{
				setting("db", func(s *lifespan.Scope) { dsn.Set(s, "postgres://db") }),
				setting("geo", func(s *lifespan.Scope) { region.Set(s, "eu"); dsn.Set(s, "shadowed") }),
			}
			f := start(t, Config{Apps: apps, SingleListener: single, DrainDelay: -1,
				API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, read(r.Context())) })})
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			if code, _, body := f.get(f.srv.APIAddr(), "/"); code != 200 || body != "postgres://db eu" {
				t.Errorf("API request read %d %q, want 200 %q", code, body, "postgres://db eu")
			}
			if got := read(f.srv.BaseContext(nil)); got != "postgres://db eu" {
				t.Errorf("BaseContext holds %q", got)
			}
			f.srv.Shutdown()
			if err := within(t, f.runErr, "Run"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
