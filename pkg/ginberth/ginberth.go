package ginberth

import (
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

const stateKey = "github.com/berth-dev/berth/state"

// State returns middleware that gives each request the lifespan's state.
// Mount it on the engine (or group) whose handlers read state. The state is
// read when the request arrives, so handlers behind the serve gate always
// see the complete, read-only state.
func State(app *lifespan.Lifespan) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(stateKey, app.State())
		c.Next()
	}
}

func current(c *gin.Context) *lifespan.State {
	v, _ := c.Get(stateKey)
	st, _ := v.(*lifespan.State)
	return st
}

// Get returns the value of key for this request: one the request Set, or
// else the lifespan's.
func Get[T any](c *gin.Context, key lifespan.Key[T]) (T, bool) {
	return key.Get(current(c))
}

// MustGet is Get for values that must be there; it panics (which Gin's
// Recovery turns into a 500) when the value is missing.
func MustGet[T any](c *gin.Context, key lifespan.Key[T]) T {
	return key.MustGet(current(c))
}

// Set adds value under key for this request only.
func Set[T any](c *gin.Context, key lifespan.Key[T], value T) {
	c.Set(stateKey, key.With(current(c), value))
}

// RequestObserver records finished requests; *metrics.HTTP is one.
type RequestObserver interface {
	Begin()
	ObserveRequest(method, route string, code int, d time.Duration)
}

// Metrics returns middleware that reports every request to obs with its
// route template; requests that match no route are reported as
// "unmatched", so a scan of random paths cannot grow the label set.
func Metrics(obs RequestObserver) gin.HandlerFunc {
	return func(c *gin.Context) {
		begin := time.Now()
		obs.Begin()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		obs.ObserveRequest(c.Request.Method, route, c.Writer.Status(), time.Since(begin))
	}
}
