// Package config reads the reference service's configuration from BERTH_*
// environment variables. The shutdown timeline's defaults come from package
// serve's table (serve.DefaultDrainDelay and the rest), so the service, the
// library and the Helm chart share one set of values.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/httpurl"
	"github.com/berth-dev/berth/internal/redact"
	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/berth-dev/berth/pkg/sidecar"
	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the service's configuration. The README and the chart's values
// document every variable. Fields without an envDefault take theirs from
// package serve (see Load).
type Config struct {
	HTTPAddr       string        `env:"BERTH_HTTP_ADDR" envDefault:":8080"`
	AdminAddr      string        `env:"BERTH_ADMIN_ADDR" envDefault:":9090"`
	SingleListener bool          `env:"BERTH_SINGLE_LISTENER" envDefault:"false"`
	DrainDelay     time.Duration `env:"BERTH_DRAIN_DELAY"`
	DrainQuiet     time.Duration `env:"BERTH_DRAIN_QUIET"`
	DrainTimeout   time.Duration `env:"BERTH_DRAIN_TIMEOUT"`
	StopTimeout    time.Duration `env:"BERTH_STOP_TIMEOUT"`
	GracePeriod    time.Duration `env:"BERTH_GRACE_PERIOD"`
	PreStopDelay   time.Duration `env:"BERTH_PRESTOP_DELAY"`
	Margin         time.Duration `env:"BERTH_SHUTDOWN_MARGIN"`
	Sidecars       []string      `env:"BERTH_SIDECARS" envSeparator:","`
	SidecarTimeout time.Duration `env:"BERTH_SIDECAR_TIMEOUT" envDefault:"60s"`
	Quitting
	LogLevel       string        `env:"BERTH_LOG_LEVEL" envDefault:"info"`
	LogFormat      string        `env:"BERTH_LOG_FORMAT" envDefault:"json"`
	DemoWarmup     time.Duration `env:"BERTH_DEMO_WARMUP" envDefault:"1s"`
	DemoFail       string        `env:"BERTH_DEMO_FAIL"`
	JobInterval    time.Duration `env:"BERTH_JOB_INTERVAL" envDefault:"10s"`
	WorkMax        time.Duration `env:"BERTH_WORK_MAX" envDefault:"15s"`
	BodyLimit      int64         `env:"BERTH_BODY_LIMIT" envDefault:"1048576"`
	DatabaseURL    string        `env:"BERTH_DATABASE_URL"`
	DataDir        string        `env:"BERTH_DATA_DIR" envDefault:"data"`
	DBWait         time.Duration `env:"BERTH_DB_WAIT" envDefault:"60s"`
	DBTimeout      time.Duration `env:"BERTH_DB_TIMEOUT" envDefault:"1500ms"`
	MigrateTimeout time.Duration `env:"BERTH_MIGRATE_TIMEOUT" envDefault:"1m"`
	MaxItems       int64         `env:"BERTH_MAX_ITEMS" envDefault:"100000"`
	PushgatewayURL string        `env:"BERTH_PUSHGATEWAY_URL"`
	PushTimeout    time.Duration `env:"BERTH_PUSH_TIMEOUT"`
	PodName        string        `env:"POD_NAME"`
	PodNamespace   string        `env:"POD_NAMESPACE"`
}

// Quitting is the settings that tell classic sidecars to quit: part of
// Config, and read on their own by QuitAfterRefusal.
type Quitting struct {
	SidecarQuit []string      `env:"BERTH_SIDECAR_QUIT" envSeparator:","`
	QuitTimeout time.Duration `env:"BERTH_SIDECAR_QUIT_TIMEOUT"`
	// QuitAfterFailedStart also tells the sidecars to quit after a failed
	// startup, or a refusal to start: for a Job's pod with restartPolicy
	// Never, which nothing restarts.
	QuitAfterFailedStart bool `env:"BERTH_SIDECAR_QUIT_AFTER_FAILED_START" envDefault:"false"`
}

