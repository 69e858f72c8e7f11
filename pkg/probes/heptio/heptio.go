package heptio

import (
	"context"
	"fmt"
	"sync"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/heptiolabs/healthcheck"
)

// Check adapts a github.com/heptiolabs/healthcheck Check, which takes no
// context, to a probes.CheckFunc. The heptio check runs in a goroutine
// and the probe waits for it only until its context ends. At most one call
// is in flight: while a call is still running (say, a DNS lookup hung past
// the probe's timeout), later probes wait for that same call instead of
// starting another, so a hung dependency holds one goroutine, not one per
// probe. (healthcheck's own Timeout and Async wrappers start a goroutine per
// call and a ticker that never stops; do not wrap checks in them.)
func Check(c healthcheck.Check) probes.CheckFunc {
	if c == nil {
		panic("heptio: Check(nil)")
	}
	var mu sync.Mutex
	var current *call
	return func(ctx context.Context) error {
		mu.Lock()
		cl := current
		if cl == nil {
			cl = &call{done: make(chan struct{})}
			current = cl
			go func() {
				defer func() {
					if v := recover(); v != nil {
						cl.err = fmt.Errorf("check panicked: %v", v)
					}
					mu.Lock()
					current = nil
					mu.Unlock()
					close(cl.done)
				}()
				cl.err = c()
			}()
		}
		mu.Unlock()
		select {
		case <-cl.done:
			return cl.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type call struct {
	done chan struct{}
	err  error
}
