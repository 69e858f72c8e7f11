package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/pkg/serve"
)

// Bound is the range of values one variable may take: past it a value is a
// mistake (BERTH_JOB_INTERVAL=1ns would spin; a drain timeout of a year
// would never fit a grace period), refused with the valid range.
type Bound struct {
	Name     string
	Min, Max int64 // nanoseconds for durations, units for numbers
	ZeroOK   bool  // 0 means something (none, unset, no bound) besides the range
	Duration bool
}

// MaxPruneAge bounds the prune-pushgateway command's OLDER_THAN (a year):
// the chart's prune CronJob passes metrics.pushgateway.prune's age, whose
// limit the chart tests check against this.
const MaxPruneAge = 366 * 24 * time.Hour

// BoundOf returns the range of the variable name, if it has one. The chart
// tests check the chart's own limits against these.
func BoundOf(name string) (Bound, bool) {
	for _, b := range bounds {
		if b.Name == name {
			return b, true
		}
	}
	return Bound{}, false
}

var bounds = []Bound{
	{"BERTH_DRAIN_DELAY", int64(100 * time.Millisecond), int64(10 * time.Minute), true, true},
	{"BERTH_DRAIN_QUIET", int64(10 * time.Millisecond), int64(10 * time.Minute), true, true},
	{"BERTH_DRAIN_TIMEOUT", int64(100 * time.Millisecond), int64(time.Hour), false, true},
	{"BERTH_STOP_TIMEOUT", int64(100 * time.Millisecond), int64(time.Hour), false, true},
	{"BERTH_GRACE_PERIOD", int64(time.Second), int64(24 * time.Hour), true, true},
	{"BERTH_PRESTOP_DELAY", int64(100 * time.Millisecond), int64(10 * time.Minute), true, true},
	{"BERTH_SHUTDOWN_MARGIN", int64(serve.MinMargin), int64(10 * time.Minute), false, true},
	{"BERTH_SIDECAR_TIMEOUT", int64(100 * time.Millisecond), int64(time.Hour), false, true},
	{"BERTH_SIDECAR_QUIT_TIMEOUT", int64(100 * time.Millisecond), int64(10 * time.Minute), false, true},
	// The demo sidecar's: any delay the service would wait for (at most
	// BERTH_SIDECAR_TIMEOUT), any hold a grace period allows.
	{"BERTH_SIDECAR_READY_DELAY", 1, int64(time.Hour), true, true},
	{"BERTH_SIDECAR_HOLD", 1, int64(24 * time.Hour), true, true},
	{"BERTH_DEMO_WARMUP", int64(time.Millisecond), int64(10 * time.Minute), true, true},
	{"BERTH_JOB_INTERVAL", int64(100 * time.Millisecond), int64(24 * time.Hour), false, true},
	{"BERTH_WORK_MAX", int64(time.Millisecond), int64(time.Hour), false, true},
	{"BERTH_DB_WAIT", int64(100 * time.Millisecond), int64(time.Hour), true, true},
	{"BERTH_DB_TIMEOUT", int64(10 * time.Millisecond), int64(time.Minute), false, true},
	// A schema change may copy a table: minutes for a large one.
	{"BERTH_MIGRATE_TIMEOUT", int64(time.Second), int64(24 * time.Hour), false, true},
	{"BERTH_PUSH_TIMEOUT", int64(100 * time.Millisecond), int64(time.Minute), false, true},
	// Below what both databases hold in one value (SQLite 1e9 bytes,
	// PostgreSQL's bytea 1 GB), and what the service reads into memory.
	{"BERTH_BODY_LIMIT", 1, 1 << 29, false, false},
	{"BERTH_MAX_ITEMS", 1, 1_000_000_000, true, false},
}

// want says what the variable accepts: "want between 100ms and 10m0s (or 0)".
func (b Bound) want() string {
	show := func(n int64) string {
		if b.Duration {
			return time.Duration(n).String()
		}
		return fmt.Sprint(n)
	}
	want := fmt.Sprintf("want between %s and %s", show(b.Min), show(b.Max))
	if b.ZeroOK {
		want += " (or 0)"
	}
	return want
}

// outOfBounds names every value of cfg's variables outside its range,
// except those of the variables in unread, whose values could not be read
// at all (and were reported as such).
func outOfBounds[T any](cfg T, environ map[string]string, unread map[string]bool) []string {
	v := reflect.ValueOf(cfg)
	var problems []string
	for _, f := range reflect.VisibleFields(v.Type()) {
		b, ok := BoundOf(f.Tag.Get("env"))
		if !ok {
			continue
		}
		got := v.FieldByIndex(f.Index).Int()
		if unread[b.Name] || (got == 0 && b.ZeroOK) || (got >= b.Min && got <= b.Max) {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s=%q: %s", b.Name, environ[b.Name], b.want()))
	}
	return problems
}

// otherVariables are BERTH_ variables read elsewhere: by `server sidecar`.
var otherVariables = []string{"BERTH_SIDECAR_ADDR", "BERTH_SIDECAR_READY_DELAY", "BERTH_SIDECAR_HOLD"}

// Variables returns every BERTH_ variable the service knows, sorted.
func Variables() []string {
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if name := f.Tag.Get("env"); strings.HasPrefix(name, "BERTH_") {
			names = append(names, name)
		}
	}
	return slices.Sorted(slices.Values(append(names, otherVariables...)))
}

