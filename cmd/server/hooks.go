package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/probes/heptio"
	"github.com/heptiolabs/healthcheck"
)

// cache holds the store's figures, warmed from the database at startup and
// refreshed by the job, so /api/v1/info answers without the database.
type cache struct {
	stats    atomic.Pointer[store.Stats]
	warmedAt atomic.Int64
	jobRuns  atomic.Int64
}

func (c *cache) load(ctx context.Context, s store.Store) error {
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	c.stats.Store(&st)
	c.warmedAt.Store(time.Now().UnixNano())
	return nil
}

var (
	storeKey = lifespan.NewKey[store.Store]("store")
	cacheKey = lifespan.NewKey[*cache]("cache")
)

// dbCheck is the readiness check "db": a ping of the database through
// heptiolabs/healthcheck's DatabasePingCheck (after, for SQLite, a look at
// whether its file is still the one open: store.DB.CheckFile), run in the
// background every few seconds, so a probe reads the cached result and
// never waits on the database. It fails until the db hook has opened the database, and once
// its stop has closed it.
type dbCheck struct {
	ping    atomic.Pointer[probes.CheckFunc]
	closed  atomic.Bool
	refresh func(context.Context) // runs the check now (set by the wiring)
}

func (d *dbCheck) check(cfg config.Config) probes.Check {
	return probes.Check{Name: "db", Interval: 5 * time.Second, Timeout: cfg.DBTimeout + time.Second,
		Run: func(ctx context.Context) error {
			ping := d.ping.Load()
			switch {
			case ping != nil:
				return (*ping)(ctx)
			case d.closed.Load():
				return errors.New("database closed: the service is stopping")
			}
			return errors.New("database not open yet")
		}}
}

// serviceHooks returns the service's hooks, in start order: the database
// (waiting for it), its schema, the cache warmed from it, and the job that
// refreshes the cache in the background. Each stop undoes its start; on
// SIGTERM the job's task is cancelled after the HTTP drain, and the
// database closes last, after every request has been answered.
func serviceHooks(cfg config.Config, log *slog.Logger, ping *dbCheck) []lifespan.Hook {
	return []lifespan.Hook{
		{Name: "db", StartTimeout: cfg.DBWait + cfg.DBTimeout + 5*time.Second, Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			db, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, Wait: cfg.DBWait, Logger: log,
				Limits: store.Limits{MaxItems: cfg.MaxItems, MaxValueBytes: cfg.BodyLimit, Timeout: cfg.DBTimeout}})
			if err != nil {
				return nil, err
			}
			log.Info("database open", "database", db.Where())
			pingDB := heptio.Check(healthcheck.DatabasePingCheck(db.SQL(), cfg.DBTimeout))
			check := probes.CheckFunc(func(ctx context.Context) error {
				if err := db.CheckFile(ctx); err != nil { // SQLite's file deleted under it: a ping still answers
					return err
				}
				return pingDB(ctx)
			})
			ping.ping.Store(&check)
			if ping.refresh != nil {
				ping.refresh(ctx) // not "not open yet" for up to 5s more
			}
			storeKey.Set(s, db)
			return func(context.Context) error {
				ping.closed.Store(true) // before the ping goes: never "not open yet" again
				ping.ping.Store(nil)
				err := db.Close()
				log.Info("database closed", "database", db.Where())
				return err
			}, nil
		}},
		{Name: "migrate", StartTimeout: cfg.MigrateTimeout, Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			return nil, storeKey.MustGet(s).(*store.DB).Migrate(ctx, log)
		}},
		// The cache's start is one Stats query, which BERTH_DB_TIMEOUT
		// bounds (up to a minute): the hook's own bound must not cut it
		// short with a less telling error.
		{Name: "cache", StartTimeout: cfg.DBTimeout + 5*time.Second, Start: func(ctx context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			c := &cache{}
			if err := c.load(ctx, storeKey.MustGet(s)); err != nil {
				return nil, err
			}
			cacheKey.Set(s, c)
			return func(context.Context) error {
				log.Info("cache dropped", "items", c.stats.Load().Items)
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
						// A database outage is ridden out: the cache keeps its
						// last figures and the job tries again next tick.
						if err := c.load(ctx, st); err != nil {
							if ctx.Err() == nil { // not a refresh the shutdown ended
								log.Warn("cache refresh failed", "error", err.Error())
							}
							continue
						}
						c.jobRuns.Add(1)
					}
				}
			})
			return nil, nil
		}},
	}
}
