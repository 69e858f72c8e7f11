// Package layering holds one test: the import rules the README's package
// table states, read off `go list`, so a change that breaks them fails
// make test instead of waiting for a reviewer.
package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/berth-dev/berth/"

// golist runs go list with args from the module's root and returns its
// lines.
func golist(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %v: %v\n%s", args, err, stderr)
	}
	return strings.Fields(string(out))
}

// Each library package imports, besides the standard library, only what
// its row of the README's table names: imports point down.
func TestLibraryImportsPointDown(t *testing.T) {
	allowed := map[string][]string{
		"pkg/lifespan":        nil,
		"pkg/probes":          nil,
		"pkg/probes/heptio":   {"pkg/probes", "github.com/heptiolabs/healthcheck"},
		"pkg/serve":           {"pkg/lifespan", "pkg/probes", "internal/deadline", "golang.org/x/net/netutil"},
		"pkg/sidecar":         {"pkg/lifespan", "pkg/probes", "internal/backoff", "internal/httpurl", "internal/redact"},
		"pkg/metrics":         {"pkg/lifespan", "pkg/probes", "pkg/serve", "github.com/prometheus/"},
		"pkg/ginberth":        {"pkg/lifespan", "github.com/gin-gonic/gin"},
		"pkg/berthtest":       {"pkg/serve"},
		"internal/backoff":    nil,
		"internal/deadline":   nil,
		"internal/httpurl":    nil,
		"internal/redact":     nil,
		"internal/logbuf":     nil,
		"internal/retrytest":  nil,
		"internal/sidebyside": nil,
	}
	lines := golist(t, "-f", `{{.ImportPath}}|{{join .Imports ","}}`, "./pkg/...", "./internal/...")
	seen := map[string]bool{}
	for _, line := range lines {
		path, imports, _ := strings.Cut(line, "|")
		pkg := strings.TrimPrefix(path, module)
		rules, ok := allowed[pkg]
		if !ok {
			if strings.HasPrefix(pkg, "pkg/") {
				t.Errorf("%s has no row here: add it to the README's package table and to this test", pkg)
			}
			continue // the service's own internal packages
		}
		seen[pkg] = true
		for _, imp := range strings.Split(imports, ",") {
			if imp == "" || !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // the standard library
			}
			imp = strings.TrimPrefix(imp, module)
			if !slices.ContainsFunc(rules, func(r string) bool { return imp == r || strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r) }) {
				t.Errorf("%s imports %s; its row of the README's package table allows %v", pkg, imp, rules)
			}
		}
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("%s: no such package; update this test with the README's table", pkg)
		}
	}
}

// pkg/lifespan and pkg/probes compile the standard library alone: a user
// of either builds nothing else.
func TestBottomPackagesNeedOnlyTheStandardLibrary(t *testing.T) {
	for _, pkg := range []string{"./pkg/lifespan", "./pkg/probes"} {
		for _, dep := range golist(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg) {
			if dep != module+strings.TrimPrefix(pkg, "./") {
				t.Errorf("%s depends on %s, which is not in the standard library", pkg, dep)
			}
		}
	}
}

// The root module, the one users require, lists no Kubernetes, Helm, kind
// or e2e-framework module: those belong to the e2e module.
func TestRootModuleLeavesOutTheTestTooling(t *testing.T) {
	for _, m := range golist(t, "-m", "-f", "{{.Path}}", "all") {
		for _, banned := range []string{"k8s.io/", "sigs.k8s.io/", "helm.sh/"} {
			if strings.HasPrefix(m, banned) {
				t.Errorf("the root module's graph holds %s; it belongs in the e2e module", m)
			}
		}
	}
}
