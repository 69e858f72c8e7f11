package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
)

// finalFamilies are what Push sends: the figures a process knows for
// certain only as it exits, which no scrape may see (how the shutdown
// went: its duration, each stop hook's duration and outcome, the drain
// report, the time of every lifecycle signal), with what explains them
// (the shutdown's budget, the pod's grace period and preStop delay, which
// a scrape reads too) and the process's lifetime totals (its startup, its
// hooks' and tasks' failures, the requests it served).
var finalFamilies = []string{
	"berth_shutdown_duration_seconds", "berth_drain_", "berth_lifecycle_signal_timestamp_seconds",
	"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_task_failures_total",
	"berth_startup_duration_seconds", "berth_http_requests_total",
	"berth_shutdown_budget_seconds", "berth_grace_period_seconds", "berth_prestop_delay_seconds",
}

// final is a Gatherer of g's final figures only. A collector that fails
// (the registry is the caller's: one of its own collectors may read a
// resource closed at exit) does not stop the push of what was gathered:
// its error is kept in err for Push to return. A gathering that found no
// final figure fails, whether or not a collector did: its push, empty,
// would empty the pod's group.
type final struct {
	g   prometheus.Gatherer
	err *error
}

func (f final) Gather() ([]*dto.MetricFamily, error) {
	all, err := f.g.Gather()
	var out []*dto.MetricFamily
	for _, mf := range all {
		for _, name := range finalFamilies {
			if strings.HasPrefix(mf.GetName(), name) {
				out = append(out, mf)
				break
			}
		}
	}
	switch {
	case len(out) == 0:
		return nil, errors.Join(fmt.Errorf("metrics: Push: the gatherer holds none of berth's final figures (%s...), and an empty push would empty the pod's group: pass the registry that NewLifespan, NewHTTP and RegisterServer registered on", strings.Join(finalFamilies[:3], ", ")), err)
	case err != nil:
		*f.err = err
	}
	return out, nil
}

// Push sends the final figures gathered from g to the Pushgateway at url,
// replacing the group that job and grouping name (the pod, so replicas do
// not overwrite each other; not a label the figures carry, such as app,
// hook, phase, task, signal, method, route or code, for which
// client_golang refuses the push), so they outlive the process: pass it, bounded
// by its context, as serve.Config.OnShutdown. Only the families that
// describe the exit go: the shutdown's figures, its budget, grace period
// and preStop delay, every lifecycle signal's time, the hooks' durations
// and failures, the tasks' failures, the startup's duration and the
// request counters; a scrape reads the rest while the process lives. When
// some collector of g fails, the figures gathered are pushed all the same
// and Push returns the failure. With no url, no g, or none of those
// families in g (a registry berth's metrics were not registered on), Push
// sends nothing and says so.
func Push(ctx context.Context, client *http.Client, url, job string, grouping map[string]string, g prometheus.Gatherer) error {
	if client == nil {
		client = http.DefaultClient
	}
	if url == "" {
		return errors.New("metrics: Push: no Pushgateway URL; want http://HOST:PORT")
	}
	if isNil(g) {
		return errors.New("metrics: Push with a nil prometheus.Gatherer: pass the registry that NewLifespan, NewHTTP and RegisterServer registered on")
	}
	var gatherErr error
	err := pusher(url, job, grouping, client).Gatherer(final{g, &gatherErr}).PushContext(ctx)
	if gatherErr != nil {
		sent := " (the rest were pushed)"
		if err != nil {
			sent = ""
		}
		gatherErr = fmt.Errorf("metrics: Push: some figures could not be gathered%s: %w", sent, gatherErr)
	}
	return errors.Join(err, gatherErr)
}

// Prune deletes from the Pushgateway at url every group of job for whose
// grouping labels match returns true (nil matches every group) and whose
// last push came before before, and returns the grouping labels of the
// groups it deleted. A Pushgateway keeps a group until it is deleted;
// Prune, run now and then, keeps the pods that exited long ago from piling
// up there. Groups of other jobs, and those match refuses, are left alone.
// It goes on past a group it fails to delete and returns every failure;
// an empty url or job is refused (every group has a job: with none,
// nothing would be deleted).
// url is read as Push reads it: without a scheme, it is http.
func Prune(ctx context.Context, client *http.Client, url, job string, match func(grouping map[string]string) bool, before time.Time) ([]map[string]string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if url == "" {
		return nil, errors.New("metrics: Prune: no Pushgateway URL; want http://HOST:PORT")
	}
	if job == "" {
		// Every group has a job: with none, Prune would delete nothing and
		// report it done.
		return nil, errors.New("metrics: Prune: no job; want the job Push was given (the reference service's is berth-exit)")
	}
	if !strings.Contains(url, "://") {
		url = "http://" + url // as push.New reads it, for Push
	}
	groups, err := listGroups(ctx, client, url)
	if err != nil {
		return nil, err
	}
	var deleted []map[string]string
	var errs []error
	for _, g := range groups {
		if g.Labels["job"] != job || match != nil && !match(g.Labels) || !g.pushedBefore(before) {
			continue
		}
		grouping := maps.Clone(g.Labels)
		delete(grouping, "job") // the group's URL names it apart
		if err := pusher(url, job, grouping, contextDoer{ctx, client}).Delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, g.Labels)
	}
	return deleted, errors.Join(errs...)
}

// pusher addresses the Pushgateway group that job and grouping name.
func pusher(url, job string, grouping map[string]string, client push.HTTPDoer) *push.Pusher {
	p := push.New(url, job).Client(client)
	for k, v := range grouping {
		p = p.Grouping(k, v)
	}
	return p
}

// group is one group in the Pushgateway's /api/v1/metrics answer: its
// grouping labels (job among them) and the time of its last successful
// push.
type group struct {
	Labels   map[string]string `json:"labels"`
	PushTime struct {
		Metrics []struct {
			Value string `json:"value"`
		} `json:"metrics"`
	} `json:"push_time_seconds"`
}

// pushedBefore reports whether g's last successful push came before t. A
// group with no successful push (push_time_seconds 0 or missing) did.
func (g group) pushedBefore(t time.Time) bool {
	if len(g.PushTime.Metrics) == 0 {
		return true
	}
	secs, err := strconv.ParseFloat(g.PushTime.Metrics[0].Value, 64)
	if err != nil {
		return false // unreadable: keep it
	}
	return secs < float64(t.UnixNano())/1e9
}

// listGroups reads every group the Pushgateway at url holds.
func listGroups(ctx context.Context, client *http.Client, url string) ([]group, error) {
	api := strings.TrimSuffix(url, "/") + "/api/v1/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("listing the Pushgateway's groups: GET %s: %s: %s", api, resp.Status, strings.TrimSpace(string(body)))
	}
	var answer struct {
		Status string  `json:"status"`
		Data   []group `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("listing the Pushgateway's groups: GET %s: reading the answer: %w", api, err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("listing the Pushgateway's groups: GET %s: status %q, want \"success\"", api, answer.Status)
	}
	return answer.Data, nil
}

// contextDoer sends push's requests, which carry no context, under ctx.
type contextDoer struct {
	ctx    context.Context
	client *http.Client
}

func (d contextDoer) Do(req *http.Request) (*http.Response, error) {
	return d.client.Do(req.WithContext(d.ctx))
}
