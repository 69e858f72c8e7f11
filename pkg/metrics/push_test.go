package metrics

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Push, as a server's OnShutdown, sends the final figures of a whole
// shutdown, every family finalFamilies names and only those, to the group
// that names the job and the pod, replacing it (PUT).
func TestPushSendsTheFinalFiguresToThePodsGroup(t *testing.T) {
	var mu sync.Mutex
	var method, path string
	pushed := map[string]bool{}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		method, path = r.Method, r.URL.Path
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if err != io.EOF {
					t.Errorf("decoding the push: %v", err)
				}
				break
			}
			pushed[mf.GetName()] = true
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()

	reg := NewRegistry()
	lm, _ := NewLifespan(reg)
	h, _ := NewHTTP(reg)
	h.ObserveRequest("GET", "/api/v1/info", 200, time.Millisecond)
	a := &lifespan.App{Name: "berth", Observer: lm.OnEvent}
	a.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, sc *lifespan.Scope) (lifespan.StopFunc, error) {
		sc.Go("job", func(ctx context.Context) error { <-ctx.Done(); return nil })
		return func(context.Context) error { return nil }, nil
	}})
	srv, err := serve.New(serve.Config{Apps: lifespan.Group{a}, API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		DrainDelay: -1, PreStopDelay: 5 * time.Second, GracePeriod: 40 * time.Second, ShutdownOn: []os.Signal{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnShutdown: func(ctx context.Context, _ serve.ShutdownReport) error {
			return Push(ctx, nil, gw.URL, "berth-exit", map[string]string{"pod": "berth-7d9-x2"}, reg)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	<-srv.Signals().StartupComplete.Done()
	srv.Shutdown()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/metrics/job/berth-exit/pod/berth-7d9-x2" {
		t.Fatalf("%s %s, want PUT to the pod's group", method, path)
	}
	// Named here, not read from finalFamilies, so that dropping one there,
	// or widening a prefix, fails: the chart's alerts and dashboard read
	// each of these from the push, and a live family pushed (berth_ready
	// at 0, say) would outlive the pod and look like a pod not ready.
	final := []string{
		"berth_shutdown_duration_seconds", "berth_drain_duration_seconds", "berth_drain_served_during_delay",
		"berth_drain_in_flight_at_drain_start", "berth_drain_cut_off_requests", "berth_lifecycle_signal_timestamp_seconds",
		"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_task_failures_total",
		"berth_startup_duration_seconds", "berth_http_requests_total",
		"berth_shutdown_budget_seconds", "berth_grace_period_seconds", "berth_prestop_delay_seconds",
	}
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, mf := range gathered {
		name := mf.GetName()
		switch want := slices.Contains(final, name); {
		case want && !pushed[name]:
			t.Errorf("the push lacks %s", name)
		case !want && pushed[name]:
			t.Errorf("the push carries %s, which a scrape reads while the process lives", name)
		case !want && strings.HasPrefix(name, "berth_"):
			live++
		}
	}
	if live == 0 {
		t.Error("the registry had no live berth_ family, so the test showed none is left out")
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }))
	defer bad.Close()
	if err := Push(context.Background(), nil, bad.URL, "berth-exit", nil, reg); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a refused push = %v", err)
	}
}

