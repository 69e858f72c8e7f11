//go:build e2e

// Package e2e proves berth on a real kind cluster: readiness gating, zero
// failed requests through rolling updates and pod deletions under load
// (beside a control run with the drain disabled, and the quiet-period
// drain), startup failure and rollback, native and classic sidecars,
// metrics, and `helm test` in a Pod Security "restricted" namespace.
//
// `go test -tags e2e -timeout 30m .` (from this module) is the whole run
// (go test's default timeout of 10m is too short for it): TestMain creates
// a kind cluster from deploy/kind/cluster.yaml with kind's Go package,
// builds the service image, loads it into the nodes, installs the chart,
// runs the suite and deletes the cluster, also when a test fails, when the
// run is interrupted, and shortly before the -timeout would end it. A test
// that panics leaves the cluster; the next run deletes a same-named one
// first. Settings, from the environment:
//
//	KIND_NODE_IMAGE    node image (default kindest/node:v1.34.0)
//	GO_IMAGE           builder image for the Dockerfile (default golang:1.26-bookworm)
//	RUNTIME_IMAGE      runtime image for the Dockerfile (default distroless static:nonroot)
//	POSTGRES_IMAGE     the bundled PostgreSQL's image (default postgres:15)
//	PROMETHEUS_IMAGE   the e2e's Prometheus (default prom/prometheus:v3.16.0)
//	PUSHGATEWAY_IMAGE  the e2e's Pushgateway (default prom/pushgateway:v1.5.1)
//	E2E_CLUSTER        cluster name (default berth-e2e)
//	E2E_REUSE_CLUSTER  name of an existing cluster to use and keep, for fast iteration
//	                   (the image built is then tagged e2e-UNIXTIME, so pods left by
//	                   an earlier run, which IfNotPresent would keep on the old build,
//	                   are rolled onto the new one)
//	E2E_IMAGE          an image already built to use instead of building one
//	E2E_ARTIFACTS      where logs go on failure (default ../e2e-artifacts)
package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"
	"sigs.k8s.io/yaml"
)

var (
	testenv          env.Environment
	clusterName      = envOr("E2E_CLUSTER", "berth-e2e")
	imageRepo        = "berth"
	imageTag         = "e2e"
	postgresImage    = envOr("POSTGRES_IMAGE", "postgres:15")
	prometheusImage  = envOr("PROMETHEUS_IMAGE", "prom/prometheus:v3.16.0")
	pushgatewayImage = envOr("PUSHGATEWAY_IMAGE", "prom/pushgateway:v1.5.1")
	// pushgatewayURL is where berth's pods push their final figures.
	pushgatewayURL = "http://pushgateway.monitoring.svc:9091"
	// prometheusURL is the e2e's Prometheus, on its NodePort, where the
	// cluster maps that to the host (see hostURL).
	prometheusURL string
	mainNamespace = "berth"
	artifacts     = envOr("E2E_ARTIFACTS", filepath.Join("..", "e2e-artifacts"))
	// apiURL is the release's NodePort, where the cluster maps that to
	// the host (see hostURL).
	apiURL string
)

const (
	repoRoot    = ".."
	chartPath   = "../deploy/helm/berth"
	kindConfig  = "../deploy/kind/cluster.yaml"
	mainRelease = "berth"
	// The node ports deploy/kind/cluster.yaml maps to the host: the main
	// release's API, and the e2e's Prometheus (testdata/monitoring.yaml).
	apiNodePort        = 30080
	prometheusNodePort = 30090
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

// run brings the cluster up, runs the suite and tears the cluster down.
func run(m *testing.M) (code int) {
	provider := kindcluster.NewProvider(kindcluster.ProviderWithLogger(kindcmd.NewLogger()))
	reuse := os.Getenv("E2E_REUSE_CLUSTER")
	if reuse != "" {
		clusterName = reuse
	}
	teardown := func() {
		if reuse == "" {
			if err := provider.Delete(clusterName, ""); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: deleting cluster %s: %v\n", clusterName, err)
			}
		}
	}
	// go test panics the binary at -timeout after m.Run begins, and its go
	// command kills it a minute past -timeout from the binary's start, the
	// setup included; both go past any teardown. Stop the run a few
	// minutes before the earlier of the two, exporting the logs (once the
	// cluster is up) and deleting the cluster. (A test that panics still
	// leaves the cluster; the next run deletes a same-named one first.)
	var ready atomic.Pointer[envconf.Config]
	flag.Parse()
	if limit := testTimeout(); limit > 0 {
		margin := min(limit/10, 3*time.Minute)
		stop := time.AfterFunc(limit-margin, func() {
			fmt.Fprintf(os.Stderr, "e2e: the run is %v from go test's -timeout (%v): exporting logs, deleting the cluster and stopping\n", margin, limit)
			if cfg := ready.Load(); cfg != nil {
				reportLogs(cfg, provider)
			}
			teardown()
			os.Exit(1)
		})
		defer stop.Stop()
	}
	// An interrupt (Ctrl-C, or CI cancelling the job) still deletes the cluster.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupted)
	go func() {
		if sig, ok := <-interrupted; ok {
			fmt.Fprintf(os.Stderr, "e2e: %v: deleting the cluster before exiting\n", sig)
			teardown()
			os.Exit(130)
		}
	}()

	// The logs can be exported from the moment the cluster's kubeconfig is
	// written: a setup that fails after it (the chart's install, say)
	// keeps its pods' logs and events.
	err := up(provider, reuse, func(kubeconfig string) { ready.Store(envconf.NewWithKubeConfig(kubeconfig)) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setting up: %v\n", err)
		if cfg := ready.Load(); cfg != nil {
			reportLogs(cfg, provider)
		}
		teardown()
		return 1
	}
	cfg := ready.Load()
	testenv = env.NewWithConfig(cfg)
	code = testenv.Run(m)
	if dir, err := filepath.Abs(artifacts); err == nil {
		fmt.Fprintf(os.Stderr, "e2e: plots of every disruption in %s\n", dir)
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "e2e: FAILED")
		reportLogs(cfg, provider)
	}
	teardown()
	return code
}

