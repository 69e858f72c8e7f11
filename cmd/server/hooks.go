package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
)

// store is the service's key-value store: in memory, opened at startup and
// closed at shutdown, like a database client would be.
type store struct {
	mu     sync.RWMutex
	items  map[string][]byte
	closed bool
}

var errStoreClosed = errors.New("store is closed")

func (s *store) get(key string) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false, errStoreClosed
	}
	v, ok := s.items[key]
	return v, ok, nil
}

func (s *store) put(key string, v []byte) (created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errStoreClosed
	}
	_, existed := s.items[key]
	s.items[key] = v
	return !existed, nil
}

func (s *store) delete(key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errStoreClosed
	}
	_, ok := s.items[key]
	delete(s.items, key)
	return ok, nil
}

func (s *store) snapshot() map[string][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]byte, len(s.items))
	for k, v := range s.items {
		out[k] = v
	}
	return out
}

func (s *store) close() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return len(s.items)
}

// cache is warmed from the store at startup and refreshed by the job.
type cache struct {
	keys     atomic.Int64
	warmedAt atomic.Int64
	jobRuns  atomic.Int64
}

func (c *cache) load(s *store) {
	c.keys.Store(int64(len(s.snapshot())))
	c.warmedAt.Store(time.Now().UnixNano())
}

var (
	storeKey = lifespan.NewKey[*store]("store")
	cacheKey = lifespan.NewKey[*cache]("cache")
)

var errDemoFail = errors.New("failing as BERTH_DEMO_FAIL asks")

// withDemoFailure makes the hook called name fail at start without doing
// anything, so the rollback of the hooks before it can be watched.
func withDemoFailure(hooks []lifespan.Hook, name string) []lifespan.Hook {
	for i := range hooks {
		if hooks[i].Name == name {
			hooks[i].Start = func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) { return nil, errDemoFail }
		}
	}
	return hooks
}

// appHooks returns the service's hooks after the sidecar wait: the store,
// the cache warmed from it, and the periodic job.
func appHooks(cfg config, log *slog.Logger) []lifespan.Hook {
	return []lifespan.Hook{
		{Name: "store", Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			st := &store{items: map[string][]byte{}}
			storeKey.Set(s, st)
			return func(context.Context) error {
				log.Info("store closed", "items", st.close())
				return nil
			}, nil
		}},
		{Name: "cache", Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			// Warming stands in for loading a real cache; it honours ctx so a
			// shutdown during startup does not wait for it.
			select {
			case <-time.After(cfg.DemoWarmup):
			case <-ctx.Done():
				return nil, fmt.Errorf("warming the cache: %w", ctx.Err())
			}
			c := &cache{}
			c.load(storeKey.MustGet(s))
			cacheKey.Set(s, c)
			return func(context.Context) error {
				log.Info("cache dropped", "keys", c.keys.Load())
				return nil
			}, nil
		}},
		{Name: "jobs", Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			st, c := storeKey.MustGet(s), cacheKey.MustGet(s)
			s.Go("cache-refresh", func(ctx context.Context) error {
				tick := time.NewTicker(cfg.JobInterval)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						log.Info("cache-refresh job stopped", "runs", c.jobRuns.Load())
						return ctx.Err()
					case <-tick.C:
						c.load(st)
						c.jobRuns.Add(1)
					}
				}
			})
			return nil, nil
		}},
	}
}
