package main

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/redact"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
)

// pruneTimeout bounds a whole prune: the listing and every deletion.
const pruneTimeout = time.Minute

// runPrune is `server prune-pushgateway OLDER_THAN [DEPLOYMENT]`, run by
// the chart's CronJob: it deletes from the Pushgateway at
// BERTH_PUSHGATEWAY_URL the groups of job berth-exit (the figures pods push
// as they exit), of POD_NAMESPACE's pods when it is set, and of
// DEPLOYMENT's pods when it is given, last pushed more than OLDER_THAN (a
// Go duration) ago. With DEPLOYMENT, another release in the namespace
// keeps its groups for as long as its own prune says. It reads its
// variables as the service does and refuses what the service refuses. Exit
// codes: 0 when every such group is gone, 1 when the groups could not be
// listed or one could not be deleted, 2 for a bad argument or variable.
func runPrune(args []string, env map[string]string, log *slog.Logger) int {
	const usage = "usage: server prune-pushgateway OLDER_THAN [DEPLOYMENT]   (a Go duration, such as 2h, and the name of the Deployment whose pods' groups to delete; the Pushgateway is BERTH_PUSHGATEWAY_URL)"
	if len(args) < 1 || len(args) > 2 {
		log.Error("refusing to prune", "error", usage)
		return serve.ExitConfig
	}
	age, err := time.ParseDuration(args[0])
	if err != nil || age < 0 || age > config.MaxPruneAge {
		log.Error("refusing to prune", "error", "OLDER_THAN="+args[0]+": want a Go duration from 0s to "+config.MaxPruneAge.String()+", such as 2h", "usage", usage)
		return serve.ExitConfig
	}
	var deployment *regexp.Regexp
	if len(args) == 2 {
		if len(args[1]) > 253 || !dnsSubdomain.MatchString(args[1]) {
			log.Error("refusing to prune", "error", fmt.Sprintf("DEPLOYMENT=%q: want a Deployment's name (lowercase letters, digits, '-' and '.', at most 253)", args[1]), "usage", usage)
			return serve.ExitConfig
		}
		deployment = podsOf(args[1])
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
	match := func(g map[string]string) bool {
		return (cfg.PodNamespace == "" || g["namespace"] == cfg.PodNamespace) && (deployment == nil || deployment.MatchString(g["pod"]))
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
		"deployment", strings.Join(args[1:], ""), "older_than", age, "deleted", len(deleted))
	return 0
}

// dnsSubdomain is a Kubernetes object name (RFC 1123 subdomain).
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// podsOf matches the names of a Deployment's pods: NAME-HASH-XXXXX (the
// ReplicaSet's pod-template hash, then five random characters), where
// Kubernetes cuts what comes before the five to 58 characters, the hash
// and even NAME with it. Kubernetes writes both the hash and the five in
// its safe alphabet (safeChars), so another Deployment NAME-x's pods
// (NAME-x-HASH-XXXXX, cut or not) do not match unless x itself is written
// in it: names alone cannot settle that one case, where "NAME-x-" is cut
// to what NAME's pods read when their hash starts with x (a hash of 1 to
// 10 characters; most are 9 or 10).
func podsOf(deployment string) *regexp.Regexp {
	const maxBase = 58 // Kubernetes's generated names: a base of at most 58, then 5
	base := deployment + "-"
	if len(base) >= maxBase {
		return regexp.MustCompile("^" + regexp.QuoteMeta(base[:maxBase]) + safeChars + "{5}$")
	}
	return regexp.MustCompile("^" + regexp.QuoteMeta(base) + safeChars + "{0,10}-?" + safeChars + "{5}$")
}

// safeChars is the alphabet Kubernetes writes pod-template hashes and the
// random ends of generated names in (k8s.io/apimachinery's rand package):
// no vowels, and none of 0, 1 and 3, so no word is spelt by chance.
const safeChars = "[bcdfghjklmnpqrstvwxz2456789]"
