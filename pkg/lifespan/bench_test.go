package lifespan

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStartupSequentialVsParallel starts 16 independent hooks, each
// doing 2ms of I/O-like waiting, one at a time and with Concurrency 8,
// in alternating runs; sequential/parallel is the speed-up.
func BenchmarkStartupSequentialVsParallel(b *testing.B) {
	const hooks, work = 16, 2 * time.Millisecond
	build := func(concurrency int) *App {
		l := &App{Name: "bench", Concurrency: concurrency}
		for i := range hooks {
			l.Append(Hook{Name: fmt.Sprintf("h%d", i), Start: func(ctx context.Context, _ *Scope) (StopFunc, error) {
				time.Sleep(work) // a dial or a query
				return nil, nil
			}})
		}
		return l
	}
	run := func(l *App) time.Duration {
		begin := time.Now()
		if err := l.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		d := time.Since(begin)
		if err := l.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		return d
	}
	var seq, par time.Duration
	for range b.N {
		seq += run(build(1))
		par += run(build(8))
	}
	b.ReportMetric(float64(seq.Microseconds())/float64(b.N)/1000, "sequential-ms")
	b.ReportMetric(float64(par.Microseconds())/float64(b.N)/1000, "parallel-ms")
	b.ReportMetric(float64(seq)/float64(par), "speedup")
}
