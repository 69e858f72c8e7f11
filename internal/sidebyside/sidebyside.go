// Package sidebyside times a baseline and a candidate in alternating
// batches inside one benchmark, so that noise on a shared machine hits both
// alike and their ratio is the figure to report.
//
// Two habits keep the ratio honest on a noisy machine. The order alternates
// (baseline first in one pair of batches, candidate first in the next), so
// whatever favours the side that runs second (a GC cycle the other side's
// garbage started, a warm cache) favours each side equally. And the ratio is
// the median of the per-pair ratios, not the ratio of the totals, so a burst
// of noise from another tenant that lands on a few batches moves it little.
package sidebyside

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// Result is the time each side took for b.N operations, and the ratio of
// each pair of batches.
type Result struct {
	Baseline, Candidate time.Duration
	ratios              []float64 // candidate/baseline, one per pair of batches
}

// Ratio is the median over the pairs of batches of candidate time over
// baseline time: above 1, the candidate is slower. Without pairs (a Result
// built by hand), it is the ratio of the totals.
func (r Result) Ratio() float64 {
	if len(r.ratios) == 0 {
		return float64(r.Candidate) / float64(r.Baseline)
	}
	s := slices.Clone(r.ratios)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// PerOp returns each side's mean nanoseconds per operation.
func (r Result) PerOp(n int) (baseline, candidate float64) {
	return float64(r.Baseline.Nanoseconds()) / float64(n), float64(r.Candidate.Nanoseconds()) / float64(n)
}

// Run calls baseline(k) and candidate(k) in batches of at most batch
// operations, alternating which goes first, until each has done b.N, and
// returns their times. It resets the benchmark timer first and stops it
// after.
func Run(b *testing.B, batch int, baseline, candidate func(n int)) Result {
	var r Result
	timed := func(f func(int), n int) time.Duration {
		t0 := time.Now()
		f(n)
		return time.Since(t0)
	}
	b.ResetTimer()
	for done, pair := 0, 0; done < b.N; done, pair = done+batch, pair+1 {
		n := min(batch, b.N-done)
		var base, cand time.Duration
		if pair%2 == 0 {
			base = timed(baseline, n)
			cand = timed(candidate, n)
		} else {
			cand = timed(candidate, n)
			base = timed(baseline, n)
		}
		r.Baseline += base
		r.Candidate += cand
		r.ratios = append(r.ratios, float64(cand)/float64(base))
	}
	b.StopTimer()
	return r
}

// Get is a batch of HTTP load for Run: eight concurrent clients, sharing
// client's keep-alive connections, GET url(i) for each i in [0, n), read
// each body whole and fail b on an error or an answer other than 200.
func Get(b *testing.B, client *http.Client, n int, url func(i int) string) {
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				resp, err := client.Get(url(i))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("GET %s: status %d", url(i), resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
}