// QuitAfterRefusal reads the sidecar-quit settings alone, for a service
// that refuses to start (exit 2) and would otherwise leave a Job's classic
// sidecars holding its pod. When BERTH_SIDECAR_QUIT_AFTER_FAILED_START is
// unset or false it returns nothing: no quit was asked for (set to
// anything else, empty included, it counts as asked). Else it
// returns the quit URLs and the timeout to tell them within, whatever else
// in environ Load refused, or, when one of the quit's own settings
// (BERTH_SIDECAR_QUIT, BERTH_SIDECAR_QUIT_TIMEOUT and the switch itself)
// is invalid or missing, an *Error naming it: a quit whose own settings
// are in doubt is not attempted.
func QuitAfterRefusal(environ map[string]string) (urls []string, timeout time.Duration, err error) {
	const asked = "BERTH_SIDECAR_QUIT_AFTER_FAILED_START"
	q := Quitting{QuitTimeout: serve.DefaultQuitTimeout}
	problems, unread := parseValues(&q, environ)
	if value, set := environ[asked]; !q.QuitAfterFailedStart && !unread[asked] && (!set || value != "") {
		return nil, 0, nil // not asked: unset, or false (set but empty is a problem below)
	}
	problems = append(problems, setButEmpty(q, environ)...)
	problems = append(problems, outOfBounds(q, environ, unread)...)
	q.SidecarQuit = entries(q.SidecarQuit)
	if err := sidecar.ValidateQuitURLs(q.SidecarQuit); err != nil {
		problems = append(problems, listProblem("BERTH_SIDECAR_QUIT", environ["BERTH_SIDECAR_QUIT"], err))
	} else if v := environ["BERTH_SIDECAR_QUIT"]; len(q.SidecarQuit) == 0 && v != "" {
		problems = append(problems, "there is nothing to quit: "+namesNoQuitURL(v))
	} else if len(q.SidecarQuit) == 0 {
		problems = append(problems, "BERTH_SIDECAR_QUIT is not set: there is nothing to quit")
	}
	if len(problems) > 0 {
		return nil, 0, &Error{Problems: problems}
	}
	return q.SidecarQuit, q.QuitTimeout, nil
}

// namesNoQuitURL is the problem of a BERTH_SIDECAR_QUIT set to v, which
// names no URL (commas and spaces: a template's join of an empty list).
func namesNoQuitURL(v string) string {
	return fmt.Sprintf("BERTH_SIDECAR_QUIT=%q names no URL; want comma-separated http://host:port/path", v)
}

// HookNames are the service's hooks, in start order ("sidecars" only when
// BERTH_SIDECARS is set); BERTH_DEMO_FAIL must name one of them.
var HookNames = []string{"sidecars", "db", "migrate", "cache", "jobs"}

var accepted = map[reflect.Type]string{
	reflect.TypeFor[time.Duration](): "a Go duration such as 250ms, 5s or 1m",
	reflect.TypeFor[bool]():          "true or false",
	reflect.TypeFor[int64]():         "a whole number",
}