// A collector of the caller's that fails at exit (a pool already closed)
// does not stop the push: the final figures gathered go, and Push returns
// the failure, naming it, and saying the rest were pushed only when they
// were (not to a gateway that refused the push).
func TestPushGoesOnPastAFailingCollector(t *testing.T) {
	var mu sync.Mutex
	var pushed []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				break
			}
			pushed = append(pushed, mf.GetName())
		}
	}))
	defer gw.Close()
	reg := NewRegistry()
	h, _ := NewHTTP(reg)
	h.ObserveRequest("GET", "/api/v1/info", 200, time.Millisecond)
	reg.MustRegister(failing{prometheus.NewDesc("app_db_pool_open", "open connections", nil, nil)})

	err := Push(context.Background(), nil, gw.URL, "berth-exit", map[string]string{"pod": "p"}, reg)
	if err == nil || !strings.Contains(err.Error(), "app_db_pool_open") || !strings.Contains(err.Error(), "pool closed") || !strings.Contains(err.Error(), "(the rest were pushed)") {
		t.Errorf("Push = %v, want the failing collector named, and the rest said to be pushed", err)
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "pushgateway overloaded", http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	err = Push(context.Background(), nil, refusing.URL, "berth-exit", map[string]string{"pod": "p"}, reg)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "pool closed") || strings.Contains(err.Error(), "were pushed") {
		t.Errorf("Push to a gateway that answered 503 = %v; want both failures, and no claim that the rest were pushed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(pushed, []string{"berth_http_requests_total"}) {
		t.Errorf("pushed %q, want the final figures gathered", pushed)
	}

	// With no final figure gathered, nothing is pushed (an empty PUT would
	// empty the group) and the failure is returned.
	only := prometheus.NewRegistry()
	only.MustRegister(failing{prometheus.NewDesc("app_db_pool_open", "open connections", nil, nil)})
	pushed = nil
	mu.Unlock()
	err = Push(context.Background(), nil, gw.URL, "berth-exit", map[string]string{"pod": "p"}, only)
	mu.Lock()
	if err == nil || !strings.Contains(err.Error(), "pool closed") || len(pushed) != 0 {
		t.Errorf("Push = %v, pushed %q; want the failure and no push", err, pushed)
	}
}

// Push sends nothing when it has nowhere to send, or nothing of berth's to
// send: an empty URL would reach a host named "metrics" (push.New reads ""
// as http:/), an empty PUT would empty the pod's group, and a nil gatherer
// (typed or not) would panic at shutdown. Each is an error that says what
// to pass.
func TestPushSendsNothingWithoutAURLOrFinalFigures(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, r.Method+" "+r.URL.String())
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	})
	withFigures := NewRegistry()
	if _, err := NewHTTP(withFigures); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, url string
		g         prometheus.Gatherer
		want      string
	}{
		{"no URL", "", withFigures, "metrics: Push: no Pushgateway URL; want http://HOST:PORT"},
		{"no gatherer", "http://gw:9091", nil, "metrics: Push with a nil prometheus.Gatherer: pass the registry that NewLifespan, NewHTTP and RegisterServer registered on"},
		{"a *prometheus.Registry declared, never made", "http://gw:9091", (*prometheus.Registry)(nil), "metrics: Push with a nil prometheus.Gatherer"},
		{"a registry without berth's metrics", "http://gw:9091", NewRegistry(), "metrics: Push: the gatherer holds none of berth's final figures"},
		{"the default registry", "http://gw:9091", prometheus.DefaultGatherer, "an empty push would empty the pod's group: pass the registry that NewLifespan, NewHTTP and RegisterServer registered on"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			sent = nil
			mu.Unlock()
			err := Push(context.Background(), &http.Client{Transport: rt}, tt.url, "berth-exit", map[string]string{"pod": "p"}, tt.g)
			mu.Lock()
			defer mu.Unlock()
			if err == nil || !strings.Contains(err.Error(), tt.want) || len(sent) != 0 {
				t.Fatalf("Push = %v, sent %q; want %q and nothing sent", err, sent, tt.want)
			}
		})
	}
}

// roundTripper is an http.RoundTripper of a function.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// failing is a collector whose every collection fails.
type failing struct{ desc *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("pool closed"))
}

