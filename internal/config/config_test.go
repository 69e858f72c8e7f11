package config

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/metrics"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // substring of the error; "" = valid
	}{
		{"defaults", map[string]string{}, ""},
		{"bad duration", map[string]string{"BERTH_DRAIN_DELAY": "5"}, `BERTH_DRAIN_DELAY="5" is not a Go duration such as 250ms, 5s or 1m`},
		{"two bad values, both named", map[string]string{"BERTH_STOP_TIMEOUT": "soon", "BERTH_SINGLE_LISTENER": "yes"},
			`BERTH_STOP_TIMEOUT="soon" is not a Go duration`},
		{"negative", map[string]string{"BERTH_DRAIN_TIMEOUT": "-1s"}, `BERTH_DRAIN_TIMEOUT="-1s": want between 100ms and 1h0m0s`},
		{"zero timeout", map[string]string{"BERTH_STOP_TIMEOUT": "0s"}, `BERTH_STOP_TIMEOUT="0s": want between 100ms and 1h0m0s`},
		{"zero margin", map[string]string{"BERTH_SHUTDOWN_MARGIN": "0s"}, `BERTH_SHUTDOWN_MARGIN="0s": want between 500ms and 10m0s`},
		{"margin too short for the late stops", map[string]string{"BERTH_SHUTDOWN_MARGIN": "100ms"}, `BERTH_SHUTDOWN_MARGIN="100ms": want between 500ms and 10m0s`},
		{"absurdly short", map[string]string{"BERTH_JOB_INTERVAL": "1ns"}, `BERTH_JOB_INTERVAL="1ns": want between 100ms and 24h0m0s`},
		{"absurdly long", map[string]string{"BERTH_DRAIN_DELAY": "8760h"}, `BERTH_DRAIN_DELAY="8760h": want between 100ms and 10m0s (or 0)`},
		{"a zero that means none", map[string]string{"BERTH_DRAIN_DELAY": "0s", "BERTH_MAX_ITEMS": "0"}, ""},
		{"absurd body limit", map[string]string{"BERTH_BODY_LIMIT": "0"}, `BERTH_BODY_LIMIT="0": want between 1 and 536870912`},
		// Past int64 below zero: strconv's ErrRange, which is no "too large".
		{"a number too negative to read", map[string]string{"BERTH_MAX_ITEMS": "-99999999999999999999"}, `BERTH_MAX_ITEMS="-99999999999999999999" is too small`},
		{"a duration set to nothing", map[string]string{"BERTH_DRAIN_DELAY": ""}, "BERTH_DRAIN_DELAY is set but empty: unset it for its default (5s), or give a Go duration such as 250ms, 5s or 1m"},
		{"a switch set to nothing", map[string]string{"BERTH_SINGLE_LISTENER": ""}, "BERTH_SINGLE_LISTENER is set but empty: unset it for its default (false), or give true or false"},
		// Quitting's fields are promoted into Config: their defaults, and
		// those of the fields after them, are read where they are.
		{"a promoted duration set to nothing", map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": ""}, "BERTH_SIDECAR_QUIT_TIMEOUT is set but empty: unset it for its default (5s)"},
		{"a promoted switch set to nothing", map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": ""}, "BERTH_SIDECAR_QUIT_AFTER_FAILED_START is set but empty: unset it for its default (false)"},
		{"a duration after them set to nothing", map[string]string{"BERTH_DEMO_WARMUP": ""}, "BERTH_DEMO_WARMUP is set but empty: unset it for its default (1s)"},
		{"the last duration set to nothing", map[string]string{"BERTH_PUSH_TIMEOUT": ""}, "BERTH_PUSH_TIMEOUT is set but empty: unset it for its default (2s)"},
		{"empty text settings are their defaults", map[string]string{"BERTH_DEMO_FAIL": "", "BERTH_DATABASE_URL": "", "BERTH_SIDECARS": ""}, ""},
		{"a typo", map[string]string{"BERTH_DRAIN_DELY": "5s"}, "BERTH_DRAIN_DELY is not a berth variable; did you mean BERTH_DRAIN_DELAY?"},
		{"not even close", map[string]string{"BERTH_COLOUR": "blue"}, "BERTH_COLOUR is not a berth variable; the README lists them"},
		{"a name of another meaning that looks alike", map[string]string{"BERTH_BODY_MAX": "1024"}, "BERTH_BODY_MAX is not a berth variable; the README lists them"},
		{"the API's address by serve's name for it", map[string]string{"BERTH_API_ADDR": ":8081"}, "BERTH_API_ADDR is not a berth variable; did you mean BERTH_HTTP_ADDR?"},
		{"a typo of two letters swapped", map[string]string{"BERTH_STPO_TIMEOUT": "5s"}, "BERTH_STPO_TIMEOUT is not a berth variable; did you mean BERTH_STOP_TIMEOUT?"},
		{"two letters swapped in the shortest name", map[string]string{"BERTH_DB_WIAT": "5s"}, "BERTH_DB_WIAT is not a berth variable; did you mean BERTH_DB_WAIT?"},
		{"another program's variable", map[string]string{"HOME": "/root", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}, ""},
		{"service links of Services named berth and berth-admin", map[string]string{
			"BERTH_SERVICE_HOST": "10.96.0.7", "BERTH_SERVICE_PORT": "80", "BERTH_SERVICE_PORT_HTTP": "80",
			"BERTH_PORT": "tcp://10.96.0.7:80", "BERTH_PORT_80_TCP": "tcp://10.96.0.7:80", "BERTH_PORT_80_TCP_ADDR": "10.96.0.7",
			"BERTH_PORT_80_TCP_PORT": "80", "BERTH_PORT_80_TCP_PROTO": "tcp", "BERTH_ADMIN_SERVICE_HOST": "10.96.0.8",
			"BERTH_ADMIN_PORT_9090_TCP_ADDR": "10.96.0.8", "BERTH_POSTGRESQL_SERVICE_HOST": "10.96.0.9",
			"BERTH_POSTGRESQL_SERVICE_PORT_POSTGRESQL": "5432"}, ""},
		{"service links of a Service named berth-service, whose own name ends as a link's tail does", map[string]string{
			"BERTH_SERVICE_SERVICE_HOST": "10.96.0.7", "BERTH_SERVICE_SERVICE_PORT": "80", "BERTH_SERVICE_SERVICE_PORT_HTTP": "80",
			"BERTH_SERVICE_PORT": "tcp://10.96.0.7:80", "BERTH_SERVICE_PORT_80_TCP": "tcp://10.96.0.7:80",
			"BERTH_SERVICE_PORT_80_TCP_ADDR": "10.96.0.7", "BERTH_SERVICE_PORT_80_TCP_PORT": "80", "BERTH_SERVICE_PORT_80_TCP_PROTO": "tcp"}, ""},
		{"a mistake that only looks like a service link", map[string]string{"BERTH_HTTP_PORT": "8080", "BERTH_SERVICE_HOST": "10.96.0.7"},
			"BERTH_HTTP_PORT is not a berth variable"},
		{"long requests cut off by the drain", map[string]string{"BERTH_WORK_MAX": "30s"},
			"BERTH_WORK_MAX (30s) is longer than BERTH_DRAIN_TIMEOUT (20s): a request the service accepted could be cut off by its own drain"},
		{"database calls cut off by the drain", map[string]string{"BERTH_DB_TIMEOUT": "2s", "BERTH_DRAIN_TIMEOUT": "1s"},
			"BERTH_DB_TIMEOUT (2s) is longer than BERTH_DRAIN_TIMEOUT (1s): an items request waiting on the database could be cut off by the service's own drain"},
		{"one listener and an admin address", map[string]string{"BERTH_SINGLE_LISTENER": "true", "BERTH_ADMIN_ADDR": ":9091"},
			`BERTH_ADMIN_ADDR=":9091" is not listened on with BERTH_SINGLE_LISTENER=true, which serves the probes and /metrics on BERTH_HTTP_ADDR (":8080")`},
		{"one listener, the admin address empty (its default)", map[string]string{"BERTH_SINGLE_LISTENER": "true", "BERTH_ADMIN_ADDR": ""}, ""},
		{"one listener, the admin address the same", map[string]string{"BERTH_SINGLE_LISTENER": "true", "BERTH_ADMIN_ADDR": ":8080"}, ""},
		{"pushgateway URL", map[string]string{"BERTH_PUSHGATEWAY_URL": "pushgateway:9091"}, `BERTH_PUSHGATEWAY_URL="pushgateway:9091": want the Pushgateway's http:// or https:// URL`},
		{"log level", map[string]string{"BERTH_LOG_LEVEL": "loud"}, `BERTH_LOG_LEVEL="loud": want debug, info, warn or error`},
		{"log format", map[string]string{"BERTH_LOG_FORMAT": "xml"}, `BERTH_LOG_FORMAT="xml": want json or text`},
		{"log level with slog's offset", map[string]string{"BERTH_LOG_LEVEL": "INFO+3"}, `BERTH_LOG_LEVEL="INFO+3": want debug, info, warn or error`},
		{"log level in capitals", map[string]string{"BERTH_LOG_LEVEL": "WARN"}, ""},
		{"a listen address without its colon", map[string]string{"BERTH_HTTP_ADDR": "8080"}, `BERTH_HTTP_ADDR="8080": want HOST:PORT or :PORT, such as :8080`},
		{"a port out of range", map[string]string{"BERTH_ADMIN_ADDR": ":99999"}, `BERTH_ADMIN_ADDR=":99999": want a port from 0 to 65535`},
		{"an empty port (:${PORT} with PORT unset)", map[string]string{"BERTH_HTTP_ADDR": ":"}, `BERTH_HTTP_ADDR=":": want HOST:PORT or :PORT, such as :8080`},
		{"a pushgateway port out of range", map[string]string{"BERTH_PUSHGATEWAY_URL": "http://127.0.0.1:99999"}, `BERTH_PUSHGATEWAY_URL="http://127.0.0.1:99999": want the Pushgateway's http:// or https:// URL`},
		{"a pushgateway URL with an empty port", map[string]string{"BERTH_PUSHGATEWAY_URL": "http://pushgateway:"}, `BERTH_PUSHGATEWAY_URL="http://pushgateway:": want`},
		{"a pushgateway URL with its port", map[string]string{"BERTH_PUSHGATEWAY_URL": "https://[::1]:9091/"}, ""},
		{"a listen address on a host", map[string]string{"BERTH_HTTP_ADDR": "127.0.0.1:8081", "BERTH_ADMIN_ADDR": "[::1]:0"}, ""},
		{"long requests as long as the drain", map[string]string{"BERTH_WORK_MAX": "20s"}, ""},
		{"demo fail unknown hook", map[string]string{"BERTH_DEMO_FAIL": "dbx"}, `BERTH_DEMO_FAIL="dbx": want the name of a hook: sidecars, db, migrate, cache, jobs`},
		{"demo fail sidecars without sidecars", map[string]string{"BERTH_DEMO_FAIL": "sidecars"}, "runs only when BERTH_SIDECARS is set"},
		{"sidecars", map[string]string{"BERTH_SIDECARS": "ftp://x:1"}, `BERTH_SIDECARS="ftp://x:1": sidecar "ftp://x:1": scheme "ftp" not supported`},
		{"quit url", map[string]string{"BERTH_SIDECAR_QUIT": "127.0.0.1:15020"}, `BERTH_SIDECAR_QUIT="127.0.0.1:15020"`},
		{"quit after a failed start with nothing to quit", map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"},
			`BERTH_SIDECAR_QUIT_AFTER_FAILED_START="true": there is nothing to quit: set BERTH_SIDECAR_QUIT`},
		// A list of commas and spaces is set, and says so, as QuitAfterRefusal does.
		{"quit after a failed start with a list naming no URL", map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true", "BERTH_SIDECAR_QUIT": " , "},
			`BERTH_SIDECAR_QUIT_AFTER_FAILED_START="true": there is nothing to quit: BERTH_SIDECAR_QUIT=" , " names no URL`},
		{"body limit", map[string]string{"BERTH_BODY_LIMIT": "1MB"}, `BERTH_BODY_LIMIT="1MB" is not a whole number; want between 1 and 536870912`},
		{"a number too large to read", map[string]string{"BERTH_BODY_LIMIT": "99999999999999999999"},
			`BERTH_BODY_LIMIT="99999999999999999999" is too large; want between 1 and 536870912`},
		{"a database URL pgx cannot read, its password hidden", map[string]string{"BERTH_DATABASE_URL": "postgres://berth:s3cr3t pw@db:5432/berth"},
			`BERTH_DATABASE_URL="postgres://berth:xxxxx@db:5432/berth": cannot be read (`},
		{"a database URL with a bad port", map[string]string{"BERTH_DATABASE_URL": "postgres://berth:s3cr3t@db:port/berth"},
			`BERTH_DATABASE_URL="postgres://berth:xxxxx@db:port/berth": cannot be read (`},
		{"a database URL with an unencoded @ in its password, no part of it shown", map[string]string{"BERTH_DATABASE_URL": "postgres://berth:s3c@ret@db:port/berth"},
			"BERTH_DATABASE_URL=\"postgres://berth:xxxxx@db:port/berth\": cannot be read (cannot parse `postgres://berth:xxxxx@db:port/berth`: invalid port); want postgres://USER:PASSWORD@HOST:PORT/DATABASE, with special characters (such as @ as %40) percent-encoded"},
		{"a database URL whose password is also elsewhere in it, read intact", map[string]string{"BERTH_DATABASE_URL": "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"},
			"cannot be read (cannot parse `postgres://u:xxxxx@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem`: failed to configure TLS (unable to read CA file: open /nonexistent/ca.pem"},
		{"a sidecar list with two entries refused, both named", map[string]string{"BERTH_SIDECARS": "tcp://h:1,bad1,bad2"},
			`sidecar "bad1": needs host:port; want http://host:port/path, tcp://host:port or host:port; sidecar "bad2": needs host:port`},
		{"a quit list with two entries refused, both named", map[string]string{"BERTH_SIDECAR_QUIT": "ftp://a,http://h:1/q,ftp://b"},
			`sidecar quit URL "ftp://a": want http://host:port/path (e.g. http://127.0.0.1:15020/quitquitquit); sidecar quit URL "ftp://b"`},
		{"a sidecar list with a comma in a password, no piece of it shown", map[string]string{"BERTH_SIDECARS": "tcp://h:1,http://u:s3cr,3tpw@istio:15021/ready"},
			`BERTH_SIDECARS="tcp://h:1,http://u:xxxxx@istio:15021/ready": an entry is refused, and a URL's password there seems to hold a comma, which splits the list: write it as %2C`},
		{"a quit list with a comma in a password, no piece of it shown", map[string]string{"BERTH_SIDECAR_QUIT": "http://u:s3cr,3tpw@h:1/q"},
			`BERTH_SIDECAR_QUIT="http://u:xxxxx@h:1/q": an entry is refused, and a URL's password there seems to hold a comma`},
		{"a sidecar list with a password in an entry it does not refuse", map[string]string{"BERTH_SIDECARS": "http://u:s3cr3tpw@istio:15021/ready,bad"},
			`BERTH_SIDECARS="http://u:xxxxx@istio:15021/ready,bad": `},
		{"a quit list with a password in an entry it does not refuse", map[string]string{"BERTH_SIDECAR_QUIT": "http://u:s3cr3tpw@h:1/q, ftp://x"},
			`BERTH_SIDECAR_QUIT="http://u:xxxxx@h:1/q, ftp://x": `},
		// Passwords written otherwise, each hidden: a libpq keyword/value
		// string (pgx reads one; the service wants a URL), a password in
		// the query, a URL without its scheme.
		{"a keyword/value connection string, its password hidden", map[string]string{"BERTH_DATABASE_URL": "host=db user=app password=s3cr3tpw dbname=app"},
			`BERTH_DATABASE_URL="host=db user=app password=xxxxx dbname=app": want a postgres:// or postgresql:// URL`},
		{"a database URL without its scheme, its password hidden", map[string]string{"BERTH_DATABASE_URL": "app:s3cr3tpw@db:5432/app"},
			`BERTH_DATABASE_URL="app:xxxxx@db:5432/app": want a postgres:// or postgresql:// URL`},
		{"a database URL with its password in the query, hidden", map[string]string{"BERTH_DATABASE_URL": "postgres://app@db:5432/app?password=s3cr3tpw&sslmode=bogus"},
			`BERTH_DATABASE_URL="postgres://app@db:5432/app?password=xxxxx&sslmode=bogus": cannot be read`},
		{"a Pushgateway URL without its scheme, its password hidden", map[string]string{"BERTH_PUSHGATEWAY_URL": "admin:s3cr3tpw@pushgateway:9091"},
			`BERTH_PUSHGATEWAY_URL="admin:xxxxx@pushgateway:9091": want the Pushgateway's http:// or https:// URL`},
		{"a quit URL without its scheme, its password hidden", map[string]string{"BERTH_SIDECAR_QUIT": "admin:s3cr3tpw@127.0.0.1:15000/quitquitquit"},
			`BERTH_SIDECAR_QUIT="admin:xxxxx@127.0.0.1:15000/quitquitquit": `},
		{"a sidecar without its scheme, its password hidden", map[string]string{"BERTH_SIDECARS": "admin:s3cr3tpw@127.0.0.1:15000/ready"},
			`BERTH_SIDECARS="admin:xxxxx@127.0.0.1:15000/ready": `},
		{"a database URL that is fine", map[string]string{"BERTH_DATABASE_URL": "postgres://berth:pw@db:5432/berth?sslmode=disable&pool_max_conns=8"}, ""},
		{"a duration too long to read", map[string]string{"BERTH_DRAIN_TIMEOUT": "9999999h"},
			`BERTH_DRAIN_TIMEOUT="9999999h" is not a Go duration such as 250ms, 5s or 1m; want between 100ms and 1h0m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.env)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(tt.env) > 0 {
					return
				}
				if cfg.DrainDelay != serve.DefaultDrainDelay || cfg.DrainTimeout != serve.DefaultDrainTimeout || cfg.StopTimeout != serve.DefaultStopTimeout ||
					cfg.Margin != serve.DefaultMargin || cfg.QuitTimeout != serve.DefaultQuitTimeout || cfg.DrainQuiet != 0 ||
					cfg.HTTPAddr != ":8080" || cfg.AdminAddr != ":9090" || cfg.LogFormat != "json" {
					t.Fatalf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr") || strings.Contains(err.Error(), "3tpw") {
				t.Fatalf("err = %v shows the password, or a piece of it", err)
			}
			for name := range tt.env { // one problem, one message
				if n := strings.Count(err.Error(), name+"="); n > 1 {
					t.Fatalf("%s is named %d times: %v", name, n, err)
				}
			}
		})
	}
	_, err := Load(map[string]string{"BERTH_STOP_TIMEOUT": "soon", "BERTH_SINGLE_LISTENER": "yes"})
	if !strings.Contains(err.Error(), `BERTH_SINGLE_LISTENER="yes" is not true or false`) {
		t.Fatalf("second problem not reported: %v", err)
	}
}

// Parse reads only the fields that name a variable: an untagged field is
// no variable "", even when the environment holds an entry of that empty
// name (execve allows "="), which made the empty-value check panic on an
// unexported field.
func TestParseIgnoresUntaggedFields(t *testing.T) {
	var cfg struct {
		Hold     time.Duration `env:"BERTH_SIDECAR_HOLD" envDefault:"0s"`
		debounce time.Duration
	}
	_ = cfg.debounce
	if problems := Parse(&cfg, map[string]string{"": ""}); len(problems) != 0 {
		t.Fatalf("Parse = %q, want no problem", problems)
	}
}

// TestQuitAfterRefusal: the sidecar-quit settings read alone, whatever
// else is refused; a quit asked for with a setting of its own in doubt is
// an error that names it, not a quit.
func TestQuitAfterRefusal(t *testing.T) {
	const u = "http://127.0.0.1:15020/quitquitquit"
	asked := func(more map[string]string) map[string]string {
		env := map[string]string{"BERTH_SIDECAR_QUIT": u, "BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"}
		maps.Copy(env, more)
		return env
	}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		urls    []string
		timeout time.Duration
		err     string // substring of the error; "" = none
	}{
		{"not asked", map[string]string{"BERTH_SIDECAR_QUIT": u}, nil, 0, ""},
		{"asked not to", asked(map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "false"}), nil, 0, ""},
		{"asked", asked(nil), []string{u}, serve.DefaultQuitTimeout, ""},
		{"asked, with a timeout", asked(map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": "2s"}), []string{u}, 2 * time.Second, ""},
		{"asked, the list read as Load reads it", asked(map[string]string{"BERTH_SIDECAR_QUIT": " " + u + " ,, "}), []string{u}, serve.DefaultQuitTimeout, ""},
		{"asked, whatever else is refused", asked(map[string]string{"BERTH_DRAIN_DELAY": "x", "BERTH_DRAIN_DELY": "5s"}), []string{u}, serve.DefaultQuitTimeout, ""},
		{"the switch unreadable", asked(map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "yes"}), nil, 0, `BERTH_SIDECAR_QUIT_AFTER_FAILED_START="yes" is not true or false`},
		{"the switch set to nothing", asked(map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": ""}), nil, 0, "BERTH_SIDECAR_QUIT_AFTER_FAILED_START is set but empty"},
		{"the timeout unreadable", asked(map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": "x"}), nil, 0, `BERTH_SIDECAR_QUIT_TIMEOUT="x" is not a Go duration`},
		{"the timeout set to nothing", asked(map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": ""}), nil, 0, "BERTH_SIDECAR_QUIT_TIMEOUT is set but empty"},
		{"the timeout out of range", asked(map[string]string{"BERTH_SIDECAR_QUIT_TIMEOUT": "11m"}), nil, 0, `BERTH_SIDECAR_QUIT_TIMEOUT="11m": want between 100ms and 10m0s`},
		{"a URL refused", asked(map[string]string{"BERTH_SIDECAR_QUIT": u + ",127.0.0.1:1/quitquitquit"}), nil, 0, `want http://host:port/path`},
		{"no URL", map[string]string{"BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"}, nil, 0, "BERTH_SIDECAR_QUIT is not set: there is nothing to quit"},
		// Set, to a list of nothing but commas and spaces (a template's
		// join of an empty list): the refusal quotes what is set, not "not set".
		{"a list of no URL", asked(map[string]string{"BERTH_SIDECAR_QUIT": " , "}), nil, 0, `BERTH_SIDECAR_QUIT=" , "`},
		{"a URL refused, a password elsewhere in the list hidden", asked(map[string]string{"BERTH_SIDECAR_QUIT": "http://u:s3cr3tpw@h:1/q,ftp://x"}), nil, 0, `BERTH_SIDECAR_QUIT="http://u:xxxxx@h:1/q,ftp://x": `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			urls, timeout, err := QuitAfterRefusal(tt.env)
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("err = %v shows the password", err)
			}
			if !slices.Equal(urls, tt.urls) || timeout != tt.timeout {
				t.Fatalf("QuitAfterRefusal = %q, %v; want %q, %v", urls, timeout, tt.urls, tt.timeout)
			}
		})
	}
}

