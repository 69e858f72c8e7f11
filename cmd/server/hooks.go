package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/config"
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

func (s *store) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
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
	c.keys.Store(int64(s.count()))
	c.warmedAt.Store(time.Now().UnixNano())
}

var (
	storeKey = lifespan.NewKey[*store]("store")
	cacheKey = lifespan.NewKey[*cache]("cache")
)

// serviceHooks returns the service's hooks, in start order: the store, the
// cache warmed from it, and the job that refreshes the cache in the
// background. Each stop undoes its start; the job's task is cancelled
// after the HTTP drain, before the cache and the store go.
func serviceHooks(cfg config.Config, log *slog.Logger) []lifespan.Hook {
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
