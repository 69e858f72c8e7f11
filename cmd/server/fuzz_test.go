package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/store"
)

// mapStore is an in-memory store for the fuzz test's speed.
type mapStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapStore) Get(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[k]; ok {
		return v, nil
	}
	return nil, store.ErrNotFound
}

func (s *mapStore) Put(_ context.Context, k string, v []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.m[k]
	s.m[k] = v
	return !had, nil
}

func (s *mapStore) Delete(context.Context, string) error       { return nil }
func (s *mapStore) Stats(context.Context) (store.Stats, error) { return store.Stats{}, nil }

// Whatever key, body and Content-Type a PUT carries, it is stored only as
// valid JSON with a JSON (or no) Content-Type, every refusal is a JSON
// error with a 4xx status, and nothing panics.
func FuzzPutItem(f *testing.F) {
	for _, seed := range []struct{ key, body, ct string }{
		{"k", `{"v":1}`, "application/json"}, {"k", `{"v":`, ""}, {"a b", `[]`, "application/merge-patch+json"},
		{"k", `1`, "text/plain"}, {"%00", `null`, ""}, {"k", strings.Repeat("x", 200), "application/json"}, {"k", "\"caf\xe9\"", ""},
		{"k", `"\ud800"`, ""}, {"k", `["\ud83d\ude00","\\udc00"]`, ""}, {"k", `"\ud83d\u`, ""},
	} {
		f.Add(seed.key, seed.body, seed.ct)
	}
	_, api := apiOver(f, &mapStore{m: map[string][]byte{}}, &cache{}, map[string]string{"BERTH_BODY_LIMIT": "128"})
	f.Fuzz(func(t *testing.T, key, body, contentType string) {
		req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(body))
		req.URL = &url.URL{Path: "/api/v1/items/" + url.PathEscape(key)}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		switch {
		case rec.Code/100 == 2:
			if !json.Valid([]byte(body)) || !utf8.ValidString(body) || len(body) > 128 || (contentType != "" && !isJSON(contentType)) {
				t.Fatalf("PUT %q %q (%q) stored with %d", key, body, contentType, rec.Code)
			}
		case rec.Code/100 == 4:
			var e map[string]string
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] == "" {
				t.Fatalf("PUT %q refused with %d but no JSON error: %q", key, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("PUT %q %q (%q): %d", key, body, contentType, rec.Code)
		}
	})
}

// Whatever ?duration= a work request carries, it works only for a
// non-negative Go duration within BERTH_WORK_MAX, refuses anything else
// with a JSON 400, and nothing panics.
func FuzzWorkDuration(f *testing.F) {
	for _, seed := range []string{"", "1ms", "0", "-1s", "1h", "1.5µs", "9223372036854775807ns", "1e3s", "ms", "0x10s"} {
		f.Add(seed)
	}
	cfg, api := apiOver(f, nil, nil, map[string]string{"BERTH_WORK_MAX": "1ms"})
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/work?"+url.Values{"duration": {q}}.Encode(), nil)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		d, perr := time.ParseDuration(q)
		ok := q == "" || (perr == nil && d >= 0 && d <= cfg.WorkMax)
		switch {
		case ok && rec.Code != http.StatusOK:
			t.Fatalf("duration=%q: %d %q, want 200", q, rec.Code, rec.Body)
		case !ok && rec.Code != http.StatusBadRequest:
			t.Fatalf("duration=%q: %d, want 400", q, rec.Code)
		case !ok:
			var e map[string]string
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] == "" {
				t.Fatalf("duration=%q refused with no JSON error: %q", q, rec.Body)
			}
		}
	})
}
