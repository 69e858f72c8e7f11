package berthtest_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
)

var greetingKey = lifespan.NewKey[string]("greeting")

// exampleT stands in for the *testing.T a real test has, so the example can
// run the cleanups at its end and print what a test would report.
type exampleT struct{ cleanups []func() }

func (t *exampleT) Helper()                        {}
func (t *exampleT) Cleanup(f func())               { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Errorf(format string, a ...any) { fmt.Printf("test error: "+format+"\n", a...) }
func (t *exampleT) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (t *exampleT) end() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// In a test, Start runs the startup and the test's cleanup the whole
// shutdown, failing the test if the shutdown reports an error: here the
// stop hook's error is what the test would be failed with.
func ExampleStart() {
	t := &exampleT{} // in a test: the *testing.T
	app := &lifespan.App{Name: "api"}
	app.Append(lifespan.Hook{Name: "greeting", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		greetingKey.Set(s, "hello")
		return func(context.Context) error { return fmt.Errorf("flush failed") }, nil
	}})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, greetingKey.MustGet(app.State()))
	})
	client := berthtest.Start(t, serve.Config{Apps: lifespan.Group{app}, API: api})
	code, body := client.Get(t, "/")
	fmt.Println(code, body)
	t.end() // the testing package runs the cleanups when the test ends
	// Output:
	// 200 hello
	// test error: berthtest: shutdown: lifespan "api": hook "greeting": stop: flush failed
}