// Load reads the configuration from environ (os.Environ's shape as a map)
// and checks it; every problem is reported, each naming the variable, its
// value and what would be accepted. The shutdown timeline's variables
// default to package serve's values.
func Load(environ map[string]string) (Config, error) {
	cfg := Config{
		DrainDelay:   serve.DefaultDrainDelay,
		DrainTimeout: serve.DefaultDrainTimeout,
		StopTimeout:  serve.DefaultStopTimeout,
		Margin:       serve.DefaultMargin,
		Quitting:     Quitting{QuitTimeout: serve.DefaultQuitTimeout},
		PushTimeout:  serve.DefaultOnShutdownTimeout,
	}
	problems, unread := parse(&cfg, environ)
	// Both lists read alike: spaces around an entry and empty entries (a
	// trailing comma) are dropped.
	cfg.Sidecars, cfg.SidecarQuit = entries(cfg.Sidecars), entries(cfg.SidecarQuit)
	bad := func(name, value, want string) {
		problems = append(problems, fmt.Sprintf("%s=%q: %s", name, value, want))
	}
	// The checks between two durations hold only for values as set: one
	// that could not be read (reported above) stands at its default here.
	read := func(names ...string) bool {
		return !slices.ContainsFunc(names, func(n string) bool { return unread[n] })
	}
	if cfg.WorkMax > cfg.DrainTimeout && cfg.DrainTimeout > 0 && read("BERTH_WORK_MAX", "BERTH_DRAIN_TIMEOUT") {
		problems = append(problems, fmt.Sprintf("BERTH_WORK_MAX (%v) is longer than BERTH_DRAIN_TIMEOUT (%v): a request the service accepted could be cut off by its own drain; make BERTH_WORK_MAX at most the drain timeout, or raise the drain timeout", cfg.WorkMax, cfg.DrainTimeout))
	}
	if cfg.DBTimeout > cfg.DrainTimeout && cfg.DrainTimeout > 0 && read("BERTH_DB_TIMEOUT", "BERTH_DRAIN_TIMEOUT") {
		problems = append(problems, fmt.Sprintf("BERTH_DB_TIMEOUT (%v) is longer than BERTH_DRAIN_TIMEOUT (%v): an items request waiting on the database could be cut off by the service's own drain; make BERTH_DB_TIMEOUT at most the drain timeout, or raise the drain timeout", cfg.DBTimeout, cfg.DrainTimeout))
	}
	if admin := environ["BERTH_ADMIN_ADDR"]; admin != "" && cfg.SingleListener && admin != cfg.HTTPAddr { // empty is the default, as for every text setting
		problems = append(problems, fmt.Sprintf("BERTH_ADMIN_ADDR=%q is not listened on with BERTH_SINGLE_LISTENER=true, which serves the probes and /metrics on BERTH_HTTP_ADDR (%q): unset one of them", admin, cfg.HTTPAddr))
	}
	// Listen addresses are checked here, with the rest, not first when
	// the server listens (after the other problems were reported).
	for _, a := range []struct{ name, value string }{{"BERTH_HTTP_ADDR", cfg.HTTPAddr}, {"BERTH_ADMIN_ADDR", cfg.AdminAddr}} {
		if a.name == "BERTH_ADMIN_ADDR" && cfg.SingleListener {
			continue // not listened on
		}
		if p := ListenAddrProblem(a.name, a.value); p != "" {
			problems = append(problems, p)
		}
	}
	if cfg.PushgatewayURL != "" && !httpurl.Valid(cfg.PushgatewayURL) {
		bad("BERTH_PUSHGATEWAY_URL", redact.URL(cfg.PushgatewayURL), "want the Pushgateway's http:// or https:// URL, such as http://pushgateway:9091")
	}
	if u := cfg.DatabaseURL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		bad("BERTH_DATABASE_URL", redact.URL(u), "want a postgres:// or postgresql:// URL, or leave it unset for the embedded SQLite database in BERTH_DATA_DIR")
	} else if u != "" {
		// pgx parses the URL as Open will (its error hides the password);
		// it also reads the PG* variables and any TLS files the URL names.
		if _, err := pgxpool.ParseConfig(u); err != nil {
			if _, envErr := pgxpool.ParseConfig(plainURL); envErr != nil {
				// A URL that names nothing fails too: the fault is in the
				// libpq variables pgx reads beside it (PGSSLMODE, say).
				problems = append(problems, fmt.Sprintf("the libpq variables pgx reads beside BERTH_DATABASE_URL (%s) cannot be read (%v): fix or unset the one at fault", pgVariables(environ), redact.Error(envErr, plainURL)))
			} else {
				bad("BERTH_DATABASE_URL", redact.URL(u), fmt.Sprintf("cannot be read (%v); want postgres://USER:PASSWORD@HOST:PORT/DATABASE, with special characters (such as @ as %%40) percent-encoded", redact.Error(err, u)))
			}
		}
	}
	if _, err := ParseLevel(cfg.LogLevel); err != nil {
		bad("BERTH_LOG_LEVEL", cfg.LogLevel, "want debug, info, warn or error")
	}
	if p := LogFormatProblem(cfg.LogFormat); p != "" {
		problems = append(problems, p)
	}
	if cfg.DemoFail != "" && !slices.Contains(HookNames, cfg.DemoFail) {
		bad("BERTH_DEMO_FAIL", cfg.DemoFail, "want the name of a hook: "+strings.Join(HookNames, ", "))
	}
	if cfg.DemoFail == "sidecars" && len(cfg.Sidecars) == 0 {
		bad("BERTH_DEMO_FAIL", cfg.DemoFail, "the sidecars hook runs only when BERTH_SIDECARS is set")
	}
	if _, err := sidecar.ParseTargets(cfg.Sidecars); err != nil {
		problems = append(problems, listProblem("BERTH_SIDECARS", environ["BERTH_SIDECARS"], err))
	}
	if err := sidecar.ValidateQuitURLs(cfg.SidecarQuit); err != nil {
		problems = append(problems, listProblem("BERTH_SIDECAR_QUIT", environ["BERTH_SIDECAR_QUIT"], err))
	}
	if cfg.QuitAfterFailedStart && len(cfg.SidecarQuit) == 0 {
		// As QuitAfterRefusal says it: a list set to commas and spaces is
		// not "unset".
		want := "there is nothing to quit: set BERTH_SIDECAR_QUIT to the sidecars' quit URLs"
		if v := environ["BERTH_SIDECAR_QUIT"]; v != "" {
			want = "there is nothing to quit: " + namesNoQuitURL(v)
		}
		bad("BERTH_SIDECAR_QUIT_AFTER_FAILED_START", environ["BERTH_SIDECAR_QUIT_AFTER_FAILED_START"], want)
	}
	if len(problems) > 0 {
		return cfg, &Error{Problems: problems}
	}
	return cfg, nil
}

