package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/redact"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
)

// maxPruneAge bounds prune-pushgateway's OLDER_THAN: a year.
const maxPruneAge = 366 * 24 * time.Hour

// pruneTimeout bounds a whole prune: the listing and every deletion.
const pruneTimeout = time.Minute

// runPrune is `server prune-pushgateway OLDER_THAN`, run by the chart's
// CronJob: it deletes from the Pushgateway at BERTH_PUSHGATEWAY_URL the
// groups of job berth-exit (the figures pods push as they exit), of
// POD_NAMESPACE's pods when it is set, last pushed more than OLDER_THAN (a
// Go duration) ago. It reads its variables as the service does and refuses
// what the service refuses. Exit codes: 0 when every such group is gone, 1
// when the groups could not be listed or one could not be deleted, 2 for a
// bad argument or variable.
func runPrune(args []string, env map[string]string, log *slog.Logger) int {
	const usage = "usage: server prune-pushgateway OLDER_THAN   (a Go duration, such as 2h; the Pushgateway is BERTH_PUSHGATEWAY_URL)"
	if len(args) != 1 {
		log.Error("refusing to prune", "error", usage)
		return serve.ExitConfig
	}
	age, err := time.ParseDuration(args[0])
	if err != nil || age < 0 || age > maxPruneAge {
		log.Error("refusing to prune", "error", "OLDER_THAN="+args[0]+": want a Go duration from 0s to "+maxPruneAge.String()+", such as 2h", "usage", usage)
		return serve.ExitConfig
	}
	cfg, err := config.Load(env)
	if err != nil {
		log.Error("refusing to prune", refusal(err)...)
		return serve.ExitConfig
	}
	if cfg.PushgatewayURL == "" {
		log.Error("refusing to prune", "error", "BERTH_PUSHGATEWAY_URL is not set: want the Pushgateway's http:// or https:// URL, such as http://pushgateway:9091")
		return serve.ExitConfig
	}
	var match map[string]string
	if cfg.PodNamespace != "" {
		match = map[string]string{"namespace": cfg.PodNamespace}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pruneTimeout)
	defer cancel()
	before := time.Now().Add(-age)
	deleted, err := metrics.Prune(ctx, nil, cfg.PushgatewayURL, config.PushJob, match, before)
	for _, g := range deleted {
		log.Info("pushgateway-group-deleted", "job", g["job"], "namespace", g["namespace"], "pod", g["pod"])
	}
	where := redact.URL(cfg.PushgatewayURL)
	if err != nil {
		log.Error("pruning the Pushgateway failed", "pushgateway", where, "deleted", len(deleted), "error", redact.Error(err, cfg.PushgatewayURL))
		return 1
	}
	log.Info("pruned the Pushgateway", "pushgateway", where, "job", config.PushJob, "namespace", cfg.PodNamespace,
		"older_than", age, "deleted", len(deleted))
	return 0
}
