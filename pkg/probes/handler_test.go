package probes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: pass})
	r.Add(Readiness, Check{Name: "db", Run: fail("dial tcp 10.0.0.1:5432: refused")})
	r.Add(Readiness|Startup, Check{Name: "hook/api/warm", Run: pass})
	public := r.Handler(HandlerOptions{})
	admin := r.Handler(HandlerOptions{ShowReasons: true})

	tests := []struct {
		name     string
		h        http.Handler
		method   string
		target   string
		hdr      []string
		wantCode int
		wantBody string
		notBody  string
	}{
		{"livez ok", public, "GET", "/livez", nil, 200, "ok\n", ""},
		{"livez verbose", public, "GET", "/livez?verbose", nil, 200, "[+]ping ok\nlivez check passed\n", ""},
		{"readyz failing lists checks, withholds reason", public, "GET", "/readyz", nil, 503,
			"[-]db failed: reason withheld\n[+]hook/api/warm ok\nreadyz check failed\n", "refused"},
		{"admin shows reason", admin, "GET", "/readyz?verbose", nil, 503, "[-]db failed: dial tcp 10.0.0.1:5432: refused\n", ""},
		{"exclude the failing check", public, "GET", "/readyz?exclude=db", nil, 200, "ok\n", ""},
		{"exclude repeatable, unknown warned", public, "GET", "/readyz?verbose&exclude=db&exclude=nope&exclude=hook/api/warm", nil, 200,
			"warn: some checks cannot be excluded: no matches for nope\nreadyz check passed\n", ""},
		{"exclude named twice, unknown named twice: each once", public, "GET", "/readyz?verbose&exclude=db&exclude=db&exclude=zz&exclude=nope&exclude=zz", nil, 200,
			"[+]hook/api/warm ok\nwarn: some checks cannot be excluded: no matches for nope, zz\nreadyz check passed\n", ""},
		{"more excludes than the small buffer", public, "GET", "/readyz?verbose&exclude=a&exclude=b&exclude=c&exclude=d&exclude=e&exclude=f&exclude=g&exclude=h&exclude=db", nil, 200,
			"warn: some checks cannot be excluded: no matches for a, b, c, d, e, f, g, h\nreadyz check passed\n", ""},
		{"an empty exclude excludes nothing, unwarned", public, "GET", "/readyz?verbose&exclude=&exclude=db", nil, 200,
			"[+]hook/api/warm ok\nreadyz check passed\n", "cannot be excluded"},
		{"sub-path of a passing check", public, "GET", "/readyz/hook/api/warm", nil, 200, "ok\n", ""},
		{"sub-path beside an exclude of another check: no warning", public, "GET", "/readyz/hook/api/warm?verbose&exclude=db", nil, 200,
			"[+]hook/api/warm ok\n", "cannot be excluded"},
		{"sub-path of a failing check", public, "GET", "/readyz/db", nil, 503, "[-]db failed", ""},
		{"sub-path of another probe's check", public, "GET", "/livez/db", nil, 404, `livez has no check "db"; its checks: ping`, ""},
		{"sub-path of no check", public, "GET", "/readyz/nope", nil, 404, `readyz has no check "nope"; its checks: db, hook/api/warm`, ""},
		{"startupz", public, "GET", "/startupz", nil, 200, "ok\n", ""},
		{"HEAD", public, "HEAD", "/livez", nil, 200, "", ""},
		{"POST refused", public, "POST", "/livez", nil, 405, "use GET or HEAD", ""},
		{"unknown probe", public, "GET", "/healthz", nil, 404, "no probe at /healthz: the probes are /livez, /readyz and /startupz", ""},
		{"sub-path of a check also excluded: the check it asks for", public, "GET", "/readyz/db?exclude=db", nil, 503, "[-]db failed", "has no check"},
		{"json in any case", public, "GET", "/livez?format=JSON", nil, 200, `{"probe":"livez","status":"ok"`, ""},
		{"text asked for over Accept", public, "GET", "/livez?format=text", []string{"Accept", "application/json"}, 200, "ok\n", "{"},
		{"unknown format", public, "GET", "/livez?format=yaml", nil, 400, `format "yaml": want json or text (the default)`, ""},
		{"an empty format, Accept decides", public, "GET", "/livez?format=", []string{"Accept", "application/json"}, 200, `{"probe":"livez","status":"ok"`, ""},
		{"json by query", public, "GET", "/readyz?format=json", nil, 503,
			`{"probe":"readyz","status":"failed","checks":[{"name":"db","ok":false,"reason":"reason withheld"},{"name":"hook/api/warm","ok":true}]}`, "refused"},
		{"json by Accept", admin, "GET", "/livez", []string{"Accept", "application/json"}, 200,
			`{"probe":"livez","status":"ok","checks":[{"name":"ping","ok":true}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := serve(tt.h, tt.method, tt.target, tt.hdr...)
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			if tt.notBody != "" && strings.Contains(body, tt.notBody) {
				t.Errorf("body %q leaks %q", body, tt.notBody)
			}
			if code < 400 && hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
			if got := hdr.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
		})
	}
}

func TestJSONIsValid(t *testing.T) {
	r := New()
	r.Add(Readiness, Check{Name: "db", Run: fail("x")})
	_, body, hdr := serve(r.Handler(HandlerOptions{ShowReasons: true}), "GET", "/readyz?format=json")
	var rep jsonReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("json %q: %v", body, err)
	}
	if rep.Status != "failed" || len(rep.Checks) != 1 || rep.Checks[0].Reason != "x" {
		t.Fatalf("report = %+v", rep)
	}
}

func TestHandlerOverHTTP(t *testing.T) {
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: pass})
	srv := httptest.NewServer(r.Handler(HandlerOptions{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// Probes borrow the array of their results from a pool: probes of
// different shapes at once (more checks, fewer, one; cached, instant and
// inline ones; a failing one) each answer with their own checks, as the
// same probe alone answers, never with another's.
func TestConcurrentProbesAnswerWithTheirOwnChecks(t *testing.T) {
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: pass, Instant: true})
	r.Add(Readiness, Check{Name: "db", Run: fail("down")})
	r.Add(Readiness|Startup, Check{Name: "warm", Run: pass, Instant: true})
	r.Add(Readiness, Check{Name: "cache", Run: pass, Interval: time.Hour})
	r.Add(Readiness, Check{Name: "flag", Run: pass, Instant: true})
	r.Start(t.Context())
	defer r.Stop()
	r.Refresh(t.Context())
	h := r.Handler(HandlerOptions{ShowReasons: true})
	answer := func(target string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return fmt.Sprint(rec.Code, " ", rec.Body.String())
	}
	targets := []string{"/livez?verbose", "/readyz?verbose", "/readyz/warm?verbose", "/startupz?verbose",
		"/readyz?verbose&exclude=db", "/readyz?format=json", "/readyz?verbose&exclude=db&exclude=cache&exclude=flag"}
	alone := map[string]string{}
	for _, target := range targets {
		alone[target] = answer(target)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				target := targets[(g+i)%len(targets)]
				if got := answer(target); got != alone[target] {
					t.Errorf("%s answered %q beside other probes; alone, %q", target, got, alone[target])
					return
				}
			}
		})
	}
	wg.Wait()
}

// A check whose last run passed but that has not yet passed
// SuccessThreshold times in a row says so, on the admin port, rather than
// showing no reason for failing.
func TestRecoveringCheckSaysSo(t *testing.T) {
	var fail bool
	r := New()
	r.Add(Readiness, Check{Name: "dep", SuccessThreshold: 3, Run: func(context.Context) error {
		if fail {
			return errors.New("down")
		}
		return nil
	}})
	h := r.Handler(HandlerOptions{ShowReasons: true})
	fail = true
	serve(h, "GET", "/readyz") // down at once: the first result counts
	fail = false
	serve(h, "GET", "/readyz") // one pass of the three it needs
	code, body, _ := serve(h, "GET", "/readyz?verbose")
	if want := "[-]dep failed: recovering: its last 2 runs passed, fewer than its SuccessThreshold\n"; code != 503 || !strings.Contains(body, want) {
		t.Fatalf("%d %q, want 503 and %q", code, body, want)
	}
}

// The JSON form is for a client whose Accept prefers it: media types are
// read in any case, q values weigh application/json against text, and
// every Accept line counts.
func TestAcceptsJSON(t *testing.T) {
	tests := []struct {
		name   string
		accept []string
		want   bool
	}{
		{"absent", nil, false},
		{"the kubelet's", []string{"*/*"}, false},
		{"json", []string{"application/json"}, true},
		{"json in another case", []string{"Application/JSON"}, true},
		{"json with a charset", []string{"application/json; charset=utf-8"}, true},
		{"json refused", []string{"application/json;q=0"}, false},
		{"json refused, anything else", []string{"application/json;q=0, */*"}, false},
		{"text preferred", []string{"text/plain, application/json;q=0.5"}, false},
		{"json preferred", []string{"text/plain;q=0.2, application/json;q=0.5"}, true},
		{"json as good as text", []string{"application/json, text/plain"}, true},
		{"the most specific text entry counts", []string{"text/plain;q=0.1, */*, application/json;q=0.5"}, true},
		{"text/* over */*", []string{"text/*;q=0.9, */*;q=0.1, application/json;q=0.5"}, false},
		{"json on a second line", []string{"text/html", "application/json"}, true},
		{"a q that is no number is ignored", []string{"application/json;q=x"}, false},
		{"a q above 1 is ignored", []string{"application/json;q=2, text/plain;q=0.5"}, false},
		{"a NaN q on text is ignored", []string{"text/plain;q=NaN, application/json"}, true},
		{"a NaN q on json is ignored", []string{"application/json;q=NaN, application/json"}, true},
		{"text/* over */*, whatever the order", []string{"*/*;q=0.9, text/*;q=0.1, application/json;q=0.5"}, true},
		{"text named twice, the lower first", []string{"text/plain;q=0.1, text/plain;q=0.9, application/json;q=0.5"}, false},
		{"an entry that does not parse is ignored", []string{"application/json;;;=, text/plain;q=0.5, application/json;q=0.3"}, false},
		{"json named twice: its best q", []string{"application/json;q=0.9, application/json;q=0.1, text/plain;q=0.5"}, true},
		{"text named twice: its best q", []string{"text/plain;q=0.9, text/plain;q=0.1, application/json;q=0.5"}, false},
		{"json only in another type's name", []string{"application/problem+json"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.accept {
				h.Add("Accept", v)
			}
			if got := acceptsJSON(h); got != tt.want {
				t.Errorf("acceptsJSON(%q) = %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}