// Error is Load's refusal: every problem found, each naming its variable,
// the value and what is accepted.
type Error struct {
	Problems []string
}

func (e *Error) Error() string { return "configuration: " + strings.Join(e.Problems, "; ") }

// Serve returns the serve.Config the settings describe: addresses, the
// shutdown timeline, the grace period and, with BERTH_SIDECAR_QUIT, the
// call that tells classic sidecars to quit (after a failed startup too,
// with BERTH_SIDECAR_QUIT_AFTER_FAILED_START), and, with BERTH_PUSHGATEWAY_URL,
// the push of the final figures gathered from figures at exit. The caller
// adds the apps, the API, the probes and the metrics handler.
func (c Config) Serve(log *slog.Logger, figures prometheus.Gatherer) serve.Config {
	sc := serve.Config{
		APIAddr:        c.HTTPAddr,
		AdminAddr:      c.AdminAddr,
		SingleListener: c.SingleListener,
		DrainDelay:     c.DrainDelay,
		DrainQuiet:     c.DrainQuiet,
		DrainTimeout:   c.DrainTimeout,
		StopTimeout:    c.StopTimeout,
		GracePeriod:    c.GracePeriod,
		PreStopDelay:   c.PreStopDelay,
		Margin:         c.Margin,
		QuitTimeout:    c.QuitTimeout,
		Logger:         log,
	}
	// The API's write timeout (which runs from the request's headers) must
	// not cut off the longest request the service allows: the work route's,
	// or an items request that reads its body (at most the read timeout)
	// and then waits on the database (at most BERTH_DB_TIMEOUT, a put
	// refused at the item bound included; SQLite's commit, which takes no
	// context, is not bounded by it, and the slack below covers it).
	if need := max(c.WorkMax, serve.DefaultLimits.ReadTimeout+c.DBTimeout) + 10*time.Second; need > serve.DefaultLimits.WriteTimeout {
		sc.Limits.WriteTimeout = need
	}
	if c.PushgatewayURL != "" {
		// The shutdown's figures are known only as the process exits; a
		// Pushgateway keeps them for Prometheus, one group per pod.
		sc.OnShutdownTimeout = c.PushTimeout
		sc.OnShutdown = func(ctx context.Context, _ serve.ShutdownReport) error {
			group := map[string]string{"pod": c.PodName}
			if c.PodNamespace != "" {
				group["namespace"] = c.PodNamespace
			}
			// The push's errors quote the URL, with any password in it.
			return redact.Error(metrics.Push(ctx, nil, c.PushgatewayURL, PushJob, group, figures), c.PushgatewayURL)
		}
	}
	if c.DrainDelay == 0 {
		sc.DrainDelay = -1 // BERTH_DRAIN_DELAY=0s means none; serve reads 0 as its default
	}
	if len(c.SidecarQuit) > 0 {
		urls := c.SidecarQuit
		sc.QuitSidecars = func(ctx context.Context) error { return sidecar.Quit(ctx, urls, sidecar.Options{Logger: log}) }
		if c.QuitAfterFailedStart {
			// The sidecar may not be listening yet: a refusal is retried.
			sc.QuitSidecarsAfterFailedStartup = func(ctx context.Context) error {
				return sidecar.Quit(ctx, urls, sidecar.Options{Logger: log, RetryRefused: true})
			}
		}
	}
	return sc
}