// fakeGateway answers /api/v1/metrics as a Pushgateway does, with groups
// (grouping labels and push time, in seconds), and records the DELETEs it
// gets, each as the group it names (see groupOf); a group whose pod is
// failPod refuses its DELETE.
func fakeGateway(t *testing.T, groups []fakeGroup, failPod string) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var deletes []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/metrics":
			var data []map[string]any
			for _, g := range groups {
				series := maps.Clone(g.labels)
				series["instance"] = ""
				value := g.value
				if value == "" {
					value = strconv.FormatFloat(g.pushed, 'e', -1, 64)
				}
				pushTime := []any{map[string]any{"labels": series, "value": value}}
				if value == "none" {
					pushTime = nil
				}
				data = append(data, map[string]any{
					"labels": g.labels, "last_push_successful": true,
					"push_time_seconds": map[string]any{"type": "GAUGE", "metrics": pushTime},
				})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
		case r.Method == http.MethodDelete:
			mu.Lock()
			deletes = append(deletes, groupOf(t, r.URL.Path))
			mu.Unlock()
			if failPod != "" && strings.Contains(groupOf(t, r.URL.Path), "pod="+failPod) {
				http.Error(w, "refused", http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(gw.Close)
	return gw, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(deletes))
	}
}

type fakeGroup struct {
	labels map[string]string
	pushed float64 // unix seconds
	value  string  // the push time as listed, if not pushed's; "none": no push time at all
}

// Prune deletes exactly the groups of its job that match, pushed before
// its cutoff: nothing newer, of another namespace or of another job.
func TestPruneDeletesOnlyOldGroupsOfTheJobAndLabels(t *testing.T) {
	cutoff := time.Unix(1_800_000_000, 0)
	old, fresh := float64(cutoff.Unix()-60), float64(cutoff.Unix()+1)
	groups := []fakeGroup{
		{map[string]string{"job": "berth-exit", "namespace": "shop", "pod": "old-1"}, old, ""},
		{map[string]string{"job": "berth-exit", "namespace": "shop", "pod": "a/b"}, old, ""},
		{map[string]string{"job": "berth-exit", "namespace": "shop", "pod": "fresh"}, fresh, ""},
		{map[string]string{"job": "berth-exit", "namespace": "other", "pod": "old-2"}, old, ""},
		{map[string]string{"job": "batch", "namespace": "shop", "pod": "old-3"}, old, ""},
		{map[string]string{"job": "berth-exit", "pod": "no-namespace"}, old, ""},
		// Never pushed successfully: as old as can be. A push time that
		// cannot be read: kept, as nothing says it is old.
		{map[string]string{"job": "berth-exit", "namespace": "shop", "pod": "never"}, 0, "none"},
		{map[string]string{"job": "berth-exit", "namespace": "shop", "pod": "unreadable"}, 0, "soon"},
	}
	for _, tt := range []struct {
		name    string
		match   func(map[string]string) bool
		deletes []string
	}{
		{"one namespace", func(g map[string]string) bool { return g["namespace"] == "shop" }, []string{
			"job=berth-exit,namespace=shop,pod=a/b",
			"job=berth-exit,namespace=shop,pod=never",
			"job=berth-exit,namespace=shop,pod=old-1",
		}},
		{"every namespace", nil, []string{
			"job=berth-exit,namespace=other,pod=old-2",
			"job=berth-exit,namespace=shop,pod=a/b",
			"job=berth-exit,namespace=shop,pod=never",
			"job=berth-exit,namespace=shop,pod=old-1",
			"job=berth-exit,pod=no-namespace",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw, deletes := fakeGateway(t, groups, "")
			// The URL as push.New takes it too: with a trailing slash, or
			// without its scheme.
			url := gw.URL + "/"
			if tt.match == nil {
				url = strings.TrimPrefix(gw.URL, "http://")
			}
			deleted, err := Prune(t.Context(), nil, url, "berth-exit", tt.match, cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if got := deletes(); !slices.Equal(got, tt.deletes) {
				t.Errorf("DELETEs %q, want %q", got, tt.deletes)
			}
			if len(deleted) != len(tt.deletes) {
				t.Errorf("Prune reports %v deleted, want %d groups", deleted, len(tt.deletes))
			}
		})
	}
}

// A group that cannot be deleted does not stop the others; its failure is
// returned. A Pushgateway that cannot list its groups is an error naming
// what was asked.
func TestPruneReportsFailures(t *testing.T) {
	cutoff := time.Unix(1_800_000_000, 0)
	old := float64(cutoff.Unix() - 60)
	gw, deletes := fakeGateway(t, []fakeGroup{
		{map[string]string{"job": "berth-exit", "pod": "stuck"}, old, ""},
		{map[string]string{"job": "berth-exit", "pod": "gone"}, old, ""},
	}, "stuck")
	deleted, err := Prune(t.Context(), nil, gw.URL, "berth-exit", nil, cutoff)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("err = %v, want the refused DELETE's", err)
	}
	if len(deletes()) != 2 || len(deleted) != 1 || deleted[0]["pod"] != "gone" {
		t.Errorf("deleted %v after DELETEs %q; want the other group deleted", deleted, deletes())
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not a pushgateway", http.StatusNotFound)
	}))
	defer down.Close()
	_, err = Prune(t.Context(), nil, down.URL, "berth-exit", nil, cutoff)
	if err == nil || !strings.Contains(err.Error(), "GET "+down.URL+"/api/v1/metrics: 404 Not Found: not a pushgateway") {
		t.Errorf("err = %v, want the failed listing named", err)
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "data": []any{}})
	}))
	defer failing.Close()
	if _, err = Prune(t.Context(), nil, failing.URL, "berth-exit", nil, cutoff); err == nil || !strings.Contains(err.Error(), `status "error", want "success"`) {
		t.Errorf("err = %v, want the listing's failed status named", err)
	}
	if _, err = Prune(t.Context(), nil, "", "berth-exit", nil, cutoff); err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
		t.Errorf("err = %v, want the empty URL refused", err)
	}
}

