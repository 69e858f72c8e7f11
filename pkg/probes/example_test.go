package probes_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/berth-dev/berth/pkg/probes"
)

func Example() {
	reg := probes.New()
	reg.Add(probes.Liveness, probes.Check{Name: "ping", Run: func(context.Context) error { return nil }})
	reg.Add(probes.Readiness, probes.Check{
		Name:             "db",
		Run:              func(context.Context) error { return errors.New("connection refused") },
		Timeout:          500 * time.Millisecond,
		FailureThreshold: 3, // a passing check needs 3 failures in a row to fail; the first result counts at once
		// Interval: 5 * time.Second would run it in the background, probes reading the cached result.
	})
	reg.Start(context.Background())
	defer reg.Stop()

	h := reg.Handler(probes.HandlerOptions{ShowReasons: true}) // admin port only
	for _, path := range []string{"/livez", "/readyz?exclude=db", "/readyz/db?verbose"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Printf("%s %d\n%s", path, rec.Code, rec.Body)
	}
	// Output:
	// /livez 200
	// ok
	// /readyz?exclude=db 200
	// ok
	// /readyz/db?verbose 503
	// [-]db failed: connection refused
	// readyz check failed
}
