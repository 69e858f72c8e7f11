package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/berthtest"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/gin-gonic/gin"
)

// startService runs the service on loopback through berthtest, with the
// test's settings on top of a quick, quiet base.
func startService(t *testing.T, extra map[string]string) *berthtest.App {
	t.Helper()
	env := map[string]string{"BERTH_DEMO_WARMUP": "0s", "BERTH_LOG_FORMAT": "text", "BERTH_BODY_LIMIT": "64", "BERTH_WORK_MAX": "2s",
		"BERTH_MAX_ITEMS": "3", "POD_NAME": "pod-a", "BERTH_DATA_DIR": t.TempDir()}
	for k, v := range extra {
		env[k] = v
	}
	return startWith(t, env)
}

// startWith runs the reference service on loopback with the environment
// env, through berthtest (no drain delay; shutdown in Cleanup).
func startWith(tb testing.TB, env map[string]string) *berthtest.App {
	tb.Helper()
	return berthtest.Start(tb, serveConfigWith(tb, env))
}

// serveConfigWith is the service's serve.Config for env, logging nowhere,
// with no drain delay (berthtest's default).
func serveConfigWith(tb testing.TB, env map[string]string) serve.Config {
	tb.Helper()
	cfg, err := config.Load(env)
	if err != nil {
		tb.Fatal(err)
	}
	sc, _, err := newServeConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	sc.DrainDelay = 0
	return sc
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, url, b)
	}
	return resp.StatusCode, out
}