// Prune's DELETEs run under its context: one that hangs is abandoned when
// the context ends, and Prune returns that context's error.
func TestPruneDeleteHonoursItsContext(t *testing.T) {
	cutoff := time.Unix(1_800_000_000, 0)
	listing, _ := fakeGateway(t, []fakeGroup{{map[string]string{"job": "berth-exit", "pod": "stuck"}, float64(cutoff.Unix() - 60), ""}}, "")
	arrived, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			listing.Config.Handler.ServeHTTP(w, r)
			return
		}
		first.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done(): // the client gave up
		case <-release: // the test's end, had it not
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(gw.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets a hung DELETE end before Close waits for it
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Prune(ctx, nil, gw.URL, "berth-exit", nil, cutoff)
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want the DELETE ended by its context (context.Canceled)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Prune still waits on a DELETE 10s after its context ended")
	}
}

// groupOf reads the group a Pushgateway path names (/metrics/job/J/k/v...,
// a value base64-encoded where its name ends in @base64) as its labels,
// sorted: "job=J,k=v".
func groupOf(t *testing.T, path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	var labels []string
	for i := 0; i+1 < len(parts); i += 2 {
		name, value := parts[i], parts[i+1]
		if n, ok := strings.CutSuffix(name, "@base64"); ok {
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
			name, value = n, string(b)
		}
		labels = append(labels, name+"="+value)
	}
	slices.Sort(labels)
	return strings.Join(labels, ",")
}

// Prune with no job deletes nothing, as no group lacks one: that is a
// caller's mistake (an unset variable), which Prune names, as Push does
// ("job name is empty"), rather than reporting a prune that did nothing
// as done.
func TestPruneRefusesAnEmptyJob(t *testing.T) {
	cutoff := time.Unix(1_800_000_000, 0)
	gw, deletes := fakeGateway(t, []fakeGroup{
		{map[string]string{"job": "berth-exit", "pod": "old"}, float64(cutoff.Unix() - 60), ""},
	}, "")
	deleted, err := Prune(t.Context(), nil, gw.URL, "", nil, cutoff)
	if err == nil || !strings.Contains(err.Error(), "job") {
		t.Errorf("Prune with job \"\" = %v, %v after DELETEs %q; want an error naming the empty job", deleted, err, deletes())
	}
}
