package heptio

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/heptiolabs/healthcheck"
)

// Check adapts a github.com/heptiolabs/healthcheck Check, which takes no
// context, to a probes.CheckFunc. The heptio check runs in a goroutine
// and the probe waits for it only until its context ends. At most one call
// is in flight: while a call is still running (say, a DNS lookup hung past
// the probe's timeout), later probes share its answer instead of starting
// another, so a hung dependency holds one goroutine, not one per probe,
// and probes that overlap cost one call. A run of [probes.Registry.Refresh]
// ([probes.Refreshing]) is the exception: it wants a result from after
// what changed, so it waits for a call already running to end and then
// takes one begun after it arrived. (healthcheck's own Timeout and Async
// wrappers start a goroutine per call and a ticker that never stops; do
// not wrap checks in them.)
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
			// Unless c returns: a runtime.Goexit (t.FailNow, in a test)
			// said nothing of the dependency, so it does not pass.
			cl.err = errors.New("check exited by runtime.Goexit without returning (t.FailNow or t.SkipNow, in a test)")
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
		// The oldest call whose answer this probe takes: any (0), or for a
		// refresh the first to begin after it arrived.
		var need uint64
		if probes.Refreshing(ctx) {
			need = started + 1
		}
		for {
			cl := current
			if cl == nil {
				if err := ctx.Err(); err != nil { // gave up: start nothing nobody waits for
					mu.Unlock()
					return err
				}
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
