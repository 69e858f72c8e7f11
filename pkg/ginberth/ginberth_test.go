package ginberth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"weak"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

func init() { gin.SetMode(gin.TestMode) }

var (
	dsnKey  = lifespan.NewKey[string]("dsn")
	userKey = lifespan.NewKey[string]("user")
)

func startedApp(t *testing.T) *lifespan.App { return startedAppOf(t, "api", "postgres://db") }

// startedAppOf is a started app named name whose hook sets dsnKey to dsn;
// it stops when the test ends.
func startedAppOf(t *testing.T, name, dsn string) *lifespan.App {
	l := &lifespan.App{Name: name}
	l.Append(lifespan.Hook{Name: "db", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		dsnKey.Set(s, dsn)
		return nil, nil
	}})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return l
}

func TestStateAndRequestLayer(t *testing.T) {
	l := startedApp(t)
	r := gin.New()
	r.Use(State(l))
	r.GET("/whoami/:user", func(c *gin.Context) {
		Set(c, userKey, c.Param("user"))
		user, _ := Get(c, userKey)
		c.String(200, MustGet(c, dsnKey)+" "+user)
	})
	r.GET("/peek", func(c *gin.Context) {
		_, leaked := Get(c, userKey)
		c.JSON(200, gin.H{"leaked": leaked})
	})
	var wg sync.WaitGroup
	for _, u := range []string{"ann", "bob", "cid", "dee"} {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/whoami/"+u, nil))
			if rec.Body.String() != "postgres://db "+u {
				t.Errorf("got %q for %s", rec.Body.String(), u)
			}
		})
	}
	wg.Wait()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/peek", nil))
	if rec.Body.String() != `{"leaked":false}` {
		t.Fatalf("a request's value leaked: %s", rec.Body)
	}
	if _, ok := userKey.Get(l.State()); ok {
		t.Fatal("a request's value reached the lifespan state")
	}
}

// State lends each request a pooled map that keeps its last entry; two
// apps served in turn from one process each see their own state, never the
// other's left in a reused map.
func TestStateOfTwoAppsNeverCrosses(t *testing.T) {
	engines := map[string]*gin.Engine{}
	for _, dsn := range []string{"postgres://one", "postgres://two"} {
		r := gin.New()
		r.Use(State(startedAppOf(t, dsn, dsn)))
		r.GET("/dsn", func(c *gin.Context) { c.String(200, MustGet(c, dsnKey)) })
		engines[dsn] = r
	}
	for i := range 200 {
		for dsn, r := range engines {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/dsn", nil))
			if rec.Body.String() != dsn {
				t.Fatalf("request %d to the app of %s saw %q", i, dsn, rec.Body.String())
			}
		}
	}
}

// A handler that deletes the state's entry and stores a value of its own
// leaves a one-entry map that is not State's: it must not go back to the
// pool, or the next request would read the value.
func TestStateDoesNotPoolAMapAHandlerRefilled(t *testing.T) {
	r := gin.New()
	r.Use(State(startedApp(t)))
	r.GET("/refill", func(c *gin.Context) {
		for k := range c.Keys {
			c.Delete(k)
		}
		c.Set("user", "ann")
	})
	r.GET("/peek", func(c *gin.Context) {
		if u, ok := c.Get("user"); ok {
			c.String(200, "leaked %v", u)
			return
		}
		c.String(200, "clean")
	})
	for i := range 50 {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/refill", nil))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", "/peek", nil))
		if rec.Body.String() != "clean" {
			t.Fatalf("request %d after a refilled map: %s", i, rec.Body)
		}
	}
}

// A map goes back to the pool carrying the app's state, not the layer a
// handler added with Set: the pool must not keep a request's values (a
// user's session, a large body) alive after the request.
func TestStatePoolsNoRequestValues(t *testing.T) {
	bodyKey := lifespan.NewKey[*[1 << 10]byte]("body")
	var held weak.Pointer[[1 << 10]byte]
	r := gin.New()
	r.Use(State(startedApp(t)))
	r.GET("/layer", func(c *gin.Context) {
		body := new([1 << 10]byte)
		held = weak.Make(body)
		Set(c, bodyKey, body)
	})
	// Sixteen tries, as the race detector makes sync.Pool drop a quarter
	// of what it is given: a map pooled with its layer would otherwise
	// slip by in one run of four.
	for i := range 16 {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/layer", nil))
		// One collection moves the pool's maps to its victim cache, which
		// still holds them: the body survives it only if a pooled map does.
		runtime.GC()
		if held.Value() != nil {
			t.Fatalf("request %d's value outlived it: a pooled map still holds the request's layer", i)
		}
	}
}

