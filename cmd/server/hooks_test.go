package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/logbuf"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// The db readiness check runs in the background every few seconds; the db
// hook refreshes it as soon as the database is open, so /readyz stops
// saying "not open yet" at once rather than up to an interval later; once
// the hook's stop has closed the database, the check says so.
func TestDBCheckFollowsTheDBHook(t *testing.T) {
	cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checks := probes.New()
	db := &dbCheck{refresh: func(ctx context.Context) { checks.Refresh(ctx, "db") }}
	check := db.check(cfg)
	check.Interval = time.Hour // only a refresh can bring it up to date within the test
	checks.Add(probes.Readiness, check)
	checks.Start(t.Context())
	defer checks.Stop()
	passing := func() bool {
		rep, _ := checks.Evaluate(t.Context(), probes.Readiness, "db", nil)
		return rep.Passing
	}
	checks.Refresh(t.Context()) // the scheduled first run, settled
	if passing() {
		t.Fatal("db passing before the database was opened")
	}
	app := &lifespan.App{Name: "berth"}
	app.Append(serviceHooks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), db)[:1]...) // the db hook alone
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !passing() {
		t.Errorf("db still failing right after the db hook opened the database: %+v", checks.Results())
	}
	// SQLite's file deleted under the open database: a ping still answers
	// from the file it has open; the check does not pass.
	if err := os.Remove(filepath.Join(cfg.DataDir, "berth.db")); err != nil {
		t.Fatal(err)
	}
	checks.Refresh(t.Context())
	if passing() || !strings.Contains(fmt.Sprint(checks.Results()), "berth.db was deleted or renamed while the service had it open") {
		t.Errorf("db after its file was deleted: %+v, want it failing and saying so", checks.Results())
	}
	if err := app.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	checks.Refresh(t.Context())
	rep, _ := checks.Evaluate(t.Context(), probes.Readiness, "db", nil)
	if rep.Passing || !strings.Contains(fmt.Sprint(checks.Results()), "database closed: the service is stopping") {
		t.Errorf("db after the db hook stopped: %+v, want it failing as closed", checks.Results())
	}
}

// The demo's warm-up runs inside the cache hook's start, so its start
// timeout grows by the warm-up: any BERTH_DEMO_WARMUP the configuration
// accepts (up to 10m) finishes, where a fixed 30s cap failed every start
// from 30s on.
func TestDemoWarmupFitsTheCacheHook(t *testing.T) {
	for _, warmup := range []string{"1s", "31s", "10m"} {
		t.Run(warmup, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": warmup, "BERTH_DATA_DIR": t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				app := &lifespan.App{Name: "berth"}
				quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
				app.Append(withDemo(cfg, serviceHooks(cfg, quiet, &dbCheck{})[:3])...) // db, migrate, cache
				begin := time.Now()
				if err := app.Start(t.Context()); err != nil {
					t.Fatalf("start with BERTH_DEMO_WARMUP=%s: %v", warmup, err)
				}
				if took := time.Since(begin); took < cfg.DemoWarmup {
					t.Errorf("start took %v, less than the warm-up %v", took, cfg.DemoWarmup)
				}
				if err := app.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// A shutdown during the warm-up does not wait for it: the start returns
// as its context ends, not when the 10m warm-up would have.
func TestDemoWarmupEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": "10m", "BERTH_DATA_DIR": t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		app := &lifespan.App{Name: "berth"}
		app.Append(withDemo(cfg, serviceHooks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &dbCheck{})[:3])...) // db, migrate, cache
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel) // SIGTERM, a second into the warm-up
		begin := time.Now()
		err = app.Start(ctx)
		if took := time.Since(begin); !errors.Is(err, context.Canceled) || took != time.Second {
			t.Errorf("start cancelled a second into a 10m warm-up: %v after %v; want it ended then", err, took)
		}
	})
}