func TestServeMapsTheTimeline(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(serve.Config) bool
	}{
		{"defaults are serve's", nil, func(sc serve.Config) bool {
			return sc.DrainDelay == serve.DefaultDrainDelay && sc.Budget() == 37*time.Second && sc.QuitSidecars == nil
		}},
		{"a drain delay of 0s is none", map[string]string{"BERTH_DRAIN_DELAY": "0s"}, func(sc serve.Config) bool {
			return sc.DrainDelay < 0 && sc.Budget() == 32*time.Second
		}},
		{"quiet period", map[string]string{"BERTH_DRAIN_QUIET": "1s"}, func(sc serve.Config) bool { return sc.DrainQuiet == time.Second }},
		{"sidecar quit", map[string]string{"BERTH_SIDECAR_QUIT": "http://127.0.0.1:15020/quitquitquit", "BERTH_SIDECAR_QUIT_TIMEOUT": "3s"}, func(sc serve.Config) bool {
			return sc.QuitSidecars != nil && sc.Budget() == 40*time.Second && sc.QuitSidecarsAfterFailedStartup == nil
		}},
		{"sidecar quit after a failed start too", map[string]string{"BERTH_SIDECAR_QUIT": "http://127.0.0.1:15020/quitquitquit", "BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"}, func(sc serve.Config) bool {
			return sc.QuitSidecars != nil && sc.QuitSidecarsAfterFailedStartup != nil
		}},
		{"push at exit", map[string]string{"BERTH_PUSHGATEWAY_URL": "http://pushgateway:9091", "BERTH_PUSH_TIMEOUT": "3s"}, func(sc serve.Config) bool {
			return sc.OnShutdown != nil && sc.OnShutdownTimeout == 3*time.Second && sc.Budget() == 40*time.Second
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if sc := cfg.Serve(nil, prometheus.NewRegistry()); !tt.check(sc) {
				t.Fatalf("serve.Config = %+v", sc)
			}
		})
	}
}

