//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"sigs.k8s.io/e2e-framework/klient/wait"
)

// outcome is one request the load or the writer made: when it was
// answered, and whether it succeeded.
type outcome struct {
	at time.Time // when the request was sent
	ok bool
}

// timeline records a disruption as it happens (each pod's readiness) and
// draws it once it is over, with the requests' outcomes, the requests in
// flight per pod (from Prometheus) and each replaced pod's lifecycle
// signals (pushed at its exit).
type timeline struct {
	name  string
	c     *cluster
	began time.Time
	stop  chan struct{}
	halt  func() // closes stop, once: at finish, or when the scenario ends without it
	done  chan struct{}

	mu    sync.Mutex
	ready map[string][]plotter.XY // pod -> (seconds, 1 ready / 0 not)
}

// recordTimeline polls the main release's pods' readiness for a plot,
// until finish, or until t ends (a step that failed before finish).
func (c *cluster) recordTimeline(t *testing.T, name string) *timeline {
	tl := &timeline{name: name, c: c, began: time.Now(), stop: make(chan struct{}), done: make(chan struct{}), ready: map[string][]plotter.XY{}}
	tl.halt = sync.OnceFunc(func() { close(tl.stop) })
	t.Cleanup(func() { tl.halt(); <-tl.done })
	go func() {
		defer close(tl.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			pods, err := c.pods(ctx, mainNamespace, mainRelease)
			cancel()
			if err == nil {
				x := time.Since(tl.began).Seconds()
				tl.mu.Lock()
				for _, p := range pods {
					y := 0.0
					if podReady(p) && p.DeletionTimestamp == nil {
						y = 1
					}
					tl.ready[p.Name] = append(tl.ready[p.Name], plotter.XY{X: x, Y: y})
				}
				tl.mu.Unlock()
			}
			select {
			case <-tl.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return tl
}

// finish stops recording and writes the plot to the artifacts folder.
func (tl *timeline) finish(t *testing.T, outcomes []outcome) {
	t.Helper()
	tl.halt()
	<-tl.done
	end := time.Now()
	p := newProm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // the plot is a by-product: never a hang
	defer cancel()
	// The last samples reach Prometheus a scrape or two later: wait until
	// it holds one taken at end or after.
	q := `max(timestamp(berth_http_requests_in_flight{job="berth", namespace="berth"}))`
	if err := wait.For(func(ctx context.Context) (bool, error) {
		v, err := p.query(ctx, q)
		return err == nil && len(v) == 1 && float64(v[0].Value) >= float64(end.Unix()), nil
	}, wait.WithTimeout(30*time.Second), wait.WithInterval(250*time.Millisecond)); err != nil {
		t.Logf("plot %s: Prometheus has no sample from the end of the scenario yet; the plot may end early", tl.name)
	}
	inFlight, _, _, err := p.api.QueryRange(ctx, `berth_http_requests_in_flight{job="berth", namespace="berth"}`,
		promv1.Range{Start: tl.began, End: end, Step: time.Second})
	if err != nil {
		t.Logf("plot %s: in-flight requests: %v", tl.name, err)
	}
	pods := slices.Sorted(func(yield func(string) bool) {
		for name := range tl.ready {
			if !yield(name) {
				return
			}
		}
	})
	signals, err := p.query(ctx, fmt.Sprintf(`berth_lifecycle_signal_timestamp_seconds{job="berth-exit", pod=~%q}`, strings.Join(pods, "|")))
	if err != nil {
		t.Logf("plot %s: signals: %v", tl.name, err)
	}
	path, err := tl.draw(outcomes, inFlight, signals, end)
	if err != nil {
		t.Errorf("plot %s: %v", tl.name, err)
		return
	}
	t.Logf("plot of %s: %s", tl.name, path)
}

var (
	okColor     = color.RGBA{G: 150, A: 255}
	failedColor = color.RGBA{R: 200, A: 255}
	marks       = []struct {
		signal, label string
		color         color.Color
	}{
		{"ShutdownInitiated", "SIGTERM", color.RGBA{R: 200, A: 255}},
		{"ReadinessFailing", "readiness failing", color.RGBA{R: 230, G: 140, A: 255}},
		{"InFlightDrained", "drain done", color.RGBA{B: 200, A: 255}},
		{"ShutdownComplete", "exit", color.Gray{Y: 60}},
	}
)

func podColor(i int) color.Color {
	palette := []color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
		color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
		color.RGBA{R: 227, G: 119, B: 194, A: 255}, color.RGBA{R: 127, G: 127, B: 127, A: 255}, color.RGBA{R: 188, G: 189, B: 34, A: 255}}
	return palette[i%len(palette)]
}

func (tl *timeline) draw(outcomes []outcome, inFlight model.Value, signals model.Vector, end time.Time) (string, error) {
	secs := func(at time.Time) float64 { return at.Sub(tl.began).Seconds() }
	span := end.Sub(tl.began).Seconds()

	// Requests per second by outcome and time sent, in half-second
	// buckets, up to the last request sent: a last, partial bucket would
	// draw a false dip, so only whole ones are drawn.
	const bucket = 0.5
	sentSpan := 0.0
	for _, o := range outcomes {
		sentSpan = max(sentSpan, secs(o.at))
	}
	n := max(int(min(span, sentSpan)/bucket), 1)
	okPerBucket, failedPerBucket := make([]float64, n), make([]float64, n)
	for _, o := range outcomes {
		i := int(secs(o.at) / bucket)
		if i < 0 || i >= n {
			continue
		}
		if o.ok {
			okPerBucket[i]++
		} else {
			failedPerBucket[i]++
		}
	}
	rates := plot.New()
	rates.Title.Text = tl.name + ": requests per second"
	rates.Y.Label.Text = "req/s"
	for _, series := range []struct {
		name   string
		counts []float64
		color  color.Color
	}{{"succeeded", okPerBucket, okColor}, {"failed", failedPerBucket, failedColor}} {
		xys := make(plotter.XYs, n)
		for i, c := range series.counts {
			xys[i] = plotter.XY{X: float64(i) * bucket, Y: c / bucket}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return "", err
		}
		l.Color = series.color
		rates.Add(l)
		rates.Legend.Add(series.name, l)
	}

	// Each pod's readiness, a lane per pod.
	readiness := plot.New()
	readiness.Title.Text = "readiness (a lane per pod: up while Ready)"
	readiness.Y.Label.Text = "pod"
	tl.mu.Lock()
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range tl.ready {
			if !yield(name) {
				return
			}
		}
	})
	colorOf := map[string]color.Color{}
	for i, name := range names {
		colorOf[name] = podColor(i)
		xys := make(plotter.XYs, 0, len(tl.ready[name]))
		for _, s := range tl.ready[name] {
			xys = append(xys, plotter.XY{X: s.X, Y: float64(i) + 0.7*s.Y})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			tl.mu.Unlock()
			return "", err
		}
		l.Color = colorOf[name]
		l.Width = vg.Points(2)
		readiness.Add(l)
		readiness.Legend.Add(shortPod(name), l)
	}
	tl.mu.Unlock()

	// Requests in flight per pod, from Prometheus.
	flight := plot.New()
	flight.Title.Text = "requests in flight per pod (Prometheus)"
	flight.Y.Label.Text = "in flight"
	flight.X.Label.Text = "seconds"
	if m, ok := inFlight.(model.Matrix); ok {
		for _, stream := range m {
			pod := string(stream.Metric["pod"])
			xys := make(plotter.XYs, 0, len(stream.Values))
			for _, v := range stream.Values {
				xys = append(xys, plotter.XY{X: secs(v.Timestamp.Time()), Y: float64(v.Value)})
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return "", err
			}
			if c, ok := colorOf[pod]; ok {
				l.Color = c
			}
			flight.Add(l)
		}
	}

	// The replaced pods' lifecycle signals, marked on every panel.
	legendDone := map[string]bool{}
	for _, s := range signals {
		for _, m := range marks {
			if string(s.Metric["signal"]) != m.signal {
				continue
			}
			x := secs(time.Unix(0, int64(float64(s.Value)*1e9)))
			if x < 0 || x > span {
				continue
			}
			for _, pl := range []*plot.Plot{rates, readiness, flight} {
				l, _ := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: max(1, pl.Y.Max)}})
				l.Color = m.color
				l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
				pl.Add(l)
				if pl == rates && !legendDone[m.label] {
					rates.Legend.Add(m.label, l)
					legendDone[m.label] = true
				}
			}
		}
	}
	for _, pl := range []*plot.Plot{rates, readiness, flight} {
		pl.X.Min, pl.X.Max = 0, span
		pl.Legend.Top = true
		pl.Add(plotter.NewGrid())
	}

	img := vgimg.New(vg.Points(900), vg.Points(720))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadX: vg.Points(6), PadY: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{{rates}, {readiness}, {flight}}, tiles, dc)
	rates.Draw(canvases[0][0])
	readiness.Draw(canvases[1][0])
	flight.Draw(canvases[2][0])

	dir := artifacts
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path, _ := filepath.Abs(filepath.Join(dir, strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "", ":", "").Replace(tl.name)+".png"))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return "", err
	}
	return path, nil
}

// shortPod is a pod's name without its release and template hash.
func shortPod(name string) string {
	if i := strings.LastIndex(name, "-"); i >= 0 {
		return name[i+1:]
	}
	return name
}