// redactList is a comma-separated list of URLs with any password in each
// hidden, as a refusal quotes it: the entry it names is the library's to
// redact, and the others are quoted here.
func redactList(value string) string {
	// A password holding a comma is cut in two by the list's own commas,
	// and neither half reads as a URL's password: hide whatever lies
	// between a scheme's "://" and the last "@" before the next "/" first.
	value = userinfoInList.ReplaceAllString(value, "${1}xxxxx@")
	entries := strings.Split(value, ",")
	for i, e := range entries {
		trimmed := strings.TrimSpace(e)
		if trimmed == "" {
			continue
		}
		entries[i] = strings.Replace(e, trimmed, redact.URL(trimmed), 1)
	}
	return strings.Join(entries, ",")
}

// userinfoInList matches a URL's "user:password@" in a list, the password
// allowed to hold commas (but not a "/", which would end the authority).
var userinfoInList = regexp.MustCompile(`(://[^:/@,]*:)[^/]*@`)

// listProblem is the refusal of the list of URLs value, set as name, that
// the library refused with err: the value with every password hidden, and
// why (see listRefusal).
func listProblem(name, value string, err error) string {
	return fmt.Sprintf("%s=%q: %s", name, redactList(value), listRefusal(value, err))
}

// listRefusal is the library's refusal of a list's entries, unless a
// password in value looks cut by the list's commas: the entries it names
// would then quote the password's pieces, which no redaction recognises,
// so the refusal says what is wrong instead.
func listRefusal(value string, err error) string {
	for _, m := range userinfoInList.FindAllString(value, -1) {
		if _, password, _ := strings.Cut(strings.TrimPrefix(m, "://"), ":"); strings.Contains(password, ",") {
			return "an entry is refused, and a URL's password there seems to hold a comma, which splits the list: write it as %2C"
		}
	}
	return err.Error()
}

// PushJob is the job label of the figures pushed at exit; Prometheus keeps
// them apart from the live ones it scrapes.
const PushJob = "berth-exit"

// Parse reads environ into the fields of *cfg that name a variable in an
// env tag and returns every problem it finds, each naming the variable, its
// value and what is accepted: a value it cannot read, a BERTH_ variable no
// command of the service knows (with the closest known name), a duration,
// number or switch set to nothing, and a value outside its variable's
// range. Load uses it for the service's settings; the sidecar command, for
// its own.
func Parse[T any](cfg *T, environ map[string]string) []string {
	problems, _ := parse(cfg, environ)
	return problems
}

// parse is Parse, also returning the variables whose values could not be
// read (their fields keep their defaults).
func parse[T any](cfg *T, environ map[string]string) (problems []string, unread map[string]bool) {
	problems, unread = parseValues(cfg, environ)
	problems = append(problems, unknownVariables(environ)...)
	problems = append(problems, setButEmpty(*cfg, environ)...)
	return append(problems, outOfBounds(*cfg, environ, unread)...), unread
}

// parseValues reads environ into *cfg and returns one problem for each value
// it could not read (with the variable's range, when it has one), and the
// variables it could not read.
func parseValues[T any](cfg *T, environ map[string]string) (problems []string, unread map[string]bool) {
	unread = map[string]bool{}
	err := env.ParseWithOptions(cfg, env.Options{Environment: environ})
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		if err != nil {
			problems = append(problems, err.Error())
		}
		return problems, unread
	}
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			problems = append(problems, e.Error())
			continue
		}
		name := pe.Name
		if f, ok := reflect.TypeFor[T]().FieldByName(pe.Name); ok {
			name = f.Tag.Get("env")
		}
		unread[name] = true
		what := "is not " + accepted[pe.Type]
		if errors.Is(pe.Err, strconv.ErrRange) {
			// A whole number past what any setting takes, either way.
			what = "is too large"
			if strings.HasPrefix(strings.TrimSpace(environ[name]), "-") {
				what = "is too small"
			}
		}
		msg := fmt.Sprintf("%s=%q %s", name, environ[name], what)
		if b, ok := BoundOf(name); ok {
			msg += "; " + b.want()
		}
		problems = append(problems, msg)
	}
	return problems, unread
}