// serviceLink matches what follows a Service's name in the variables the
// kubelet writes for every Service in the namespace (enableServiceLinks): a
// Service named berth or berth-admin gives BERTH_SERVICE_HOST,
// BERTH_ADMIN_PORT_9090_TCP_ADDR and the like. They always come with the
// Service's <NAME>_SERVICE_HOST, which is how a typo such as
// BERTH_HTTP_PORT is still told apart from them.
var serviceLink = regexp.MustCompile(`^(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO)?)?)$`)

// isServiceLink reports whether name is a service link: every "_" in it is
// tried as the end of the Service's name, since the name may itself hold
// what a link's tail looks like (a Service named berth-service writes
// BERTH_SERVICE_PORT, its own PORT).
func isServiceLink(name string, environ map[string]string) bool {
	for i := range len(name) {
		if name[i] != '_' || !serviceLink.MatchString(name[i+1:]) {
			continue
		}
		if _, ok := environ[name[:i]+"_SERVICE_HOST"]; ok {
			return true
		}
	}
	return false
}

// likelyMeant are names a user may well write for a variable of another
// name: serve.Config calls BERTH_HTTP_ADDR's value APIAddr. Spelling alone
// would suggest BERTH_ADMIN_ADDR, the other server's.
var likelyMeant = map[string]string{"BERTH_API_ADDR": "BERTH_HTTP_ADDR"}

// suggestion is the known name a refused one was likely meant as, or "":
// an alias from likelyMeant, or else the nearest known name when it is a
// few slips away (one edit per four characters after BERTH_, at least one;
// a swap of two letters is one), so
// that a name of a different meaning that happens to look alike
// (BERTH_BODY_MAX, BERTH_WORK_MAX) is not offered.
func suggestion(name string, known []string) string {
	if meant, ok := likelyMeant[name]; ok {
		return meant
	}
	rest, tails := strings.TrimPrefix(name, "BERTH_"), make([]string, len(known))
	for i, k := range known {
		tails[i] = strings.TrimPrefix(k, "BERTH_")
	}
	closest, d := nearest(rest, tails)
	if d > max(1, len(rest)/4) {
		return ""
	}
	return "BERTH_" + closest
}

// unknownVariables refuses BERTH_ variables the service does not know, a
// typo being the likeliest cause, and suggests the closest known name.
func unknownVariables(environ map[string]string) []string {
	known := Variables()
	var problems []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range environ {
			if !yield(k) {
				return
			}
		}
	}) {
		if !strings.HasPrefix(name, "BERTH_") || slices.Contains(known, name) || isServiceLink(name, environ) {
			continue
		}
		msg := fmt.Sprintf("%s is not a berth variable", name)
		if meant := suggestion(name, known); meant != "" {
			msg += fmt.Sprintf("; did you mean %s?", meant)
		} else {
			msg += "; the README lists them"
		}
		problems = append(problems, msg)
	}
	return problems
}

// nearest returns the name in names closest to s, and its edit distance.
func nearest(s string, names []string) (string, int) {
	best, bestD := "", int(^uint(0)>>1)
	for _, n := range names {
		if d := distance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best, bestD
}

// distance is the edit distance between a and b, a swap of two adjacent
// letters counting as one edit, as one slip of the fingers (optimal string
// alignment).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// serveFields maps serve.Config's field names, as serve's errors name them,
// to the variables that set them. Advice given in serve's terms comes
// first, where the service's setting differs: serve's "no drain delay" is
// a negative DrainDelay, the service's is BERTH_DRAIN_DELAY=0s.
var serveFields = []struct {
	field    *regexp.Regexp
	variable string
}{
	{regexp.MustCompile(`\bset DrainDelay negative \(none\)`), "set BERTH_DRAIN_DELAY=0s (none)"},
	{regexp.MustCompile(`\bset SingleListener\b`), "set BERTH_SINGLE_LISTENER=true"},
	{regexp.MustCompile(`\bAPIAddr\b`), "BERTH_HTTP_ADDR"}, {regexp.MustCompile(`\bAdminAddr\b`), "BERTH_ADMIN_ADDR"},
	{regexp.MustCompile(`\bDrainQuiet\b`), "BERTH_DRAIN_QUIET"}, {regexp.MustCompile(`\bDrainDelay\b`), "BERTH_DRAIN_DELAY"},
	{regexp.MustCompile(`\bDrainTimeout\b`), "BERTH_DRAIN_TIMEOUT"}, {regexp.MustCompile(`\bStopTimeout\b`), "BERTH_STOP_TIMEOUT"},
	{regexp.MustCompile(`\bGracePeriod\b`), "BERTH_GRACE_PERIOD"}, {regexp.MustCompile(`\bPreStopDelay\b`), "BERTH_PRESTOP_DELAY"},
	{regexp.MustCompile(`\bOnShutdownTimeout\b`), "BERTH_PUSH_TIMEOUT"}, {regexp.MustCompile(`\bQuitTimeout\b`), "BERTH_SIDECAR_QUIT_TIMEOUT"},
	{regexp.MustCompile(`\bMargin\b`), "BERTH_SHUTDOWN_MARGIN"},
}

// Explain rewrites an error of package serve in the service's terms: the
// variable to change instead of the field it sets
// (`BERTH_HTTP_ADDR=":8080": listen tcp :8080: bind: address already in use`).
// An *Error of this package's is returned as it is: its messages name the
// variables already, and quote the values as they were set, which a
// rewrite must not touch (BERTH_DEMO_FAIL="Margin" is no field).
func Explain(err error) string {
	msg := err.Error()
	if _, ours := errors.AsType[*Error](err); ours {
		return msg
	}
	for _, f := range serveFields {
		msg = f.field.ReplaceAllString(msg, f.variable)
	}
	return msg
}