// A handler's goroutines may read the state while another calls c.Set:
// Gin locks its Keys map for c.Set and c.Get, and Get reads under that
// lock (a map read beside a write is a fatal error no Recovery catches).
func TestGetBesideASetOfTheHandlersGoroutines(t *testing.T) {
	r := gin.New()
	r.Use(State(startedApp(t)))
	r.GET("/fan-out", func(c *gin.Context) {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 200 {
					if i == 0 {
						c.Set(fmt.Sprint("progress", j), j)
					} else if dsn, ok := Get(c, dsnKey); !ok || dsn != "postgres://db" {
						t.Errorf("Get beside c.Set = %q, %v", dsn, ok)
						return
					}
				}
			})
		}
		wg.Wait()
		c.Status(http.StatusNoContent)
	})
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/fan-out", nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
}

// Values a handler stores with c.Set stay readable by the middleware in
// front of State after the request; the state itself is readable wherever
// State is in front.
func TestStateKeepsOtherKeysForOuterMiddleware(t *testing.T) {
	l := startedApp(t)
	r := gin.New()
	var outerSaw []any
	r.Use(func(c *gin.Context) {
		c.Next()
		v, _ := c.Get("user")
		outerSaw = append(outerSaw, v)
	})
	r.Use(State(l))
	r.GET("/set", func(c *gin.Context) { c.Set("user", "ann"); c.String(200, MustGet(c, dsnKey)) })
	r.GET("/plain", func(c *gin.Context) { c.String(200, MustGet(c, dsnKey)) })
	// A handler (or a library) that replaces the map whole: State must not
	// take back, or clear, a map that is no longer the one it lent.
	r.GET("/replace", func(c *gin.Context) {
		c.String(200, MustGet(c, dsnKey))
		c.Keys = map[any]any{"user": "bob"}
	})
	for _, path := range []string{"/set", "/plain", "/set", "/replace"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Body.String() != "postgres://db" {
			t.Fatalf("%s: %q", path, rec.Body.String())
		}
	}
	if len(outerSaw) != 4 || outerSaw[0] != "ann" || outerSaw[1] != nil || outerSaw[2] != "ann" || outerSaw[3] != "bob" {
		t.Fatalf("outer middleware saw %v", outerSaw)
	}
}

// With a Keys map made by an earlier middleware, State shares it.
func TestStateSharesAnEarlierKeysMap(t *testing.T) {
	l := startedApp(t)
	r := gin.New()
	r.Use(func(c *gin.Context) { c.Set("trace", "t-1"); c.Next() }, State(l))
	r.GET("/", func(c *gin.Context) { c.String(200, MustGet(c, dsnKey)+" "+c.GetString("trace")) })
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Body.String() != "postgres://db t-1" {
		t.Fatalf("got %q", rec.Body.String())
	}
}

type recorded struct {
	mu        sync.Mutex
	routes    []string
	codes     []int
	durations []time.Duration
}

func (r *recorded) ObserveRequest(method, route string, code int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = append(r.routes, method+" "+route)
	r.codes = append(r.codes, code)
	r.durations = append(r.durations, d)
}

// The duration recorded spans the handler: at least what the handler
// measured of itself, at most what the caller measured around the request.
func TestMetricsRecordTheRequestsDuration(t *testing.T) {
	obs := &recorded{}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(Metrics(obs))
	var inner time.Duration
	r.GET("/work", func(c *gin.Context) {
		begin := time.Now()
		for time.Since(begin) < 2*time.Millisecond { // work of a known least length
		}
		inner = time.Since(begin)
		c.Status(http.StatusNoContent)
	})
	begin := time.Now()
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/work", nil))
	outer := time.Since(begin)
	if len(obs.durations) != 1 || obs.durations[0] < inner || obs.durations[0] > outer {
		t.Fatalf("recorded %v, want between the handler's %v and the caller's %v", obs.durations, inner, outer)
	}
}