func TestAPI(t *testing.T) {
	app := startService(t, nil)
	items := app.URL + "/api/v1/items/"
	tests := []struct {
		name, method, path, body string
		code                     int
		field, want              string
	}{
		{"missing item", "GET", items + "k", "", 404, "error", `no item "k"`},
		{"create", "PUT", items + "k", `{"v":1}`, 201, "v", "1"},
		{"read", "GET", items + "k", "", 200, "v", "1"},
		{"replace", "PUT", items + "k", `{"v":2}`, 200, "v", "2"},
		{"malformed", "PUT", items + "k", `{"v":`, 400, "error", "body is not valid JSON: unexpected end of JSON input (at byte 5)"},
		{"malformed mid-way", "PUT", items + "k", `{"v":x}`, 400, "error", "body is not valid JSON: invalid character 'x' looking for beginning of value (at byte 6)"},
		{"not UTF-8", "PUT", items + "k", "{\"name\":\"caf\xe9\"}", 400, "error", "body is not UTF-8; JSON must be (RFC 8259)"},
		{"key with an escaped slash", "PUT", items + "a%2Fb", `1`, 400, "error", `key "a/b" contains "/": a key is one path segment, without /`},
		{"too large", "PUT", items + "big", `{"v":"` + strings.Repeat("x", 100) + `"}`, 413, "error", "body of 108 bytes is over the 64-byte limit (BERTH_BODY_LIMIT)"},
		{"key too long", "PUT", items + strings.Repeat("k", 257), `1`, 400, "error", "key of 257 bytes is over the 256-byte limit"},
		{"key with a control character", "PUT", items + "a%0Ab", `1`, 400, "error", "invalid key: control character U+000A"},
		{"empty key, PUT", "PUT", items, `1`, 400, "error", "key is empty; want /api/v1/items/KEY"},
		{"empty key, GET", "GET", items, "", 400, "error", "key is empty; want /api/v1/items/KEY"},
		{"empty key, DELETE", "DELETE", items, "", 400, "error", "key is empty; want /api/v1/items/KEY"},
		{"second", "PUT", items + "k2", `{"v":2}`, 201, "", ""},
		{"third", "PUT", items + "k3", `{"v":3}`, 201, "", ""},
		{"past the item limit", "PUT", items + "k4", `{"v":4}`, 507, "error", "the store is full: it holds its limit of 3 items; delete some first (BERTH_MAX_ITEMS)"},
		{"nothing half-written", "GET", items + "k4", "", 404, "error", `no item "k4"`},
		{"delete", "DELETE", items + "k", "", 204, "", ""},
		{"delete again", "DELETE", items + "k", "", 404, "error", `no item "k"`},
		{"work", "GET", app.URL + "/api/v1/work?duration=10ms", "", 200, "worked", "10ms"},
		{"work bad duration", "GET", app.URL + "/api/v1/work?duration=soon", "", 400, "error", `duration="soon" is not a non-negative Go duration`},
		{"work over cap", "GET", app.URL + "/api/v1/work?duration=3s", "", 400, "error", "duration=3s is over the 2s cap (BERTH_WORK_MAX)"},
		{"info", "GET", app.URL + "/api/v1/info", "", 200, "phase", "ready"},
		{"unknown route", "GET", app.URL + "/nope", "", 404, "error", "no route GET /nope"},
		{"wrong method", "POST", app.URL + "/api/v1/info", "", 405, "error", "method POST not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("%s %s = %d %v, want %d", tt.method, tt.path, code, body, tt.code)
			}
			if tt.field != "" {
				if got := fmt.Sprint(body[tt.field]); !strings.Contains(got, tt.want) {
					t.Fatalf("%s = %q, want %q", tt.field, got, tt.want)
				}
			}
		})
	}
	code, metricsText := app.GetAdmin(t, "/metrics")
	for _, want := range []string{`berth_http_requests_total{code="201",method="PUT",route="/api/v1/items/:key"} 3`, `route="unmatched"`, `berth_hook_duration_seconds{app="berth",hook="cache",phase="start"}`} {
		if code != 200 || !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestWorkHonoursCancellation(t *testing.T) {
	app := startService(t, map[string]string{"BERTH_WORK_MAX": "30s", "BERTH_DRAIN_TIMEOUT": "30s"})
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", app.URL+"/api/v1/work?duration=30s", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitUntil(t, "the request to reach the handler", func() bool { return app.Server.InFlight() == 1 })
	cancel()
	<-done
	// The handler must return once the client has gone, not an hour later.
	waitUntil(t, "the handler to return after the client went away", func() bool { return app.Server.InFlight() == 0 })
}

// waitUntil polls cond every few milliseconds, failing the test after 5s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// failingStore is a database that does not answer.
type failingStore struct{}

var errNoAnswer = errors.New("dial tcp 10.96.0.10:5432: connect: connection refused")

func (failingStore) Get(context.Context, string) ([]byte, error)       { return nil, errNoAnswer }
func (failingStore) Put(context.Context, string, []byte) (bool, error) { return false, errNoAnswer }
func (failingStore) Delete(context.Context, string) error              { return errNoAnswer }
func (failingStore) Stats(context.Context) (store.Stats, error)        { return store.Stats{}, errNoAnswer }

// A chunked body past BERTH_BODY_LIMIT is answered 413 as soon as it
// passes the limit, while the client is still sending: the server closes
// the connection after the answer. It used to read on, up to 256 KiB more,
// before answering, so a client that sends more later (here: one that
// stops past the limit without ending its body) waited out the read
// timeout, and a slow one held the connection that long.
func TestBodyPastTheLimitIsRefusedWhileItStreams(t *testing.T) {
	app := startService(t, nil) // BERTH_BODY_LIMIT=64
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 80 bytes of a body that does not end: no last chunk follows.
	fmt.Fprintf(conn, "PUT /api/v1/items/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n%s\r\n", strings.Repeat("x", 80))
	// Far inside the API's 30s read timeout, which the old code waited for.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body past the limit that goes on: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("answer %d (close %v), want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
}

// A body that does not arrive whole is answered in the service's terms:
// a 408 when the server's read timeout passes first, a 400 when it ends
// before its Content-Length or its last chunk. Neither answer quotes the
// network's error, which names the server's socket address (a pod's IP)
// and the client's.
func TestABodyThatDoesNotArriveSaysWhyWithoutAddresses(t *testing.T) {
	_, api := apiOver(t, &mapStore{m: map[string][]byte{}}, &cache{}, nil)
	srv := httptest.NewUnstartedServer(api)
	srv.Config.ReadTimeout = time.Second
	srv.Start()
	defer srv.Close()
	tests := []struct {
		name, request string
		closeWrite    bool
		code          int
		says          string
	}{
		{"past the read timeout", "Content-Length: 10\r\n\r\n{\"v\"", false, 408,
			"the body did not arrive within the server's read timeout (4 bytes came); nothing was stored"},
		{"shorter than its Content-Length", "Content-Length: 10\r\n\r\n{\"v\"", true, 400,
			"the body ended after 4 of the 10 bytes its Content-Length announced; nothing was stored"},
		{"chunked, without its last chunk", "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"v\"\r\n", true, 400,
			"the body ended after 4 bytes, before its last chunk; nothing was stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "PUT /api/v1/items/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s", tt.request)
			if tt.closeWrite {
				conn.(*net.TCPConn).CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			defer resp.Body.Close()
			var out struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code || out.Error != tt.says {
				t.Fatalf("answer %d %q, want %d %q", resp.StatusCode, out.Error, tt.code, tt.says)
			}
		})
	}
}

// bodyFailed's cases one by one, with the errors net/http hands it: the
// network's name the pod's address, which no answer quotes; a connection
// the client broke gets no answer at all (no one would read it); only
// net/http's account of a malformed body, which names no address, is
// quoted.
func TestBodyFailedAnswersWithoutTheNetworksError(t *testing.T) {
	netErr := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Source: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080},
			Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 51234}, Err: err}
	}
	for _, tt := range []struct {
		name string
		err  error
		code int    // 0: nothing written
		says string // the error's text in the answer
	}{
		{"a read timeout", netErr(os.ErrDeadlineExceeded), 408, "the body did not arrive within the server's read timeout (3 bytes came); nothing was stored"},
		{"a connection reset", netErr(syscall.ECONNRESET), 0, ""},
		{"a body cut short", io.ErrUnexpectedEOF, 400, "the body ended after 3 of the 10 bytes its Content-Length announced; nothing was stored"},
		{"a malformed chunk", errors.New("invalid byte in chunk length"), 400, "reading body: invalid byte in chunk length"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			c.Request = httptest.NewRequest(http.MethodPut, "/api/v1/items/k", strings.NewReader("{}"))
			c.Request.ContentLength = 10
			bodyFailed(c, tt.err, 3)
			if !c.IsAborted() {
				t.Error("the request goes on to its handler's next step")
			}
			if tt.code == 0 {
				if c.Writer.Written() || rec.Body.Len() != 0 {
					t.Fatalf("answered %d %q to a connection the client broke", rec.Code, rec.Body)
				}
				return
			}
			var out struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.code || out.Error != tt.says || strings.Contains(rec.Body.String(), "10.0.0.") {
				t.Fatalf("answer %d %q, want %d %q", rec.Code, out.Error, tt.code, tt.says)
			}
		})
	}
}