// The API's write timeout never cuts off a request the service allows.
func TestWriteTimeoutCoversTheLongestRequest(t *testing.T) {
	for _, workMax := range []string{"1s", "15s", "2m", "50m"} {
		cfg, err := Load(map[string]string{"BERTH_WORK_MAX": workMax, "BERTH_DRAIN_TIMEOUT": "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if got := writeTimeout(cfg); got <= cfg.WorkMax {
			t.Errorf("BERTH_WORK_MAX=%s: write timeout %v would cut off /api/v1/work", workMax, got)
		}
	}
	// An items request reads its body (up to the read timeout), then waits
	// on the database (a put refused at the item bound within the same
	// BERTH_DB_TIMEOUT): past the write timeout, its 503 would reach the
	// client as an empty reply.
	for _, dbTimeout := range []string{"100ms", "5s", "1m"} {
		cfg, err := Load(map[string]string{"BERTH_DB_TIMEOUT": dbTimeout, "BERTH_DRAIN_TIMEOUT": "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if got, longest := writeTimeout(cfg), serve.DefaultLimits.ReadTimeout+cfg.DBTimeout; got <= longest {
			t.Errorf("BERTH_DB_TIMEOUT=%s: write timeout %v would cut off an items request of up to %v", dbTimeout, got, longest)
		}
	}
}

// writeTimeout is the API server's write timeout under cfg.
func writeTimeout(cfg Config) time.Duration {
	if got := cfg.Serve(nil, nil).Limits.WriteTimeout; got != 0 {
		return got
	}
	return serve.DefaultLimits.WriteTimeout
}

// A duration that cannot be read is reported as such, and not compared,
// at the default it stands at, with another: the operator never set that
// default (BERTH_DRAIN_TIMEOUT=30, missing its unit, used to add "longer
// than BERTH_DRAIN_TIMEOUT (20s)").
func TestAnUnreadDurationIsNotCompared(t *testing.T) {
	_, err := Load(map[string]string{"BERTH_DRAIN_TIMEOUT": "30", "BERTH_WORK_MAX": "25s", "BERTH_DB_TIMEOUT": "25s"})
	if err == nil || !strings.Contains(err.Error(), `BERTH_DRAIN_TIMEOUT="30"`) {
		t.Fatalf("Load = %v, want the unread drain timeout named", err)
	}
	if strings.Contains(err.Error(), "longer than BERTH_DRAIN_TIMEOUT") {
		t.Errorf("Load compared with a drain timeout nobody set: %v", err)
	}
}

// The README's configuration table lists every variable the service reads.
func TestREADMEListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(Variables(), "POD_NAME", "POD_NAMESPACE") {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// serve's refusals reach the operator in the service's terms, and the
// advice works: the same settings with the advice followed start.
func TestExplainedAdviceWorks(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		want   string
		advice map[string]string // what the message says to set
	}{
		{"one port for both servers", map[string]string{"BERTH_HTTP_ADDR": ":18080", "BERTH_ADMIN_ADDR": ":18080"},
			`BERTH_HTTP_ADDR and BERTH_ADMIN_ADDR are both ":18080"; give them different ports or set BERTH_SINGLE_LISTENER=true`,
			map[string]string{"BERTH_SINGLE_LISTENER": "true"}},
		{"a drain delay beside a preStop sleep", map[string]string{"BERTH_PRESTOP_DELAY": "5s"},
			"set BERTH_DRAIN_DELAY=0s (none) when the pod has a preStop sleep",
			map[string]string{"BERTH_DRAIN_DELAY": "0s"}},
		{"a quiet period as long as the delay", map[string]string{"BERTH_DRAIN_QUIET": "5s"},
			"BERTH_DRAIN_QUIET 5s must be shorter than the drain delay (5s)",
			map[string]string{"BERTH_DRAIN_QUIET": "4s"}},
		{"a grace period too short", map[string]string{"BERTH_GRACE_PERIOD": "30s"},
			"raise BERTH_GRACE_PERIOD (the pod's terminationGracePeriodSeconds) to at least 37s, or shorten BERTH_DRAIN_DELAY, BERTH_DRAIN_TIMEOUT, BERTH_STOP_TIMEOUT or BERTH_SHUTDOWN_MARGIN",
			map[string]string{"BERTH_GRACE_PERIOD": "37s"}},
		{"a quiet period beside a preStop sleep", map[string]string{"BERTH_PRESTOP_DELAY": "5s", "BERTH_DRAIN_DELAY": "0s", "BERTH_DRAIN_QUIET": "1s"},
			"BERTH_DRAIN_QUIET 1s needs a drain delay to end early, and the delay here is the pod's preStop sleep (5s), which the process cannot shorten: move the delay into BERTH_DRAIN_DELAY (and drop the preStop)",
			map[string]string{"BERTH_PRESTOP_DELAY": "0s", "BERTH_DRAIN_DELAY": "5s"}},
	}
	newServer := func(env map[string]string) error {
		cfg, err := Load(env)
		if err != nil {
			return err
		}
		sc := cfg.Serve(nil, nil)
		sc.API = http.NotFoundHandler()
		_, err = serve.New(sc)
		return err
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newServer(tt.env)
			if err == nil {
				t.Fatal("serve.New accepted it")
			}
			if got := Explain(err); !strings.Contains(got, tt.want) {
				t.Fatalf("Explain = %s\nwant it to say %s", got, tt.want)
			}
			followed := maps.Clone(tt.env)
			maps.Copy(followed, tt.advice)
			if err := newServer(followed); err != nil {
				t.Fatalf("with the advice followed (%v): %s", tt.advice, Explain(err))
			}
		})
	}
}

