package lifespan

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what hooks did, in order, safely across goroutines.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// recorded is a hook that journals its start and stop and can fail either.
func recorded(j *journal, name string, startErr, stopErr error) Hook {
	return Hook{Name: name, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
		if startErr != nil {
			j.add("start %s failed", name)
			return nil, startErr
		}
		j.add("start %s", name)
		return func(ctx context.Context) error {
			j.add("stop %s", name)
			return stopErr
		}, nil
	}}
}

func noop(context.Context, *Scope) (StopFunc, error) { return nil, nil }

// stopSeen is what a stop found in its context: the value under a key,
// and its deadline.
type stopSeen struct {
	value    any
	deadline time.Time
}

// seeingStop is a hook that starts at once and whose stop sends got what
// its context holds under key.
func seeingStop(name string, key any, got chan<- stopSeen) Hook {
	return Hook{Name: name, Start: func(context.Context, *Scope) (StopFunc, error) {
		return func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			got <- stopSeen{ctx.Value(key), dl}
			return nil
		}, nil
	}}
}

// blockedStart is a hook whose start closes entered and then waits for its
// context to end (a Stop abandoning the start, say).
func blockedStart(name string, entered chan<- struct{}) Hook {
	return Hook{Name: name, Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
}