// The migrate hook's bound is BERTH_MIGRATE_TIMEOUT: a migration that
// copies a large table may need more than the default minute.
func TestMigrateTimeoutIsConfigured(t *testing.T) {
	cfg, err := config.Load(map[string]string{"BERTH_MIGRATE_TIMEOUT": "5m"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range serviceHooks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &dbCheck{}) {
		if h.Name == "migrate" {
			if h.StartTimeout != 5*time.Minute {
				t.Fatalf("migrate's start timeout %v, want BERTH_MIGRATE_TIMEOUT's 5m", h.StartTimeout)
			}
			return
		}
	}
	t.Fatal("no migrate hook")
}

// flakyStats is a store whose Stats answers figures or fails, as the test
// sets; nothing else of it is called.
type flakyStats struct {
	store.Store
	mu    sync.Mutex
	stats store.Stats
	err   error
}

func (f *flakyStats) Stats(context.Context) (store.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.err
}

func (f *flakyStats) set(st store.Stats, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats, f.err = st, err
}

// The cache-refresh job rides out a database outage: a refresh that fails
// leaves the cache's last figures and is not counted as a run in
// /api/v1/info's jobRuns; the next one that succeeds is.
func TestCacheRefreshRidesOutAnOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		db := &flakyStats{stats: store.Stats{Items: 1, Bytes: 10}}
		app := &lifespan.App{Name: "berth"}
		app.Append(storeHook(db))
		app.Append(serviceHooks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &dbCheck{})[2:]...) // cache, jobs
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		c := cacheKey.MustGet(app.State())
		tick := func() {
			time.Sleep(cfg.JobInterval)
			synctest.Wait()
		}
		for _, step := range []struct {
			name  string
			stats store.Stats
			err   error
			items int64 // the cache's figure after the tick
			runs  int64
		}{
			{"refreshed", store.Stats{Items: 2, Bytes: 20}, nil, 2, 1},
			{"outage", store.Stats{}, errors.New("connection refused"), 2, 1},
			{"outage again", store.Stats{}, errors.New("connection refused"), 2, 1},
			{"back", store.Stats{Items: 3, Bytes: 30}, nil, 3, 2},
		} {
			db.set(step.stats, step.err)
			tick()
			if got := c.stats.Load().Items; got != step.items {
				t.Errorf("%s: cache holds %d items, want %d", step.name, got, step.items)
			}
			if got := c.jobRuns.Load(); got != step.runs {
				t.Errorf("%s: jobRuns %d, want %d", step.name, got, step.runs)
			}
		}
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// The sidecar wait's failure names the setting to raise, and only when the
// wait itself ran out: a wait ended by a shutdown was not too short.
func TestSidecarWaitNamesItsTimeoutOnlyWhenItRanOut(t *testing.T) {
	for _, tt := range []struct {
		name     string
		shutdown bool
		names    bool
	}{
		{"the wait ran out", false, true},
		{"a shutdown ended it", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := namingTheWait(lifespan.Hook{Name: "sidecars", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, errors.New(`sidecar "istio-proxy:15021" not ready: 503 Service Unavailable`)
			}}, time.Minute)
			ctx, cancel := context.WithCancel(t.Context())
			if tt.shutdown {
				cancel()
			}
			defer cancel()
			_, err := h.Start(ctx, nil)
			if named := strings.Contains(fmt.Sprint(err), "waited BERTH_SIDECAR_TIMEOUT=1m0s for BERTH_SIDECARS"); err == nil || named != tt.names {
				t.Errorf("error %v: names BERTH_SIDECAR_TIMEOUT %v, want %v", err, named, tt.names)
			}
		})
	}
}

// blockingStats is a store whose Stats answers after it has been asked
// for the time set, or with its context's error when that ends first, as a
// database answering slowly does under a bound.
type blockingStats struct {
	store.Store
	took time.Duration
}

func (b blockingStats) Stats(ctx context.Context) (store.Stats, error) {
	select {
	case <-time.After(b.took):
		return store.Stats{Items: 1}, nil
	case <-ctx.Done():
		return store.Stats{}, ctx.Err()
	}
}

// The cache's start is one Stats query, bounded by BERTH_DB_TIMEOUT: the
// hook's own start timeout is longer, so a query the database answers
// within that bound is not cut off (the hook's bound was a fixed 30s,
// while BERTH_DB_TIMEOUT takes up to a minute).
func TestCacheHookOutlastsTheDatabaseBound(t *testing.T) {
	for _, tt := range []struct{ dbTimeout, took string }{{"1500ms", "1s"}, {"45s", "40s"}, {"1m", "59s"}} {
		t.Run(tt.dbTimeout, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, err := config.Load(map[string]string{"BERTH_DB_TIMEOUT": tt.dbTimeout, "BERTH_DRAIN_TIMEOUT": "1m", "BERTH_DATA_DIR": t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				took, _ := time.ParseDuration(tt.took)
				app := &lifespan.App{Name: "berth"}
				app.Append(storeHook(blockingStats{took: took}))
				app.Append(serviceHooks(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &dbCheck{})[2]) // cache
				if err := app.Start(t.Context()); err != nil {
					t.Fatalf("BERTH_DB_TIMEOUT=%s, a Stats answered in %s: %v", tt.dbTimeout, tt.took, err)
				}
				if err := app.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// A refresh that the shutdown ends (its query cancelled with the job) is
// not a failed refresh: the job logs that it stopped, and no warning.
func TestCacheRefreshEndedByTheShutdownIsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Load(map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_DATA_DIR": t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var logs logbuf.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		app := &lifespan.App{Name: "berth"}
		// A database whose Stats never answers in the test's time: the cache
		// below starts without a load, and the job's refresh waits on it.
		app.Append(storeHook(blockingStats{took: time.Hour}))
		hooks := serviceHooks(cfg, log, &dbCheck{})
		app.Append(lifespan.Hook{Name: "cache", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
			c := &cache{}
			c.stats.Store(&store.Stats{})
			cacheKey.Set(s, c)
			return nil, nil
		}}, hooks[3]) // jobs
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.JobInterval) // the job's first tick: its refresh waits on the database
		synctest.Wait()
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out := logs.String(); strings.Contains(out, "cache refresh failed") || !strings.Contains(out, "cache-refresh job stopped") {
			t.Errorf("log of a refresh the shutdown ended:\n%s\nwant the job stopped, and no failure", out)
		}
	})
}

// storeHook is a "db" hook that provides st as the service's store.
func storeHook(st store.Store) lifespan.Hook {
	return lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		storeKey.Set(s, st)
		return nil, nil
	}}
}