// reportLogs exports the cluster's and the pods' logs and says where, or
// what kept them from being written (a partial export says so too).
func reportLogs(cfg *envconf.Config, provider *kindcluster.Provider) {
	dir, err := exportLogs(cfg, provider)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: exporting logs to %s: %v\n", dir, err)
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster and pod logs exported to %s\n", dir)
}

// testTimeout is go test's -timeout for this run, 0 for none.
func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	d, _ := f.Value.(flag.Getter).Get().(time.Duration)
	return d
}

// up creates (or reuses) the cluster while the image builds, loads the
// image into every node, and installs the chart; it hands the path of the
// cluster's kubeconfig to written as soon as it is written.
func up(provider *kindcluster.Provider, reuse string, written func(kubeconfig string)) error {
	image := os.Getenv("E2E_IMAGE")
	var wg sync.WaitGroup
	var buildErr error
	if image == "" {
		if reuse != "" {
			// A tag of its own: under the same tag, the chart (pullPolicy
			// IfNotPresent) would keep the release's pods on the image an
			// earlier run loaded, and its values unchanged would roll none.
			imageTag = fmt.Sprintf("e2e-%d", time.Now().Unix())
		}
		image = imageRepo + ":" + imageTag
		wg.Go(func() { buildErr = buildImage(image) })
	}
	imageRepo, imageTag = splitImage(image)
	var clusterErr error
	if reuse == "" {
		_ = provider.Delete(clusterName, "") // a same-named cluster left by an earlier run
		var cfg *v1alpha4.Cluster
		if cfg, clusterErr = clusterConfig(); clusterErr == nil {
			clusterErr = provider.Create(clusterName,
				kindcluster.CreateWithV1Alpha4Config(cfg),
				kindcluster.CreateWithNodeImage(envOr("KIND_NODE_IMAGE", "kindest/node:v1.34.0")),
				kindcluster.CreateWithWaitForReady(3*time.Minute),
				kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false))
		}
	}
	wg.Wait()
	if err := errors.Join(buildErr, clusterErr); err != nil {
		return err
	}
	var apiErr, promErr error
	apiURL, apiErr = hostURL(provider, apiNodePort)
	prometheusURL, promErr = hostURL(provider, prometheusNodePort)
	if err := errors.Join(apiErr, promErr); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e: the API is on %s, Prometheus on %s\n", apiURL, prometheusURL)
	kubeconfig, err := writeKubeconfig(provider)
	if err != nil {
		return err
	}
	written(kubeconfig)
	if err := loadImage(provider, image); err != nil {
		return err
	}
	// Nodes that cannot pull get the other images from the local Docker;
	// elsewhere, without them locally, the cluster pulls them as usual.
	for _, img := range []string{postgresImage, prometheusImage, pushgatewayImage} {
		if command(nil, "docker", "image", "inspect", img) == nil {
			if err := loadImage(provider, img); err != nil {
				return err
			}
		}
	}
	if reuse != "" {
		// A run ended by an interrupt or the timeout exits without its
		// cleanups, and may have left a worker cordoned by the drain
		// scenario: this run's pods would not schedule there.
		out, err := exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "-o", "name").Output()
		if err != nil {
			return fmt.Errorf("listing the reused cluster's nodes: %w", err)
		}
		for _, node := range strings.Fields(string(out)) {
			if err := command([]string{"KUBECONFIG=" + kubeconfig}, "kubectl", "uncordon", node); err != nil {
				return err
			}
		}
	}
	if err := deployMonitoring(kubeconfig); err != nil {
		return err
	}
	return installMain(kubeconfig)
}

// clusterConfig is deploy/kind/cluster.yaml with its host ports left
// open (0), for which kind picks free ones: the fixed ports it names (those
// the README uses with `make kind-up`) may be taken on this machine, by
// such a cluster or by another run. hostURL finds where each node port
// went.
func clusterConfig() (*v1alpha4.Cluster, error) {
	raw, err := os.ReadFile(kindConfig)
	if err != nil {
		return nil, err
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kindConfig, err)
	}
	for i := range cfg.Nodes {
		for j := range cfg.Nodes[i].ExtraPortMappings {
			cfg.Nodes[i].ExtraPortMappings[j].HostPort = 0
		}
	}
	return &cfg, nil
}

