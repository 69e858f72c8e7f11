package ginberth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"

	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

var greetingKey = lifespan.NewKey[string]("greeting")

// Handlers read the app's typed state through the Gin context; a request's
// own additions stay with that request. An engine served without package
// serve, as here, mounts State; behind serve it needs none, as serve's API
// listener puts the state in every request's context.
func Example() {
	app := &lifespan.App{Name: "api"}
	app.Append(lifespan.Hook{Name: "greeting", Start: func(_ context.Context, s *lifespan.Scope) (lifespan.StopFunc, error) {
		greetingKey.Set(s, "hello")
		return nil, nil
	}})
	_ = app.Start(context.Background())
	defer app.Stop(context.Background())

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), ginberth.State(app))
	r.GET("/greet/:name", func(c *gin.Context) {
		if c.Query("casual") != "" {
			ginberth.Set(c, greetingKey, "hi") // this request's alone
		}
		c.String(200, ginberth.MustGet(c, greetingKey)+", "+c.Param("name"))
	})
	for _, target := range []string{"/greet/ann?casual=1", "/greet/bob"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		fmt.Println(rec.Body.String())
	}
	// Output:
	// hi, ann
	// hello, bob
}

// A recovery of one's own reads a panic as Metrics does: a client gone or
// an answer abandoned is no handler failure.
func ExampleAbortsResponse() {
	for _, v := range []any{http.ErrAbortHandler, fmt.Errorf("write: %w", syscall.EPIPE), "nil map"} {
		fmt.Println(ginberth.AbortsResponse(v))
	}
	// Output:
	// true
	// true
	// false
}
