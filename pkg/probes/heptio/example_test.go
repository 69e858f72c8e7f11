package heptio_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/probes/heptio"
	"github.com/heptiolabs/healthcheck"
)

// A ready-made heptio check, registered as a background readiness check
// (Interval set): it dials in the background, and probes read its cached
// result, never waiting on the dependency. serve starts the registry, so
// the check runs every Interval; here Refresh runs it once, now.
func Example() {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close() // nothing listens there now

	var dials atomic.Int32
	dial := healthcheck.TCPDialCheck(addr, time.Second)
	reg := probes.New()
	reg.Add(probes.Readiness, probes.Check{
		Name:     "upstream",
		Run:      heptio.Check(func() error { dials.Add(1); return dial() }),
		Interval: 10 * time.Second,
		Timeout:  2 * time.Second,
	})
	reg.Refresh(context.Background())
	var rep probes.Report
	for range 3 { // three probes
		rep, _ = reg.Evaluate(context.Background(), probes.Readiness, "", nil)
	}
	fmt.Println(rep.Checks[0].Name, "passing:", rep.Passing, "dials:", dials.Load())
	fmt.Println("the reason is the dial's:", rep.Checks[0].Err != nil && !errors.Is(rep.Checks[0].Err, probes.ErrNotRun))
	// Output:
	// upstream passing: false dials: 1
	// the reason is the dial's: true
}
