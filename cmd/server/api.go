package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

// newAPI builds the service's Gin engine. obs, when set, records request
// metrics.
func newAPI(cfg config.Config, app *lifespan.App, obs ginberth.RequestObserver, log *slog.Logger) *gin.Engine {
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
	// info answers from the cache: it needs no database, so it keeps
	// answering through a database outage.
	v1.GET("/info", func(c *gin.Context) {
		ca := ginberth.MustGet(c, cacheKey)
		c.JSON(http.StatusOK, gin.H{
			"version": version,
			"pod":     cfg.PodName,
			"phase":   app.Phase().String(),
			"uptime":  time.Since(started).Round(time.Millisecond).String(),
			"cache":   gin.H{"items": ca.stats.Load().Items, "bytes": ca.stats.Load().Bytes, "jobRuns": ca.jobRuns.Load()},
		})
	})
	workRoute(v1, cfg) // the demo's long requests
	items := v1.Group("/items")
	items.GET("/:key", func(c *gin.Context) {
		v, err := ginberth.MustGet(c, storeKey).Get(c.Request.Context(), c.Param("key"))
		if err != nil {
			storeFailed(c, log, err)
			return
		}
		c.Data(http.StatusOK, "application/json", v)
	})
	items.PUT("/:key", func(c *gin.Context) {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, cfg.BodyLimit))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			fail(c, http.StatusRequestEntityTooLarge, "body over the %d-byte limit (BERTH_BODY_LIMIT)", cfg.BodyLimit)
			return
		case err != nil:
			fail(c, http.StatusBadRequest, "reading body: %v", err)
			return
		case !json.Valid(body):
			fail(c, http.StatusBadRequest, "body is not valid JSON")
			return
		}
		created, err := ginberth.MustGet(c, storeKey).Put(c.Request.Context(), c.Param("key"), body)
		switch {
		case err != nil:
			storeFailed(c, log, err)
		case created:
			c.Data(http.StatusCreated, "application/json", body)
		default:
			c.Data(http.StatusOK, "application/json", body)
		}
	})
	items.DELETE("/:key", func(c *gin.Context) {
		if err := ginberth.MustGet(c, storeKey).Delete(c.Request.Context(), c.Param("key")); err != nil {
			storeFailed(c, log, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	return r
}

// storeFailed answers a store error: the item's absence, a bound the
// request passes, or a database that did not answer in time (503 with
// Retry-After: the client may retry, here or on another pod).
func storeFailed(c *gin.Context, log *slog.Logger, err error) {
	var limit *store.LimitError
	var badKey *store.KeyError
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "no item %q", c.Param("key"))
	case errors.As(err, &limit) && limit.What == "items":
		fail(c, http.StatusInsufficientStorage, "%v (BERTH_MAX_ITEMS)", err)
	case errors.As(err, &limit) && limit.What == "value size":
		fail(c, http.StatusRequestEntityTooLarge, "%v (BERTH_BODY_LIMIT)", err)
	case errors.As(err, &limit), errors.As(err, &badKey):
		fail(c, http.StatusBadRequest, "%v", err)
	case c.Request.Context().Err() != nil:
		c.Abort() // the client went away: no one reads an answer
	default:
		log.Warn("store unavailable", "method", c.Request.Method, "route", c.FullPath(), "error", err.Error())
		c.Header("Retry-After", "1")
		fail(c, http.StatusServiceUnavailable, "the database did not answer; retry later")
	}
}

func fail(c *gin.Context, code int, format string, args ...any) {
	c.AbortWithStatusJSON(code, gin.H{"error": fmt.Sprintf(format, args...)})
}