func TestMetricsUseRouteTemplate(t *testing.T) {
	obs := &recorded{}
	r := gin.New()
	r.Use(Metrics(obs))
	r.GET("/api/v1/items/:key", func(c *gin.Context) { c.Status(204) })
	tests := []struct {
		path  string
		route string
		code  int
	}{
		{"/api/v1/items/alpha", "GET /api/v1/items/:key", 204},
		{"/api/v1/items/beta", "GET /api/v1/items/:key", 204},
		{"/wp-admin/../etc/passwd", "GET unmatched", 404},
	}
	for i, tt := range tests {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if obs.routes[i] != tt.route || obs.codes[i] != tt.code {
			t.Errorf("%s recorded as %q %d, want %q %d", tt.path, obs.routes[i], obs.codes[i], tt.route, tt.code)
		}
	}
}

// A handler that panics (a MustGet of a missing value, say) is answered
// 500 by gin.Recovery, mounted before Metrics as the reference service
// mounts it; the panic passes through Metrics on its way there, and the
// request is still recorded, as the 500 the client gets. A panic after the
// handler wrote its status is recorded with that status; one whose client
// had gone as 499: no 500 reached anyone. So is a panic Recovery writes
// nothing for (http.ErrAbortHandler, a broken pipe, a reset connection),
// client or none: the handler abandoned its response, and the panic still
// reaches Recovery as it was.
func TestMetricsRecordRequestsThatPanic(t *testing.T) {
	tests := []struct {
		name    string
		handler gin.HandlerFunc
		gone    bool
		code    int
	}{
		{"before writing", func(c *gin.Context) { panic("no store in the state") }, false, http.StatusInternalServerError},
		{"after writing", func(c *gin.Context) { c.Status(http.StatusAccepted); c.Writer.WriteHeaderNow(); panic("late") }, false, http.StatusAccepted},
		{"the client gone", func(c *gin.Context) { <-c.Request.Context().Done(); panic("no store in the state") }, true, StatusClientClosedRequest},
		{"the client gone, the response aborted", func(c *gin.Context) { <-c.Request.Context().Done(); panic(http.ErrAbortHandler) }, true, StatusClientClosedRequest},
		{"the response aborted", func(c *gin.Context) { panic(http.ErrAbortHandler) }, false, StatusClientClosedRequest},
		{"a broken pipe", func(c *gin.Context) {
			panic(&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)})
		}, false, StatusClientClosedRequest},
		{"a reset connection", func(c *gin.Context) { panic(fmt.Errorf("writing: %w", syscall.ECONNRESET)) }, false, StatusClientClosedRequest},
		{"an error that is none of these", func(c *gin.Context) { panic(errors.New("no store in the state")) }, false, http.StatusInternalServerError},
		{"a nil panic", func(c *gin.Context) { panic(nil) }, false, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &recorded{}
			gin.SetMode(gin.ReleaseMode)
			r := gin.New()
			r.Use(gin.RecoveryWithWriter(io.Discard), Metrics(obs))
			r.GET("/boom", tt.handler)
			rec := httptest.NewRecorder()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.gone {
				cancel()
			}
			r.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/boom", nil))
			if len(obs.codes) != 1 || obs.routes[0] != "GET /boom" || obs.codes[0] != tt.code {
				t.Fatalf("client got %d; recorded %v %v, want one GET /boom %d", rec.Code, obs.routes, obs.codes, tt.code)
			}
		})
	}
}

// Metrics reads a panic on its way through and sends it on unchanged: the
// recovering middleware in front of it gets the handler's own value.
func TestMetricsPassesThePanicOn(t *testing.T) {
	for _, v := range []any{"no store in the state", http.ErrAbortHandler, fmt.Errorf("writing: %w", syscall.ECONNRESET), &net.OpError{Op: "write", Err: syscall.EPIPE}} {
		var got any
		r := gin.New()
		r.Use(func(c *gin.Context) {
			defer func() { got = recover(); c.AbortWithStatus(http.StatusInternalServerError) }()
			c.Next()
		}, Metrics(&recorded{}))
		r.GET("/boom", func(*gin.Context) { panic(v) })
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/boom", nil))
		if got != v {
			t.Errorf("panic(%v) reached the recovering middleware as %v", v, got)
		}
	}
}