// A push the Pushgateway refuses is an error that names the URL without
// the password in it.
func TestPushErrorHidesThePassword(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }))
	defer gw.Close()
	u, err := url.Parse(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("berth", "pw")
	cfg, err := Load(map[string]string{"BERTH_PUSHGATEWAY_URL": u.String()})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Serve(nil, finalFigures(t)).OnShutdown(t.Context(), serve.ShutdownReport{})
	if err == nil || !strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), ":pw@") || !strings.Contains(err.Error(), "berth:xxxxx@") {
		t.Fatalf("a refused push = %v", err)
	}
}

// finalFigures is a registry holding one of the figures the exit push
// sends (a request counted), as the service's does by its exit: Push
// refuses one without any, which would empty the pod's group.
func finalFigures(t *testing.T) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	h, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.ObserveRequest(http.MethodGet, "/api/v1/info", http.StatusOK, time.Millisecond)
	return reg
}

// The exit push replaces one group per pod: the pod's name, and its
// namespace when the pod knows it, so the replicas of a Deployment, and
// same-named pods in two namespaces, do not overwrite each other's
// figures (the alerts and the prune read the group by those labels).
func TestPushGroupsByPodAndNamespace(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"in a namespace", map[string]string{"POD_NAME": "web-5d8f9-abcde", "POD_NAMESPACE": "shop"},
			map[string]string{"job": PushJob, "pod": "web-5d8f9-abcde", "namespace": "shop"}},
		{"no namespace given", map[string]string{"POD_NAME": "web-5d8f9-abcde"},
			map[string]string{"job": PushJob, "pod": "web-5d8f9-abcde"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paths := make(chan string, 1)
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				paths <- r.Method + " " + r.URL.Path
			}))
			defer gw.Close()
			env := map[string]string{"BERTH_PUSHGATEWAY_URL": gw.URL}
			maps.Copy(env, tt.env)
			cfg, err := Load(env)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Serve(nil, finalFigures(t)).OnShutdown(t.Context(), serve.ShutdownReport{}); err != nil {
				t.Fatal(err)
			}
			var got string
			select {
			case got = <-paths:
			default:
				t.Fatal("OnShutdown returned without pushing")
			}
			method, path, _ := strings.Cut(got, " ")
			parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
			group := map[string]string{}
			for i := 0; i+1 < len(parts); i += 2 {
				group[parts[i]] = parts[i+1]
			}
			if method != http.MethodPut || len(parts)%2 != 0 || !maps.Equal(group, tt.want) {
				t.Errorf("push = %s, want a PUT to the group %v", got, tt.want)
			}
		})
	}
}

