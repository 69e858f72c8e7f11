// Package sidebyside times a baseline and a candidate in alternating
// batches inside one benchmark, so that noise on a shared machine hits both
// alike and their ratio is the figure to report.
package sidebyside

import (
	"testing"
	"time"
)

// Result is the time each side took for b.N operations.
type Result struct{ Baseline, Candidate time.Duration }

// Ratio is Candidate/Baseline: above 1, the candidate is slower.
func (r Result) Ratio() float64 { return float64(r.Candidate) / float64(r.Baseline) }

// PerOp returns each side's nanoseconds per operation.
func (r Result) PerOp(n int) (baseline, candidate float64) {
	return float64(r.Baseline.Nanoseconds()) / float64(n), float64(r.Candidate.Nanoseconds()) / float64(n)
}

// Run calls baseline(k) then candidate(k) in batches of at most batch
// operations until each has done b.N, and returns their total times. It
// resets the benchmark timer first and stops it after.
func Run(b *testing.B, batch int, baseline, candidate func(n int)) Result {
	var r Result
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		t0 := time.Now()
		baseline(n)
		t1 := time.Now()
		candidate(n)
		r.Baseline += t1.Sub(t0)
		r.Candidate += time.Since(t1)
	}
	b.StopTimer()
	return r
}
