package sidecar_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/sidecar"
)

// The sidecar wait is the first hook: hooks after it start only once every
// sidecar answers ready. After the app's teardown, Quit tells classic
// sidecars to go.
func Example() {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quitquitquit" {
			fmt.Println("sidecar told to quit")
		}
	}))
	defer proxy.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	targets, err := sidecar.ParseTargets([]string{proxy.URL + "/healthz/ready"})
	if err != nil {
		fmt.Println(err)
		return
	}
	app := &lifespan.App{Name: "api"}
	app.Append(sidecar.NewWaiter(targets, sidecar.Options{Logger: quiet}).Hook())
	app.Append(lifespan.Hook{Name: "db", Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
		fmt.Println("db opened, the network is up")
		return nil, nil
	}})
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
	}
	_ = app.Stop(context.Background())
	_ = sidecar.Quit(context.Background(), []string{proxy.URL + "/quitquitquit"}, sidecar.Options{Logger: quiet})
	// Output:
	// db opened, the network is up
	// sidecar told to quit
}

// Targets are readiness URLs, tcp:// addresses or bare host:port.
func ExampleParseTargets() {
	targets, _ := sidecar.ParseTargets([]string{"http://127.0.0.1:15021/healthz/ready", "127.0.0.1:4191"})
	for _, t := range targets {
		fmt.Println(t.Name, t.URL.Scheme)
	}
	_, err := sidecar.ParseTargets([]string{"ftp://127.0.0.1:21"})
	fmt.Println(err)
	// Output:
	// 127.0.0.1:15021 http
	// 127.0.0.1:4191 tcp
	// sidecar "ftp://127.0.0.1:21": scheme "ftp" not supported; want http, https or tcp
}