// A request whose client left before anything was written or any status
// set is recorded as 499, not the 200 Gin assumes when a handler writes
// nothing; one answered, or given a status, before its client left keeps
// its code.
func TestMetricsRecordRequestsWhoseClientLeft(t *testing.T) {
	tests := []struct {
		name    string
		handler gin.HandlerFunc
		cancel  bool
		code    int
	}{
		{"left before an answer", func(c *gin.Context) { <-c.Request.Context().Done(); c.Abort() }, true, StatusClientClosedRequest},
		{"left after the answer", func(c *gin.Context) { c.String(http.StatusOK, "ok") }, true, http.StatusOK},
		{"status set, nothing written", func(c *gin.Context) { c.Status(http.StatusNoContent) }, false, http.StatusNoContent},
		// A DELETE answered 204 whose client then left (or half-closed):
		// the status was set, and Gin writes it after the handlers.
		{"status set, then the client left", func(c *gin.Context) { c.Status(http.StatusNoContent) }, true, http.StatusNoContent},
		// An inner middleware's own deadline, over when its defer ran: the
		// request's context is Metrics' concern, not the handler's.
		{"an inner context ended, the client still there", func(c *gin.Context) {
			ctx, cancel := context.WithCancel(c.Request.Context())
			cancel()
			c.Request = c.Request.WithContext(ctx)
		}, false, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &recorded{}
			r := gin.New()
			r.Use(Metrics(obs))
			r.GET("/work", tt.handler)
			ctx, cancel := context.WithCancel(t.Context())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/work", nil))
			if len(obs.codes) != 1 || obs.codes[0] != tt.code {
				t.Fatalf("recorded %v, want one %d", obs.codes, tt.code)
			}
		})
	}
}

// Nil arguments are refused when the middleware is built, not by every
// request that would later hit them.
func TestNilArgumentsPanicAtConstruction(t *testing.T) {
	for name, build := range map[string]func(){
		"State(nil)":   func() { State(nil) },
		"Metrics(nil)": func() { Metrics(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			build()
		})
	}
}

// withState serves r with what serve's API listener gives each request:
// the apps' state in its context.
func withState(r http.Handler, apps lifespan.Group) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), lifespan.StateContextKey, lifespan.Values(apps))))
	})
}

