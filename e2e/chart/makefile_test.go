package chart

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
)

// deployValues returns the values `make deploy` passes to helm, parsed as
// helm parses --set and --set-string, with the make variables given.
func deployValues(t *testing.T, vars ...string) map[string]any {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-n", "-s", "--no-print-directory", "-C", "../..", "deploy"}, vars...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "IMAGE_") || strings.HasPrefix(kv, "POSTGRES_IMAGE=")
	})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n deploy: %v", err)
	}
	vals := map[string]any{}
	for _, m := range regexp.MustCompile(`--(set|set-string) (\S+)`).FindAllStringSubmatch(strings.ReplaceAll(string(out), "\\\n", " "), -1) {
		parse := strvals.ParseInto
		if m[1] == "set-string" {
			parse = strvals.ParseIntoString
		}
		if err := parse(m[2], vals); err != nil {
			t.Fatalf("--%s %s: %v", m[1], m[2], err)
		}
	}
	return vals
}

// `make deploy` runs the images it is told to: an image tag of digits (a
// date, a short commit hash) stays a string the schema accepts, and
// POSTGRES_IMAGE becomes the chart's repository and tag as docker reads
// it: a registry's port is no tag, and a name without one means latest.
func TestMakeDeployRunsTheImagesItIsGiven(t *testing.T) {
	for _, tt := range []struct {
		vars            []string
		image, postgres string
	}{
		{[]string{"IMAGE_TAG=20250101"}, "berth:20250101", "postgres:15"},
		{[]string{"IMAGE_REPO=kit.local/berth", "POSTGRES_IMAGE=kit.local/postgres"}, "kit.local/berth:", "kit.local/postgres:latest"},
		{[]string{"POSTGRES_IMAGE=localhost:5000/postgres"}, "berth:", "localhost:5000/postgres:latest"},
		{[]string{"POSTGRES_IMAGE=localhost:5000/pg/postgres:16"}, "berth:", "localhost:5000/pg/postgres:16"},
	} {
		t.Run(strings.Join(tt.vars, " "), func(t *testing.T) {
			r, err := render(t, deployValues(t, tt.vars...))
			if err != nil {
				t.Fatalf("make deploy %s renders nothing: %v", tt.vars, err)
			}
			if got := container(t, r.deployment.Spec.Template.Spec.Containers, "server").Image; !strings.HasPrefix(got, tt.image) {
				t.Errorf("the service runs %q, want %s…", got, tt.image)
			}
			if got := r.statefulSet.Spec.Template.Spec.Containers[0].Image; got != tt.postgres {
				t.Errorf("PostgreSQL runs %q, want %q", got, tt.postgres)
			}
		})
	}
}