// The shutdown's quit reads a refused connection as a sidecar already
// gone (it quit with the pod); the quit after a failed start, which can
// come before the sidecar listens, retries it and fails when nothing ever
// listened.
func TestSidecarQuitsReadARefusalAsTheirMomentsWant(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String() + "/quitquitquit"
	ln.Close()
	cfg, err := Load(map[string]string{"BERTH_SIDECAR_QUIT": gone, "BERTH_SIDECAR_QUIT_AFTER_FAILED_START": "true"})
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Serve(nil, prometheus.NewRegistry())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := sc.QuitSidecars(ctx); err != nil {
		t.Errorf("the shutdown's quit of a sidecar already gone = %v, want nil", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := sc.QuitSidecarsAfterFailedStartup(ctx); err == nil || !strings.Contains(err.Error(), "nothing listened there") {
		t.Errorf("the quit after a failed start, nothing listening = %v, want it named a failure", err)
	}
}

// BERTH_SIDECARS and BERTH_SIDECAR_QUIT read alike: spaces around an entry
// and empty entries are dropped (BERTH_SIDECAR_QUIT refused both).
func TestSidecarListsReadAlike(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  []string
	}{
		{"http://a:1/x, http://b:2/y", []string{"http://a:1/x", "http://b:2/y"}},
		{"http://a:1/x,", []string{"http://a:1/x"}},
		{" , ", nil},
	} {
		cfg, err := Load(map[string]string{"BERTH_SIDECARS": tt.value, "BERTH_SIDECAR_QUIT": tt.value})
		if err != nil {
			t.Errorf("%q: %v", tt.value, err)
			continue
		}
		if !slices.Equal(cfg.SidecarQuit, tt.want) || !slices.Equal(cfg.Sidecars, tt.want) {
			t.Errorf("%q read as quit %q, sidecars %q; want %q", tt.value, cfg.SidecarQuit, cfg.Sidecars, tt.want)
		}
	}
}

// pgx reads libpq's PG* variables beside the URL; one it refuses is named
// among them, not blamed on a URL that is fine (whose percent-encoding
// cannot help), and PGPASSWORD's value is not shown.
func TestAPGVariablePgxRefusesIsNamed(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"PGSSLMODE", "bogus", `PGPASSWORD (set), PGSSLMODE="bogus", PGSSLPASSWORD (set)`},
		{"PGCONNECT_TIMEOUT", "soon", `PGCONNECT_TIMEOUT="soon", PGPASSWORD (set), PGSSLPASSWORD (set)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Secrets, pgx's and others' that start PG too, whose values
			// the refusal (logged) must not show.
			secrets := map[string]string{"PGPASSWORD": "s3cr3tpw", "PGSSLPASSWORD": "keypassphrase", "PGBOUNCER_AUTH_PASSWORD": "bouncersecret"}
			environ := map[string]string{"BERTH_DATABASE_URL": "postgres://berth@db:5432/berth", tt.name: tt.value}
			t.Setenv(tt.name, tt.value)
			for k, v := range secrets {
				t.Setenv(k, v)
				environ[k] = v
			}
			_, err := Load(environ)
			if err == nil {
				t.Fatalf("%s=%q accepted", tt.name, tt.value)
			}
			msg := err.Error()
			shown := slices.ContainsFunc(slices.Collect(maps.Values(secrets)), func(v string) bool { return strings.Contains(msg, v) })
			if !strings.Contains(msg, "the libpq variables pgx reads beside BERTH_DATABASE_URL ("+tt.want+") cannot be read") ||
				strings.Contains(msg, "BERTH_DATABASE_URL=") || shown || strings.Contains(msg, "PGBOUNCER") {
				t.Errorf("refusing %s=%q: %v; want the PG variables named (%s), the URL not blamed and no password", tt.name, tt.value, err, tt.want)
			}
		})
	}
}

// Explain renames serve's fields in serve's messages; the values a refusal
// quotes are the user's, and stay as written.
func TestExplainLeavesTheValuesAlone(t *testing.T) {
	for _, tt := range []struct{ name, variable, value string }{
		{"a hook name", "BERTH_DEMO_FAIL", "Margin"},
		{"a database named like a field", "BERTH_DATABASE_URL", "postgres://u@h/DrainTimeout?sslmode=bogus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(map[string]string{tt.variable: tt.value})
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := Explain(err), tt.variable+"="+strconv.Quote(tt.value); !strings.Contains(got, want) {
				t.Fatalf("Explain = %q; want it to quote %s as set", got, want)
			}
		})
	}
}
