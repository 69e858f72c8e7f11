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
// the probe's timeout), later probes wait for it instead of starting
// another, so a hung dependency holds one goroutine, not one per probe.
// Every answer comes from a call that began after its probe did: a probe
// that finds a call already running waits for it to end and then for a
// call of its own (or one another probe started after it arrived), so a
// Refresh after a change never gets the verdict of a call begun before it.
// (healthcheck's own Timeout and Async wrappers start a goroutine per call
// and a ticker that never stops; do not wrap checks in them.)
func Check(c healthcheck.Check) probes.CheckFunc {
	if c == nil {
		panic("heptio: Check(nil)")
	}
	var mu sync.Mutex
	var current *call
	var started uint64      // calls begun so far; a call's seq is its number
	start := func() *call { // with mu held
		started++
		cl := &call{seq: started, done: make(chan struct{})}
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
		return cl
	}
	return func(ctx context.Context) error {
		mu.Lock()
		// The first call to begin after this probe arrived: the one it
		// starts now, or the next after the one already running.
		need := started + 1
		for {
			cl := current
			if cl == nil {
				cl = start()
			}
			mu.Unlock()
			select {
			case <-cl.done:
				if cl.seq >= need {
					return cl.err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
		}
	}
}

type call struct {
	seq  uint64
	done chan struct{}
	err  error
}