// Without State mounted, Get reads the state the request's context holds
// (serve's API listener puts it there), and Set layers a request's own
// value on it that neither other requests nor the apps see.
func TestGetReadsTheStateInTheRequestsContext(t *testing.T) {
	app := startedApp(t)
	r := gin.New()
	r.GET("/whoami/:user", func(c *gin.Context) {
		Set(c, userKey, c.Param("user"))
		user := MustGet(c, userKey)
		c.String(200, MustGet(c, dsnKey)+" "+user)
	})
	r.GET("/peek", func(c *gin.Context) {
		_, leaked := Get(c, userKey)
		c.String(200, "%s leaked=%v", MustGet(c, dsnKey), leaked)
	})
	h := withState(r, lifespan.Group{app})
	for _, tt := range []struct{ path, want string }{
		{"/whoami/ann", "postgres://db ann"},
		{"/peek", "postgres://db leaked=false"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != 200 || rec.Body.String() != tt.want {
			t.Errorf("GET %s: %d %q, want %q", tt.path, rec.Code, rec.Body, tt.want)
		}
	}
	if _, ok := userKey.Get(app.State()); ok {
		t.Fatal("a request's value reached the app's state")
	}
}

// State, when mounted, is what Get reads, before the context's state: it
// names one app.
func TestStateMiddlewareComesBeforeTheContexts(t *testing.T) {
	r := gin.New()
	r.Use(State(startedAppOf(t, "other", "postgres://other")))
	r.GET("/dsn", func(c *gin.Context) { c.String(200, MustGet(c, dsnKey)) })
	rec := httptest.NewRecorder()
	withState(r, lifespan.Group{startedApp(t)}).ServeHTTP(rec, httptest.NewRequest("GET", "/dsn", nil))
	if got := rec.Body.String(); got != "postgres://other" {
		t.Fatalf("got %q, want the mounted app's postgres://other", got)
	}
}

// A request with no state at all (no State, no state in its context)
// panics in MustGet with a message that says how to give it one.
func TestMustGetWithoutStateSaysWhy(t *testing.T) {
	r := gin.New()
	var msg any
	r.GET("/dsn", func(c *gin.Context) {
		defer func() { msg = recover() }()
		MustGet(c, dsnKey)
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/dsn", nil))
	s, _ := msg.(string)
	for _, want := range []string{`"dsn"`, "no lifespan state", "BaseContext", "ginberth.State"} {
		if !strings.Contains(s, want) {
			t.Errorf("panic %q does not say %q", msg, want)
		}
	}
}

// Get and MustGet on a context with no request (gin.CreateTestContext's)
// find no state and say so, rather than dereferencing nil; State mounted
// for an app that has not started is no state either, not the context's.
func TestNoStateWithoutARequestOrAStartedApp(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	if _, ok := Get(c, dsnKey); ok {
		t.Error("Get found state on a context without a request")
	}
	idle := &lifespan.App{Name: "idle"}
	r := gin.New()
	r.Use(State(idle))
	var msg any
	r.GET("/dsn", func(c *gin.Context) {
		defer func() { msg = recover() }()
		MustGet(c, dsnKey)
	})
	withState(r, lifespan.Group{startedApp(t)}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/dsn", nil))
	if s, _ := msg.(string); !strings.Contains(s, "no lifespan state") || !strings.Contains(s, "has started") {
		t.Errorf("MustGet under State of an idle app: panic %q, want one saying there is no state", msg)
	}
}

// A value Set before State (by an auth middleware in front of a route
// group that mounts State, say) is still the request's behind State, laid
// on that State's app; so is one Set after, and behind a second State the
// second's app is read, with both values.
func TestSetBeforeStateIsKept(t *testing.T) {
	traceKey := lifespan.NewKey[string]("trace")
	setUser := func(c *gin.Context) { Set(c, userKey, "ann"); c.Next() }
	setTrace := func(c *gin.Context) { Set(c, traceKey, "t-1"); c.Next() }
	for _, tt := range []struct {
		name string
		mw   []gin.HandlerFunc
		want string
	}{
		{"set, then state", []gin.HandlerFunc{setUser, State(startedApp(t))}, "ann true postgres://db"},
		{"set, state, set", []gin.HandlerFunc{setUser, State(startedApp(t)), setTrace}, "ann true postgres://db t-1"},
		{"set, set, state", []gin.HandlerFunc{setUser, setTrace, State(startedApp(t))}, "ann true postgres://db t-1"},
		{"set, state, state", []gin.HandlerFunc{setUser, State(startedApp(t)), State(startedAppOf(t, "b", "postgres://b"))}, "ann true postgres://b"},
		{"state, set, state", []gin.HandlerFunc{State(startedApp(t)), setUser, State(startedAppOf(t, "b", "postgres://b"))}, "ann true postgres://b"},
		{"set twice, then state", []gin.HandlerFunc{setUser, func(c *gin.Context) { Set(c, userKey, "bob") }, State(startedApp(t))}, "bob true postgres://db"},
		{"set, then an app not started", []gin.HandlerFunc{setUser, State(&lifespan.App{Name: "idle"})}, "ann true "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gin.New()
			r.Use(tt.mw...)
			r.GET("/", func(c *gin.Context) {
				user, ok := Get(c, userKey)
				dsn, _ := Get(c, dsnKey)
				out := fmt.Sprintf("%s %v %s", user, ok, dsn)
				if trace, ok := Get(c, traceKey); ok {
					out += " " + trace
				}
				c.String(200, out)
			})
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if got := rec.Body.String(); got != tt.want {
				t.Fatalf("handler read %q, want %q", got, tt.want)
			}
		})
	}
}
