package ginberth

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

// stateKey is the gin.Context key holding the request's *lifespan.State: a
// pointer, so a lookup hashes one word.
var stateKey = new(byte)

// keysPool holds gin.Context.Keys maps between requests. Gin gives every
// request a nil Keys map and would allocate a new one for the state; State
// lends one instead and takes it back when nothing else was stored in it.
// A map in the pool keeps its one entry (stateKey and the state it last
// carried): writing the same entry again is skipped, and deleting and
// re-adding it on every request cost about as much as the rest of State.
var keysPool = sync.Pool{New: func() any { return make(map[any]any, 1) }}

// State returns middleware that gives each request the state of app, read
// when the request arrives: handlers behind serve's gate always see the
// complete, read-only state. Behind serve you need not mount it: serve
// puts its apps' state in every API request's context, which [Get] reads
// when no State was mounted, at no cost per request. Mount State for an
// engine served some other way (a test's httptest recorder, another
// server), or to have handlers read one app's state alone. The state can
// be read by handlers and by middleware mounted after State, while the
// request runs. State panics if app is nil.
func State(app *lifespan.App) gin.HandlerFunc {
	if app == nil {
		panic("ginberth: State with a nil *lifespan.App")
	}
	return func(c *gin.Context) {
		if c.Keys != nil { // an earlier middleware made the map: share it
			c.Set(stateKey, relayered(c, app.State()))
			c.Next()
			return
		}
		st := app.State()
		keys := keysPool.Get().(map[any]any)
		if keys[stateKey] != st {
			keys[stateKey] = st
		}
		c.Keys = keys
		c.Next()
		// Take the map back only if it is still the request's and holds
		// nothing but the state's entry, and the layers Set added (which
		// go): values handlers stored with c.Set stay for the middleware
		// before this one, which may read them after its own c.Next. It
		// goes back carrying the app's state, not a layer a handler Set,
		// whose values the pool (or Gin's, which keeps the Context) would
		// keep alive.
		if reflect.ValueOf(c.Keys).UnsafePointer() != reflect.ValueOf(keys).UnsafePointer() {
			return
		}
		if _, set := keys[layersKey]; set && len(keys) == 2 {
			delete(keys, layersKey)
		}
		if v, ok := keys[stateKey]; ok && len(keys) == 1 {
			if v != st {
				keys[stateKey] = st
			}
			c.Keys = nil
			keysPool.Put(keys)
		}
	}
}

// layersKey is the gin.Context key holding what the request Set, in
// order, each as a function that lays its value on a parent. A State
// mounted after a Set (behind an auth middleware that Set the user, say)
// lays them again on its app's state, so the handler reads both.
var layersKey = new(byte)

// layers is the value under layersKey.
type layers []func(parent lifespan.Values) *lifespan.State

// setLayers is what the request Set so far, in order; none when nothing
// was Set.
func setLayers(c *gin.Context) layers {
	v, _ := c.Get(layersKey)
	done, _ := v.(layers)
	return done
}

// relayered is st with the request's layers laid on it again, in order.
func relayered(c *gin.Context, st *lifespan.State) *lifespan.State {
	for _, layer := range setLayers(c) {
		st = layer(st)
	}
	return st
}

// current is the request's state: the layer Set or State put in c.Keys,
// or else the state its server put in its context (serve does, under
// lifespan.StateContextKey). It reads c.Keys through c.Get, under Gin's
// lock, as a handler's goroutines may call c.Set meanwhile (a map read
// beside a write is a fatal error no Recovery catches).
func current(c *gin.Context) lifespan.Values {
	if v, ok := c.Get(stateKey); ok {
		if st, ok := v.(*lifespan.State); ok {
			if st == nil { // State's app has not started: no state, not the context's
				return nil
			}
			return st
		}
	}
	if c.Request == nil {
		return nil
	}
	v, _ := c.Request.Context().Value(lifespan.StateContextKey).(lifespan.Values)
	return v
}

// Get returns the value of key for this request: one the request Set, or
// else the app's: from State's app when State is mounted (none while that
// app has not started, whatever the context holds), else from the state
// serve put in the request's context, where each app of serve's Group is
// read in order and the first that set key wins.
func Get[T any](c *gin.Context, key lifespan.Key[T]) (T, bool) {
	return key.Get(current(c))
}

// MustGet is Get for values that must be there; it panics (which Gin's
// Recovery turns into a 500) when the value is missing.
func MustGet[T any](c *gin.Context, key lifespan.Key[T]) T {
	v := current(c)
	if v == nil {
		panic(fmt.Sprintf("ginberth: state %q: this request has no lifespan state: serve the engine with serve "+
			"(its API listener, or a server whose BaseContext is serve.Server.BaseContext), or mount ginberth.State "+
			"for an app that has started", key.Name()))
	}
	return key.MustGet(v)
}

