package heptio_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/probes/heptio"
	"github.com/heptiolabs/healthcheck"
)

// A ready-made heptio check, registered as a background readiness check:
// probes read its cached result and never wait on the dependency.
func Example() {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close() // nothing listens there now

	reg := probes.New()
	reg.Add(probes.Readiness, probes.Check{
		Name:    "upstream",
		Run:     heptio.Check(healthcheck.TCPDialCheck(addr, time.Second)),
		Timeout: 2 * time.Second,
	})
	rep, _ := reg.Evaluate(context.Background(), probes.Readiness, "", nil)
	fmt.Println(rep.Checks[0].Name, "passing:", rep.Passing)
	// Output:
	// upstream passing: false
}
