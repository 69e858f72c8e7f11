package berthtest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
)

var greetingKey = lifespan.NewKey[string]("greeting")

// In a test, Start runs the startup and t.Cleanup the whole shutdown,
// failing the test if the shutdown reports an error. (An Example has no
// *testing.T of its own, so this one is compiled, not run; berthtest_test.go
// runs the same steps against a fake T to check each of them.)
func ExampleStart() {
	testGreeting := func(t *testing.T) {
		app := &lifespan.App{Name: "api"}
		app.Append(lifespan.Hook{Name: "greeting", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			greetingKey.Set(s, "hello")
			return nil, nil
		}})
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, greetingKey.MustGet(app.State()))
		})
		client := berthtest.Start(t, serve.Config{Apps: lifespan.Group{app}, API: api})
		if code, body := client.Get(t, "/"); code != 200 || body != "hello" {
			t.Fatalf("GET / = %d %q", code, body)
		}
	}
	_ = testGreeting
}