// ParseLevel reads a BERTH_LOG_LEVEL value: debug, info, warn or error,
// in any case (not slog's offsets, such as INFO+2).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// setButEmpty refuses a duration, number or switch that is set to nothing
// (BERTH_DRAIN_DELAY=): the environment parser reads it as unset, so it
// would silently take its default, which is rarely what an empty value in
// a manifest meant. An empty text setting (BERTH_DATABASE_URL=) is its
// default, as documented.
func setButEmpty[T any](cfg T, environ map[string]string) []string {
	var problems []string
	v := reflect.ValueOf(cfg)
	for _, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("env")
		what, typed := accepted[f.Type]
		if value, set := environ[name]; name == "" || !typed || !set || value != "" { // untagged: no variable (execve allows one named "")
			continue
		}
		problems = append(problems, fmt.Sprintf("%s is set but empty: unset it for its default (%v), or give %s", name, v.FieldByIndex(f.Index).Interface(), what))
	}
	return problems
}

// ListenAddrProblem says what is wrong with the listen address addr of
// the variable name, or is empty for one a server can listen on and a
// Service reach: HOST:PORT or :PORT, the port a number or a service name.
func ListenAddrProblem(name, addr string) string {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		// An empty port (":", from ":${PORT}" with PORT unset) would
		// listen on a random one, which no Service reaches.
		return fmt.Sprintf("%s=%q: want HOST:PORT or :PORT, such as :8080", name, addr)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Sprintf("%s=%q: want a port from 0 to 65535 (or a service name), such as :8080", name, addr)
	}
	return ""
}

// LogFormatProblem says what is wrong with a BERTH_LOG_FORMAT value, or
// is empty for one of the two it takes, json and text.
func LogFormatProblem(format string) string {
	if format == "json" || format == "text" {
		return ""
	}
	return fmt.Sprintf("BERTH_LOG_FORMAT=%q: want json or text", format)
}

// entries trims each entry of a comma-separated list and drops the empty
// ones; nil when none is left.
func entries(list []string) []string {
	var out []string
	for _, e := range list {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// plainURL is a PostgreSQL URL that names no setting of its own: pgx
// refuses it only for the PG* variables it reads beside a URL.
const plainURL = "postgres://localhost/"

// pgVariables lists the libpq variables pgx reads (pgconn's table) that
// environ sets, sorted, each with its value quoted, except the secrets'
// (PGPASSWORD, PGSSLPASSWORD), which are only said to be set; or says none
// is. No other variable is shown, whatever its name.
func pgVariables(environ map[string]string) string {
	var set []string
	for _, k := range pgxReads {
		v, ok := environ[k]
		switch {
		case !ok:
		case k == "PGPASSWORD" || k == "PGSSLPASSWORD":
			set = append(set, k+" (set)")
		default:
			set = append(set, fmt.Sprintf("%s=%q", k, v))
		}
	}
	if len(set) == 0 {
		return "none set"
	}
	return strings.Join(set, ", ")
}

// pgxReads are the libpq variables pgx v5 reads beside a URL, sorted.
var pgxReads = []string{"PGAPPNAME", "PGCHANNELBINDING", "PGCONNECT_TIMEOUT", "PGDATABASE", "PGHOST", "PGMAXPROTOCOLVERSION",
	"PGMINPROTOCOLVERSION", "PGOPTIONS", "PGPASSFILE", "PGPASSWORD", "PGPORT", "PGREQUIREAUTH", "PGSERVICE", "PGSERVICEFILE",
	"PGSSLCERT", "PGSSLCERTMODE", "PGSSLKEY", "PGSSLMODE", "PGSSLNEGOTIATION", "PGSSLPASSWORD", "PGSSLROOTCERT", "PGSSLSNI",
	"PGTARGETSESSIONATTRS", "PGTZ", "PGUSER"}