// hostURL is the http URL on this machine of the cluster's node port: the
// host port a node's container maps it to, as Docker reports it (the free
// one kind picked for a cluster the e2e made, the fixed one for a reused
// cluster of `make kind-up`).
func hostURL(provider *kindcluster.Provider, nodePort int) (string, error) {
	nodes, err := provider.ListNodes(clusterName)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		out, err := exec.Command("docker", "port", n.String(), fmt.Sprintf("%d/tcp", nodePort)).Output()
		if err != nil {
			continue // not mapped on this node
		}
		// One line per address, such as 127.0.0.1:32768 or 0.0.0.0:32768.
		addr, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("docker port %s %d/tcp: %q: %w", n.String(), nodePort, out, err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	return "", fmt.Errorf("no node of cluster %s maps node port %d to this machine (deploy/kind/cluster.yaml's extraPortMappings do)", clusterName, nodePort)
}

// buildImage builds the service image from the repository's Dockerfile.
func buildImage(image string) error {
	args := []string{"build", "-t", image,
		"--build-arg", "GO_IMAGE=" + envOr("GO_IMAGE", "golang:1.26-bookworm"),
		"--build-arg", "RUNTIME_IMAGE=" + envOr("RUNTIME_IMAGE", "gcr.io/distroless/static-debian12:nonroot"),
		"--build-arg", "VERSION=e2e", repoRoot}
	if err := command(nil, "docker", args...); err != nil {
		return err
	}
	// The service's default BERTH_DATA_DIR is relative (data), and the
	// image makes /data for it: run from anywhere else (distroless
	// :nonroot's /home/nonroot), `docker run -v vol:/data` would keep the
	// items in the container's layer, not the volume.
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Config.WorkingDir}}", image).Output()
	if err != nil {
		return fmt.Errorf("docker image inspect %s: %w", image, err)
	}
	if dir := strings.TrimSpace(string(out)); dir != "/" {
		return fmt.Errorf("image %s runs in %q, where the default BERTH_DATA_DIR (data) is not the /data the Dockerfile makes: want WORKDIR /", image, dir)
	}
	return nil
}

// writeKubeconfig writes the cluster's kubeconfig to a file of the run's own.
func writeKubeconfig(provider *kindcluster.Provider) (string, error) {
	text, err := provider.KubeConfig(clusterName, false)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// loadImage copies image from the local Docker into every node's
// containerd, as `kind load docker-image` does.
func loadImage(provider *kindcluster.Provider, image string) error {
	dir, err := os.MkdirTemp("", "berth-e2e-image-") // a run of its own: two runs on one machine do not share it
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if err := command(nil, "docker", "save", "-o", archive, image); err != nil {
		return err
	}
	nodes, err := provider.ListInternalNodes(clusterName)
	if err != nil {
		return err
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			f, err := os.Open(archive)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			if err := nodeutils.LoadImageArchive(n, f); err != nil {
				errs[i] = fmt.Errorf("loading %s into node %s: %w", image, n.String(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// installMain installs the release the zero-downtime scenarios use, in a
// namespace that enforces the restricted Pod Security Standard, with the
// API on NodePort apiNodePort (mapped to the host by deploy/kind).
func installMain(kubeconfig string) error {
	env := []string{"KUBECONFIG=" + kubeconfig}
	if err := command(env, "helm", "lint", "--strict", chartPath); err != nil {
		return err
	}
	if err := command(env, "kubectl", "create", "namespace", mainNamespace); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return err
	}
	if err := command(env, "kubectl", "label", "namespace", mainNamespace, "--overwrite", "pod-security.kubernetes.io/enforce=restricted"); err != nil {
		return err
	}
	args := []string{"upgrade", "--install", mainRelease, chartPath, "-n", mainNamespace, "--wait", "--timeout", "5m",
		"--set", "service.type=NodePort", "--set", fmt.Sprintf("service.nodePort=%d", apiNodePort), "--set", "metrics.pushgateway.url=" + pushgatewayURL}
	for _, a := range imageArgs() {
		args = append(args, "--set-string", a) // a tag such as 15 is a string, not a number
	}
	return command(env, "helm", args...)
}

// imageArgs are the chart values naming the images the e2e loaded.
func imageArgs() []string {
	pgRepo, pgTag := splitImage(postgresImage)
	return []string{"image.repository=" + imageRepo, "image.tag=" + imageTag,
		"postgresql.image.repository=" + pgRepo, "postgresql.image.tag=" + pgTag}
}

// splitImage splits an image reference into repository and tag: the tag
// follows the last colon after the last slash (a registry may carry a
// port), and is "latest" when there is none.
func splitImage(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// command runs a tool; the error carries the tail of what it printed.
func command(env []string, name string, args ...string) error {
	return commandIn(env, nil, name, args...)
}

// commandIn is command with stdin.
func commandIn(env []string, stdin io.Reader, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	fmt.Fprintf(os.Stderr, "e2e: %s %s\n", name, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