// Set adds value under key for this request only: a layer on top of the
// app's state (see lifespan.Key.With) that no other request sees. A State
// mounted after Set lays the value again on its own app's state, so a
// value an earlier middleware Set (an authenticated user, say) stays
// readable beside that app's.
func Set[T any](c *gin.Context, key lifespan.Key[T], value T) {
	layer := func(parent lifespan.Values) *lifespan.State { return key.With(parent, value) }
	c.Set(stateKey, layer(current(c)))
	c.Set(layersKey, append(slices.Clip(setLayers(c)), layer))
}

// RequestObserver records finished requests; *metrics.HTTP is one.
type RequestObserver interface {
	ObserveRequest(method, route string, code int, d time.Duration)
}

// StatusClientClosedRequest is the code Metrics reports for a request
// whose client went away before anything was written to it (nginx's 499,
// "client closed request"): no answer was sent, so it was no success.
const StatusClientClosedRequest = 499

// Metrics returns middleware that reports every request to obs with its
// route template; requests that match no route are reported as
// "unmatched", so a scan of random paths cannot grow the label set. A
// request whose handler panics is reported too, on the panic's way to a
// recovering middleware mounted before Metrics (gin.Recovery): as a 500,
// the answer that middleware gives, unless the handler had already
// written its status (then with that status), or its client had gone, or
// the panic is one Recovery writes nothing for (http.ErrAbortHandler, a
// broken pipe, a reset connection): then as StatusClientClosedRequest, a
// response abandoned (Gin sends an empty 200 after it if the connection
// still works). To tell those apart, Metrics recovers a panic that comes
// before anything was written and raises it again unchanged, so its
// deferred call is the top frame of that panic's trace (the handler's
// frames are still below it). A request that ends with nothing written and its
// status still 200 (Gin's default, or set) after its context was cancelled
// (the client left, or the server cut it off) is reported as
// StatusClientClosedRequest: nothing was answered; any other status the
// handler set is kept. Gin's trailing-slash
// redirects (Engine.RedirectTrailingSlash, on by default) answer before
// any middleware, so they are not reported: turn them off to have them.
// A request a handler forwards with Engine.HandleContext runs the engine's
// middleware again on the same gin.Context, and is reported once for each
// run, each time under the route it was forwarded to: answer with a
// redirect, or call the other route's handler function directly, to
// count it once. Metrics panics if obs is nil.
func Metrics(obs RequestObserver) gin.HandlerFunc {
	if obs == nil {
		panic("ginberth: Metrics with a nil RequestObserver")
	}
	return func(c *gin.Context) {
		begin := time.Since(epoch)
		ctx := c.Request.Context() // the request's own: an inner middleware's may end with it
		panicked := true
		defer func() {
			route, code := c.FullPath(), c.Writer.Status()
			if route == "" {
				route = "unmatched"
			}
			if !c.Writer.Written() {
				aborted := false
				if panicked {
					// Read the panic, and send it on its way to the
					// recovering middleware unchanged.
					if v := recover(); v != nil {
						defer panic(v)
						aborted = AbortsResponse(v)
					}
				}
				if panicked && !aborted && ctx.Err() == nil {
					code = http.StatusInternalServerError
				} else if panicked || code == http.StatusOK && ctx.Err() != nil {
					// Nothing written, and the client gone: Gin's 200 was
					// never meant, and a panic's 500 reached no one
					// (Recovery writes nothing at all for a broken pipe or
					// http.ErrAbortHandler).
					code = StatusClientClosedRequest
				}
			}
			obs.ObserveRequest(c.Request.Method, route, code, time.Since(epoch)-begin)
		}()
		c.Next()
		panicked = false
	}
}

// AbortsResponse reports whether a panic's value means the response is
// abandoned, not failed: the connection is broken or the handler meant to
// abort it (http.ErrAbortHandler, or a write's EPIPE or ECONNRESET).
// gin.Recovery answers such a panic with nothing, and [Metrics] counts its
// request as 499 when nothing was written; a recovery of one's own that
// asks it treats those requests as Metrics does.
func AbortsResponse(v any) bool {
	err, ok := v.(error)
	return ok && (errors.Is(err, http.ErrAbortHandler) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET))
}

// epoch anchors request timing on the monotonic clock: time.Since(epoch)
// reads only that clock, where time.Now reads the wall clock too.
var epoch = time.Now()
