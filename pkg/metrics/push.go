package metrics

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
)

// finalFamilies are the figures a process knows for certain only as it
// exits, and that no scrape may see: how the shutdown went (its duration,
// each stop hook's duration and outcome, the drain report, the time of
// every lifecycle signal), with the startup's and the requests served for
// the whole life of the process.
var finalFamilies = []string{
	"berth_shutdown_duration_seconds", "berth_drain_", "berth_lifecycle_signal_timestamp_seconds",
	"berth_hook_duration_seconds", "berth_hook_failures_total", "berth_task_failures_total",
	"berth_startup_duration_seconds", "berth_http_requests_total",
	"berth_shutdown_budget_seconds", "berth_grace_period_seconds", "berth_prestop_delay_seconds",
}

// final is a Gatherer of g's final figures only.
type final struct{ g prometheus.Gatherer }

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
	return out, err
}

// Push sends the final figures gathered from g to the Pushgateway at url,
// replacing the group that job and grouping name (the pod, so replicas do
// not overwrite each other), so they outlive the process: pass it, bounded
// by its context, as serve.Config.OnShutdown. Only the shutdown's figures,
// the startup's and the requests' counters go; a scrape reads the rest
// while the process lives.
func Push(ctx context.Context, client *http.Client, url, job string, grouping map[string]string, g prometheus.Gatherer) error {
	if client == nil {
		client = http.DefaultClient
	}
	p := push.New(url, job).Gatherer(final{g}).Client(client)
	for k, v := range grouping {
		p = p.Grouping(k, v)
	}
	return p.PushContext(ctx)
}