// BERTH_DB_TIMEOUT bounds each write: one behind a write lock another
// process holds on the SQLite file is a 503 with Retry-After once the
// timeout passes, not after SQLite's own 10s busy timeout (the client
// here gives up at 5s).
func TestDBTimeoutBoundsAWriteBehindALock(t *testing.T) {
	dir := t.TempDir()
	app := startService(t, map[string]string{"BERTH_DATA_DIR": dir, "BERTH_DB_TIMEOUT": "300ms"})
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "berth.db")+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	client := &http.Client{Timeout: 5 * time.Second}
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, app.URL+"/api/v1/items/k", strings.NewReader(`{"v":1}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s behind another process's write lock: %v; want 503 once BERTH_DB_TIMEOUT (300ms) passed", method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("%s behind another process's write lock = %d Retry-After=%q; want 503 + Retry-After", method, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}

// With the database gone, requests that need it answer 503 with
// Retry-After and a JSON error at once; the others keep answering 200.
func TestDatabaseOutageIsA503(t *testing.T) {
	c := &cache{}
	c.stats.Store(&store.Stats{Items: 7})
	_, api := apiOver(t, failingStore{}, c, map[string]string{"BERTH_WORK_MAX": "1s"})
	for _, tt := range []struct {
		method, path, body string
		code               int
		retryAfter         string
	}{
		{"GET", "/api/v1/items/k", "", 503, "1"},
		{"PUT", "/api/v1/items/k", `{"v":1}`, 503, "1"},
		{"DELETE", "/api/v1/items/k", "", 503, "1"},
		{"GET", "/api/v1/info", "", 200, ""},
		{"GET", "/api/v1/work?duration=1ms", "", 200, ""},
	} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
		var out map[string]any
		if rec.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Errorf("%s %s = %d Retry-After=%q %s; want %d", tt.method, tt.path, rec.Code, rec.Header().Get("Retry-After"), rec.Body, tt.code)
		}
		if tt.code == 503 && out["error"] != "the database did not answer; retry later" {
			t.Errorf("%s %s error = %v", tt.method, tt.path, out["error"])
		}
	}
}

// A store call that failed because its client left is answered with
// nothing: no 503 telling no one to retry, no database outage in the logs
// (ginberth.Metrics then records the request as 499).
func TestClientGoneIsNoOutage(t *testing.T) {
	_, api := apiOver(t, failingStore{}, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/api/v1/items/k", nil))
	if rec.Body.Len() != 0 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("answered %d Retry-After=%q %q to a client that left; want nothing written", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

// refusingStore's Put fails with err: a refusal the database would repeat.
type refusingStore struct {
	failingStore
	err error
}

func (s refusingStore) Put(context.Context, string, []byte) (bool, error) { return false, s.err }

// A write the database would refuse again answers without Retry-After, so
// no client is told to retry every second what would fail again: 507 when
// its disk is full, 413 for a value it refuses for its size, 500 for a
// database read-only, corrupt or refusing the query (each used to be a 503
// "retry later").
func TestRefusalsTheDatabaseWouldRepeatAreNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		code int
		says string
	}{
		{"out of space", fmt.Errorf("store put (sqlite /data/berth.db): %w: database or disk is full (13)", store.ErrOutOfSpace),
			http.StatusInsufficientStorage, "the database is out of space; nothing was stored"},
		{"too large", fmt.Errorf("store put (sqlite /data/berth.db): %w: string or blob too big (18)", store.ErrTooLarge),
			http.StatusRequestEntityTooLarge, "the database refuses a value this large; nothing was stored (lower BERTH_BODY_LIMIT to what it holds)"},
		{"refused", fmt.Errorf("store put (sqlite /data/berth.db): %w: attempt to write a readonly database (8)", store.ErrRefused),
			http.StatusInternalServerError, "the database refused the operation, and would again; the service's log says why"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &cache{}
			c.stats.Store(&store.Stats{})
			_, api := apiOver(t, refusingStore{err: tt.err}, c, nil)
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest("PUT", "/api/v1/items/k", strings.NewReader(`{"v":1}`)))
			var out map[string]any
			if rec.Code != tt.code || rec.Header().Get("Retry-After") != "" || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["error"] != tt.says {
				t.Fatalf("PUT = %d Retry-After=%q %s; want %d %q", rec.Code, rec.Header().Get("Retry-After"), rec.Body, tt.code, tt.says)
			}
		})
	}
}

// HEAD works wherever GET does; a PUT that is not JSON gets 415; a body
// announced too large gets 413 before it is sent, one that turns out too
// large while it streams gets 413 too; every response says nosniff.
// noRedirects is a client that hands back redirects instead of following
// them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// putWith PUTs {"v":1} to url with header and returns the status and the
// decoded JSON answer.
func putWith(t *testing.T, url string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(`{"v":1}`))
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestHTTPDetails(t *testing.T) {
	app := startService(t, map[string]string{"BERTH_MAX_ITEMS": "100"})
	items := app.URL + "/api/v1/items/"
	if code, _ := do(t, "PUT", items+"k", `{"v":1}`); code != 201 {
		t.Fatalf("seeding: %d", code)
	}
	send := func(method, url, body, contentType string, chunked bool) *http.Response {
		t.Helper()
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(strings.NewReader(body)) // no length known: sent chunked
		}
		req, _ := http.NewRequest(method, url, r)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name, method, url, body, contentType string
		chunked                              bool
		code                                 int
	}{
		{"HEAD of an item", "HEAD", items + "k", "", "", false, 200},
		{"HEAD of a missing item", "HEAD", items + "nope", "", "", false, 404},
		{"HEAD of info", "HEAD", app.URL + "/api/v1/info", "", "", false, 200},
		{"HEAD of work", "HEAD", app.URL + "/api/v1/work?duration=1ms", "", "", false, 200},
		{"JSON", "PUT", items + "j", `{"v":1}`, "application/json; charset=utf-8", false, 201},
		{"a +json type", "PUT", items + "p", `{"v":1}`, "application/merge-patch+json", false, 201},
		{"no content type", "PUT", items + "n", `{"v":1}`, "", false, 201},
		{"not JSON", "PUT", items + "t", `{"v":1}`, "text/plain", false, 415},
		{"a form", "PUT", items + "f", `v=1`, "application/x-www-form-urlencoded", false, 415},
		{"a lone surrogate escaped", "PUT", items + "ls", `"\ud800"`, "application/json", false, 400},
		{"a surrogate pair escaped", "PUT", items + "sp", `"\ud83d\ude00"`, "application/json", false, 201},
		{"too large, streamed", "PUT", items + "s", `{"v":"` + strings.Repeat("x", 100) + `"}`, "application/json", true, 413},
		// No redirect to or from a trailing slash: Gin's would answer
		// before every middleware (no metrics, no nosniff) with HTML.
		{"a trailing slash", "GET", app.URL + "/api/v1/info/", "", "", false, 404},
		{"no key", "GET", app.URL + "/api/v1/items", "", "", false, 404},
		{"no key, PUT", "PUT", app.URL + "/api/v1/items", `{"v":1}`, "application/json", false, 404},
		{"an empty key, HEAD", "HEAD", items, "", "", false, 400},
		{"a key with an escaped slash in lower case", "GET", items + "a%2fb", "", "", false, 400},
		{"DELETE of a key over 256 bytes", "DELETE", items + strings.Repeat("k", 300), "", "", false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(tt.method, tt.url, tt.body, tt.contentType, tt.chunked)
			if resp.StatusCode != tt.code || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("%s %s = %d (nosniff %q), want %d", tt.method, tt.url, resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), tt.code)
			}
		})
	}

	for _, tt := range []struct {
		encoding []string // one header line each
		code     int
		refused  string
	}{
		{[]string{"gzip"}, 415, "gzip"}, {[]string{"br"}, 415, "br"}, {[]string{"identity"}, 201, ""}, {[]string{"IDENTITY"}, 201, ""},
		{[]string{"identity, gzip"}, 415, "gzip"}, {[]string{"identity", "gzip"}, 415, "gzip"},
	} {
		t.Run(fmt.Sprint("Content-Encoding ", tt.encoding), func(t *testing.T) {
			code, out := putWith(t, items+"ce-"+strings.Join(tt.encoding, "-"), http.Header{"Content-Type": {"application/json"}, "Content-Encoding": tt.encoding})
			if code != tt.code || tt.code == 415 && out["error"] != fmt.Sprintf("Content-Encoding %q is not supported; send the body uncompressed", tt.refused) {
				t.Fatalf("PUT with Content-Encoding %s = %d %v, want %d", tt.encoding, code, out, tt.code)
			}
		})
	}

	for _, tt := range []struct {
		contentType []string // one header line each
		code        int
	}{
		{[]string{"application/json"}, 201}, {[]string{"application/json", "text/plain"}, 400}, {[]string{"application/json", "application/json"}, 400},
	} {
		t.Run(fmt.Sprint("Content-Type ", tt.contentType), func(t *testing.T) {
			code, out := putWith(t, items+"ct-"+fmt.Sprint(len(tt.contentType)), http.Header{"Content-Type": tt.contentType})
			if code != tt.code || tt.code == 400 && !strings.HasPrefix(fmt.Sprint(out["error"]), fmt.Sprintf("Content-Type given %d times", len(tt.contentType))) {
				t.Fatalf("PUT with Content-Type lines %q = %d %v, want %d", tt.contentType, code, out, tt.code)
			}
		})
	}

	t.Run("Expect: 100-continue with a body over the limit", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(app.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /api/v1/items/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.Contains(line, "413") {
			t.Fatalf("the answer to the headers alone: %q, %v; want 413, not 100 Continue", line, err)
		}
	})
}

// apiOver is the service's API with the settings env, over a started app
// whose one hook provides st and c (when not nil); the app stops when the
// test ends.
func apiOver(tb testing.TB, st store.Store, c *cache, env map[string]string) (config.Config, http.Handler) {
	tb.Helper()
	return apiLogged(tb, st, c, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// apiLogged is apiOver with the service's logger log.
func apiLogged(tb testing.TB, st store.Store, c *cache, env map[string]string, log *slog.Logger) (config.Config, http.Handler) {
	tb.Helper()
	app := &lifespan.App{Name: "berth"}
	app.Append(lifespan.Hook{Name: "fake", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		if st != nil {
			storeKey.Set(s, st)
		}
		if c != nil {
			cacheKey.Set(s, c)
		}
		return nil, nil
	}})
	if err := app.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { app.Stop(context.Background()) })
	cfg, err := config.Load(env)
	if err != nil {
		tb.Fatal(err)
	}
	api := newAPI(cfg, app, nil, log)
	// What serve's API listener gives each request: the app's state in
	// its context.
	return cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), lifespan.StateContextKey, lifespan.Group{app})))
	})
}

// loneSurrogate finds a \u escape of half a UTF-16 surrogate pair without
// the other half, and nothing else: not a pair, not an escaped backslash
// before a u, not a surrogate's hex digits outside an escape.
func TestLoneSurrogate(t *testing.T) {
	for _, tt := range []struct {
		body string
		at   int // -1: none
	}{
		{`"plain"`, -1},
		{`"\u00e9 \n \" \/"`, -1},
		{`"\ud83d\ude00"`, -1},   // a pair
		{`"\uD83D\uDE00"`, -1},   // a pair, upper case
		{`"\\ud800"`, -1},        // an escaped backslash, then text
		{`"ud800 \\\u0041"`, -1}, // no escape, then \\ and \u0041
		{`"\ud800"`, 1},          // a first half alone
		{`"\udc00x"`, 1},         // a second half alone
		{`"ab\ud83d"`, 3},        // a first half at the end
		{`"\ud83d\u0041"`, 1},    // a first half before another escape
		{`"\ud83d\ud83d\ude00"`, 1},
		{`"\ude00\ud83d"`, 1},
		{`{"k":["\ud83d\ude00","\udfff"]}`, 22},
	} {
		if !json.Valid([]byte(tt.body)) {
			t.Fatalf("%s is not valid JSON", tt.body)
		}
		at, ok := loneSurrogate([]byte(tt.body))
		if !ok {
			at = -1
		}
		if at != tt.at {
			t.Errorf("loneSurrogate(%s) = %d, want %d", tt.body, at, tt.at)
		}
	}
}

// panickingStore's Get panics with its value, as a bug in a store (or a
// handler) of the user's own would.
type panickingStore struct {
	failingStore
	v any
}

func (p panickingStore) Get(context.Context, string) ([]byte, error) { panic(p.v) }

// A handler that panics is answered like every other error, in JSON, and
// its stack goes to the service's logger, the one stream a log pipeline
// parses (gin.Recovery wrote a coloured text block to stderr, and answered
// with no body). A panic whose client is gone, or whose handler abandoned
// its answer, is not logged and goes on to net/http as
// http.ErrAbortHandler, which cuts the connection (gin.Recovery answered
// an empty 200).
func TestAPanicIsAJSONErrorInTheServicesLog(t *testing.T) {
	for _, tt := range []struct {
		name, method string
		v            any
		wantCode     int // 0: nothing written
		wantLogged   bool
	}{
		{"GET", "GET", "store bug", 500, true},
		{"HEAD", "HEAD", "store bug", 500, true},
		{"an error value", "GET", errors.New("store bug"), 500, true},
		{"the handler abandons its answer", "GET", http.ErrAbortHandler, 0, false},
		{"a broken pipe", "GET", fmt.Errorf("write: %w", syscall.EPIPE), 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged strings.Builder
			_, api := apiLogged(t, panickingStore{v: tt.v}, nil, nil, slog.New(slog.NewJSONHandler(&logged, nil)))
			rec := httptest.NewRecorder()
			var passed any // the panic that reached net/http
			func() {
				defer func() { passed = recover() }()
				api.ServeHTTP(rec, httptest.NewRequest(tt.method, "/api/v1/items/k", nil))
			}()
			if tt.wantCode == 0 {
				if passed != http.ErrAbortHandler || rec.Body.Len() != 0 {
					t.Errorf("a panic whose client is gone passed on %v, and wrote %q; want http.ErrAbortHandler, nothing written", passed, rec.Body)
				}
			} else {
				if passed != nil {
					t.Errorf("a panic answered with a 500 passed on %v too", passed)
				}
				var body struct{ Error string }
				if rec.Code != tt.wantCode || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
					t.Errorf("a panic answered %d, Content-Type %q; want %d in JSON", rec.Code, rec.Header().Get("Content-Type"), tt.wantCode)
				}
				if tt.method == "GET" && (json.Unmarshal(rec.Body.Bytes(), &body) != nil || !strings.Contains(body.Error, "log")) {
					t.Errorf("a panic's body %q; want a JSON error pointing to the log", rec.Body)
				}
			}
			var line struct{ Msg, Route, Panic, Stack string }
			if !tt.wantLogged {
				if logged.Len() != 0 {
					t.Errorf("logged %q; want nothing", logged.String())
				}
				return
			}
			if err := json.Unmarshal([]byte(logged.String()), &line); err != nil || line.Panic != "store bug" || line.Route != "/api/v1/items/:key" || !strings.Contains(line.Stack, "panickingStore") {
				t.Errorf("the service's log of the panic: %q (%v); want one JSON line with the panic, the route and the stack", logged.String(), err)
			}
		})
	}
}

// A key is one path segment every client can address. "." and ".." are
// dot-segments, which curl and browsers remove from a URL (RFC 3986
// 5.2.4: `curl -X DELETE .../api/v1/items/..` sends DELETE /api/v1/), and
// browsers, fetch and Node remove %2e and %2E%2E too: PUT refuses them
// with a 400, as it does a "/". An item stored under one before stays
// readable and deletable by a client that can send its key.
func TestDotSegmentKeysAreRefused(t *testing.T) {
	s := &mapStore{m: map[string][]byte{"..": []byte(`"old"`)}}
	_, api := apiOver(t, s, &cache{}, nil)
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPut, "/api/v1/items/.", http.StatusBadRequest},
		{http.MethodPut, "/api/v1/items/..", http.StatusBadRequest},
		{http.MethodPut, "/api/v1/items/%2E%2E", http.StatusBadRequest},
		{http.MethodPut, "/api/v1/items/%2e", http.StatusBadRequest},
		{http.MethodPut, "/api/v1/items/...", http.StatusCreated},
		{http.MethodPut, "/api/v1/items/.a", http.StatusCreated},
		{http.MethodGet, "/api/v1/items/..", http.StatusOK},
		{http.MethodDelete, "/api/v1/items/..", http.StatusNoContent},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(`1`))
			u, err := url.Parse(tt.path) // as sent: NewRequest would clean the path
			if err != nil {
				t.Fatal(err)
			}
			req.URL = u
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%s %s = %d %s; want %d", tt.method, tt.path, rec.Code, rec.Body, tt.want)
			}
			if tt.want == http.StatusBadRequest && !strings.Contains(rec.Body.String(), "dot-segment") {
				t.Errorf("body %s; want it to say why the key is refused", rec.Body)
			}
		})
	}
}

// A handler that aborts its answer (a panic of http.ErrAbortHandler, as
// httputil.ReverseProxy raises when the upstream body breaks), or panics
// after part of its answer is written, must reach the client as an
// aborted response, as net/http makes it without a recovery: not as a
// complete 200, empty or truncated, that the client takes for the answer.
func TestAnAbortedAnswerReachesTheClientAborted(t *testing.T) {
	r := gin.New()
	r.Use(recovery(slog.New(slog.DiscardHandler)))
	r.GET("/abort", func(c *gin.Context) { panic(http.ErrAbortHandler) })
	r.GET("/partial", func(c *gin.Context) {
		c.Writer.WriteString(`{"items":[1,`)
		c.Writer.Flush()
		panic("bug after the first bytes")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, p := range []string{"/abort", "/partial"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			continue // aborted before the headers: the client knows
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("GET %s = %d %q, read as complete; want the response aborted", p, resp.StatusCode, body)
		}
	}
}

// The uptime /api/v1/info reports is the time since start rounded to the
// millisecond, and the text kept for one millisecond is not reported for
// another.
func TestUptimeIsRoundedToTheMillisecond(t *testing.T) {
	for _, tt := range []struct {
		name               string
		ago                time.Duration
		want, wantDayLater string // prefixes: the test itself takes time
	}{
		{"an hour", time.Hour, "1h0m0", "25h0m0"},
		{"a minute and a half", 90 * time.Second, "1m30", "24h1m30"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := &uptime{started: time.Now().Add(-tt.ago)}
			got := u.String()
			if d, err := time.ParseDuration(got); err != nil || !strings.HasPrefix(got, tt.want) || d%time.Millisecond != 0 {
				t.Errorf("uptime %q, want %s... rounded to the millisecond", got, tt.want)
			}
			u.started = u.started.Add(-24 * time.Hour)
			if got := u.String(); !strings.HasPrefix(got, tt.wantDayLater) {
				t.Errorf("a day later, uptime %q, want %s...: the earlier text was kept", got, tt.wantDayLater)
			}
		})
	}
}
