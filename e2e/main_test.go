//go:build e2e

// Package e2e proves berth on a real kind cluster: readiness gating, zero
// failed requests through rolling updates and pod deletions under load
// (beside a control run with the drain disabled), startup failure and
// rollback, native and classic sidecars, metrics, and `helm test` in a Pod
// Security "restricted" namespace. Run it with `make e2e`; it expects the
// cluster, image and release that `make kind-up image kind-load deploy`
// create. On failure it exports cluster and pod logs to e2e-artifacts/.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
)

var (
	testenv       env.Environment
	imageRepo     = envOr("E2E_IMAGE_REPO", "berth")
	imageTag      = envOr("E2E_IMAGE_TAG", "dev")
	clusterName   = envOr("E2E_KIND_CLUSTER", "berth")
	mainNamespace = envOr("E2E_NAMESPACE", "berth")
	// apiURL is the release's NodePort, mapped to the host by deploy/kind.
	apiURL = envOr("E2E_API_URL", "http://127.0.0.1:30080")
)

const (
	chartPath   = "../deploy/helm/berth"
	mainRelease = "berth"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		home, _ := os.UserHomeDir()
		kubeconfig = filepath.Join(home, ".kube", "config")
	}
	cfg := envconf.NewWithKubeConfig(kubeconfig)
	testenv = env.NewWithConfig(cfg)
	code := testenv.Run(m)
	if code != 0 {
		dir, err := exportLogs(cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: exporting logs: %v\n", err)
		}
		fmt.Fprintf(os.Stderr, "e2e: FAILED; cluster and pod logs exported to %s\n", dir)
	}
	os.Exit(code)
}
