package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

// newAPI builds the service's Gin engine. obs, when set, records request
// metrics.
func newAPI(cfg config.Config, app *lifespan.App, obs ginberth.RequestObserver) *gin.Engine {
	started := time.Now()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	if obs != nil {
		r.Use(ginberth.Metrics(obs))
	}
	r.Use(ginberth.State(app))
	r.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path)
	})
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method %s not allowed here", c.Request.Method)
	})

	v1 := r.Group("/api/v1")
	v1.GET("/info", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{
			"version": version,
			"pod":     cfg.PodName,
			"phase":   app.Phase().String(),
			"uptime":  time.Since(started).Round(time.Millisecond).String(),
			"cache":   gin.H{"keys": ginberth.MustGet(c, cacheKey).keys.Load(), "jobRuns": ginberth.MustGet(c, cacheKey).jobRuns.Load()},
		})
	})
	workRoute(v1, cfg) // the demo's long requests
	items := v1.Group("/items")
	items.GET("/:key", func(c *gin.Context) {
		v, ok, err := ginberth.MustGet(c, storeKey).get(c.Param("key"))
		switch {
		case err != nil:
			fail(c, http.StatusServiceUnavailable, "%v", err)
		case !ok:
			fail(c, http.StatusNotFound, "no item %q", c.Param("key"))
		default:
			c.Data(http.StatusOK, "application/json", v)
		}
	})
	items.PUT("/:key", func(c *gin.Context) {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, cfg.BodyLimit))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			fail(c, http.StatusRequestEntityTooLarge, "body over the %d-byte limit", cfg.BodyLimit)
			return
		case err != nil:
			fail(c, http.StatusBadRequest, "reading body: %v", err)
			return
		case !json.Valid(body):
			fail(c, http.StatusBadRequest, "body is not valid JSON")
			return
		}
		created, err := ginberth.MustGet(c, storeKey).put(c.Param("key"), body)
		switch {
		case err != nil:
			fail(c, http.StatusServiceUnavailable, "%v", err)
		case created:
			c.Data(http.StatusCreated, "application/json", body)
		default:
			c.Data(http.StatusOK, "application/json", body)
		}
	})
	items.DELETE("/:key", func(c *gin.Context) {
		ok, err := ginberth.MustGet(c, storeKey).delete(c.Param("key"))
		switch {
		case err != nil:
			fail(c, http.StatusServiceUnavailable, "%v", err)
		case !ok:
			fail(c, http.StatusNotFound, "no item %q", c.Param("key"))
		default:
			c.Status(http.StatusNoContent)
		}
	})
	return r
}

func fail(c *gin.Context, code int, format string, args ...any) {
	c.AbortWithStatusJSON(code, gin.H{"error": fmt.Sprintf(format, args...)})
}
