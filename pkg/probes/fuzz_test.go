package probes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Whatever the path, query and Accept header, the handler answers with a
// probe status, 404, 405 or (for an unknown ?format=) 400, never panics,
// and its JSON parses.
func FuzzHandler(f *testing.F) {
	for _, seed := range []struct{ path, query, accept string }{
		// Paths without their leading '/', which the target adds.
		{"readyz", "verbose", ""}, {"readyz/db", "", "application/json"}, {"livez", "exclude=ping&exclude=x", ""},
		{"startupz", "format=json&verbose=1", ""}, {"readyz//", "exclude=", "*/*"}, {"nope", "", ""}, {"readyz/a/b", "%zz", ""},
		{"livez", "format=Json&format=yaml", ""}, {"readyz", "format=", "application/json"}, {"livez", "format=yaml", ""},
	} {
		f.Add(seed.path, seed.query, seed.accept)
	}
	r := New()
	r.Add(Liveness, Check{Name: "ping", Run: func(context.Context) error { return nil }})
	r.Add(Readiness, Check{Name: "db", Run: func(context.Context) error { return errors.New("down") }})
	r.Add(Readiness|Startup, Check{Name: "a/b", Run: func(context.Context) error { return nil }})
	h := r.Handler(HandlerOptions{ShowReasons: true})
	f.Fuzz(func(t *testing.T, path, query, accept string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: "/" + path, RawQuery: query}
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 503, 404, 405:
		case 400:
			if f := req.URL.Query()["format"]; len(f) == 0 || f[0] == "" || strings.EqualFold(f[0], "json") || strings.EqualFold(f[0], "text") {
				t.Fatalf("%q?%q: 400 without an unknown format", path, query)
			}
		default:
			t.Fatalf("%q?%q: status %d", path, query, rec.Code)
		}
		if rec.Header().Get("Content-Type") == "application/json" {
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%q?%q: JSON does not parse: %v\n%s", path, query, err, rec.Body)
			}
		}
	})
}

// A probe's query reads as url.ParseQuery reads it: the first ?format=,
// every ?exclude= in order, and whether ?verbose is there, whatever the
// escapes, separators and malformed pairs.
func FuzzProbeQuery(f *testing.F) {
	for _, seed := range []string{
		"", "exclude=db", "exclude=db&exclude=hook%2Fapi%2Fcache", "verbose", "verbose=0&format=json", "format=&format=json",
		"exclude=a;b&exclude=c", "exclude=%zz&exclude=ok", "ex%63lude=x+y", "&&=&exclude", "format=JSON&verbose&exclude=db&exclude=",
		strings.Repeat("&", maxQueryParams-1) + "verbose", strings.Repeat("&", maxQueryParams) + "verbose",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, _ := url.ParseQuery(raw)
		got := parseProbeQuery(raw, nil)
		_, verbose := m["verbose"]
		formats, formatSet := m["format"]
		if got.verbose != verbose || got.formatSet != formatSet || formatSet && got.format != formats[0] || !slices.Equal(got.exclude, m["exclude"]) {
			t.Fatalf("%q: read %+v; url.ParseQuery reads %q", raw, got, m)
		}
	})
}
