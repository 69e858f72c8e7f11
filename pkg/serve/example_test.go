package serve_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
)

// A server runs the app behind the API and follows the shutdown timeline;
// every step is a lifecycle signal, each signalled once: here listed in
// the order they were signalled, by the time each records.
func Example() {
	app := &lifespan.App{Name: "api"}
	app.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		return func(context.Context) error { fmt.Println("db closed"); return nil }, nil
	}})
	srv, err := serve.New(serve.Config{
		Apps:       lifespan.Group{app},
		API:        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }),
		APIAddr:    "127.0.0.1:0",
		AdminAddr:  "127.0.0.1:0",
		DrainDelay: -1,            // no endpoints to wait for here; 5s by default
		ShutdownOn: []os.Signal{}, // the example stops itself
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()

	<-srv.Signals().StartupComplete.Done()
	resp, _ := http.Get("http://" + srv.APIAddr().String() + "/")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	srv.Shutdown() // as SIGTERM would
	fmt.Println("exit code", serve.ExitCode(<-done))
	signals := srv.Signals().All()
	slices.SortStableFunc(signals, func(a, b *serve.Signal) int { return a.At().Compare(b.At()) })
	for _, s := range signals {
		fmt.Println(s.Name(), s.Signalled())
	}
	// Output:
	// hello
	// db closed
	// exit code 0
	// Listening true
	// StartupComplete true
	// ShutdownInitiated true
	// ReadinessFailing true
	// DrainStarted true
	// InFlightDrained true
	// TasksStopped true
	// HooksStopped true
	// ShutdownComplete true
}

// New refuses settings whose shutdown cannot fit the pod's grace period,
// and says by how much.
func ExampleNew_budget() {
	_, err := serve.New(serve.Config{API: http.NotFoundHandler(), GracePeriod: 30e9})
	fmt.Println(err)
	fmt.Println("exit code", serve.ExitCode(err))
	// Output:
	// serve: invalid configuration: shutdown needs up to 37s (preStop 0s + drain delay 5s + drain timeout 20s + stop timeout 10s + margin 2s) but GracePeriod is 30s; raise GracePeriod (the pod's terminationGracePeriodSeconds) to at least 37s, or shorten DrainDelay, DrainTimeout, StopTimeout or Margin
	// exit code 2
}
