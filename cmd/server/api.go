package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/pkg/ginberth"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/gin-gonic/gin"
)

// newAPI builds the service's Gin engine. obs, when set, records request
// metrics.
func newAPI(cfg config.Config, app *lifespan.App, obs ginberth.RequestObserver, log *slog.Logger) *gin.Engine {
	up := &uptime{started: time.Now()}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Gin's redirects to and from a trailing slash answer before any
	// middleware (unmeasured, without nosniff, in HTML): a path off by a
	// slash is a JSON 404 like any other.
	r.RedirectTrailingSlash = false
	r.Use(recovery(log), noSniff)
	if obs != nil {
		r.Use(ginberth.Metrics(obs))
	}
	// No ginberth.State: serve puts the app's state in every request's
	// context, where ginberth.MustGet finds it at no cost per request.
	r.NoRoute(func(c *gin.Context) {
		// Gin routes the decoded path, so a key holding an escaped "/"
		// would read as a path no route has.
		if strings.HasPrefix(c.Request.URL.Path, itemsPrefix) && strings.Contains(strings.ToUpper(c.Request.URL.RawPath), "%2F") {
			fail(c, http.StatusBadRequest, "key %q contains %q: a key is one path segment, without /", strings.TrimPrefix(c.Request.URL.Path, itemsPrefix), "/")
			return
		}
		fail(c, http.StatusNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path)
	})
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method %s not allowed here", c.Request.Method)
	})

	v1 := r.Group("/api/v1")
	// info answers from the cache: it needs no database, so it keeps
	// answering through a database outage.
	getOrHead(v1, "/info", func(c *gin.Context) {
		ca := ginberth.MustGet(c, cacheKey)
		stats := ca.stats.Load() // items and bytes from one refresh
		c.JSON(http.StatusOK, info{
			Version: version,
			Pod:     cfg.PodName,
			Phase:   app.Phase().String(),
			Uptime:  up.String(),
			Cache:   infoCache{Items: stats.Items, Bytes: stats.Bytes, JobRuns: ca.jobRuns.Load()},
		})
	})
	workRoute(v1, cfg) // the demo's long requests
	items := v1.Group("/items")
	// Gin never matches an empty :key: /api/v1/items/ is its own route, so
	// an empty key is a 400 that says so, not a 404 "no route".
	emptyKey := func(c *gin.Context) {
		fail(c, http.StatusBadRequest, "key is empty; want /api/v1/items/KEY")
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		items.Handle(m, "/", emptyKey)
	}
	getOrHead(items, "/:key", func(c *gin.Context) {
		v, err := ginberth.MustGet(c, storeKey).Get(c.Request.Context(), c.Param("key"))
		if err != nil {
			storeFailed(c, log, err)
			return
		}
		c.Data(http.StatusOK, "application/json", v)
	})
	items.PUT("/:key", func(c *gin.Context) {
		// Clients remove a "." or ".." segment from a URL (RFC 3986 5.2.4;
		// browsers and fetch also when escaped as %2E): an item stored
		// under one could be read back only by a client that does not.
		// One stored before this check stays readable and deletable.
		if k := c.Param("key"); k == "." || k == ".." {
			fail(c, http.StatusBadRequest, "key %q is a dot-segment, which clients remove from a URL: no client could be sure to read it back; choose another key", k)
			return
		}
		// A singleton field (RFC 9110 8.3): a proxy in front may have read
		// another of its lines than the first.
		if cts := c.Request.Header.Values("Content-Type"); len(cts) > 1 {
			fail(c, http.StatusBadRequest, "Content-Type given %d times (%q); send it once", len(cts), cts)
			return
		}
		if ct := c.GetHeader("Content-Type"); ct != "" && !isJSON(ct) {
			fail(c, http.StatusUnsupportedMediaType, "Content-Type %q is not JSON; send application/json", ct)
			return
		}
		// A compressed body would be read as its bytes: not JSON, and
		// refused as if the client had sent something else.
		if ce := encoded(c.Request.Header); ce != "" {
			fail(c, http.StatusUnsupportedMediaType, "Content-Encoding %q is not supported; send the body uncompressed", ce)
			return
		}
		// A body announced as too large is refused before it is read, so a
		// client that sent "Expect: 100-continue" never sends it.
		if c.Request.ContentLength > cfg.BodyLimit {
			fail(c, http.StatusRequestEntityTooLarge, "body of %d bytes is over the %d-byte limit (BERTH_BODY_LIMIT)", c.Request.ContentLength, cfg.BodyLimit)
			return
		}
		body, err := readBody(c, cfg.BodyLimit)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			fail(c, http.StatusRequestEntityTooLarge, "body over the %d-byte limit (BERTH_BODY_LIMIT)", cfg.BodyLimit)
			return
		case err != nil:
			bodyFailed(c, err, len(body))
			return
		case !utf8.Valid(body):
			// json.Valid does not check: a strict client could not decode
			// what GET would serve.
			fail(c, http.StatusBadRequest, "body is not UTF-8; JSON must be (RFC 8259)")
			return
		case !json.Valid(body):
			fail(c, http.StatusBadRequest, "body is not valid JSON: %s", jsonProblem(body))
			return
		}
		if at, ok := loneSurrogate(body); ok {
			// Valid JSON, but no Unicode text: a strict client refuses it,
			// and Go's decoder reads U+FFFD in its place.
			fail(c, http.StatusBadRequest, "body escapes half of a UTF-16 surrogate pair (%s at byte %d) without the other half; JSON text must be Unicode (RFC 8259 8.2): escape the pair, or U+FFFD", body[at:at+6], at)
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

// loneSurrogate finds the first \u escape in body, valid JSON, that is
// half of a UTF-16 surrogate pair without the other half, and returns its
// offset. In valid JSON every backslash begins an escape in a string, and
// every \u has four hex digits after it.
func loneSurrogate(body []byte) (int, bool) {
	escaped := func(i int) (rune, bool) { // the rune \uXXXX at i, if one is there
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, h := range body[i+2 : i+6] {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			default: // 'A' to 'F', as json.Valid allows no other
				r = r<<4 | rune(h-'A'+10)
			}
		}
		return r, true
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := escaped(i)
		switch {
		case !ok: // \n, \\ and the like: skip the escaped byte
			i++
			continue
		case !utf16.IsSurrogate(r):
		case r < 0xDC00: // the first half: the second must follow
			if lo, ok := escaped(i + 6); ok && utf16.DecodeRune(r, lo) != unicode.ReplacementChar {
				i += 6
				break
			}
			return i, true
		default: // a second half with no first
			return i, true
		}
		i += 5
	}
	return 0, false
}

// jsonProblem says what is wrong with a body json.Valid refused, and
// where: the decoder's error, with the byte it stopped at.
func jsonProblem(body []byte) string {
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("%v (at byte %d)", err, syntax.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "refused"
}

// info is the body of GET /api/v1/info. A typed body, where a gin.H map
// would box each value and sort its keys on every request; the fields are
// in the keys' sorted order, so the bytes are what the map gave.
type info struct {
	Cache   infoCache `json:"cache"`
	Phase   string    `json:"phase"`
	Pod     string    `json:"pod"`
	Uptime  string    `json:"uptime"`
	Version string    `json:"version"`
}

// uptime is the service's uptime as /api/v1/info reports it, rounded to
// the millisecond. Formatting a duration allocates its text; under load
// many requests fall in one millisecond, so the last text made is kept
// and shared by every request that rounds to it.
type uptime struct {
	started time.Time
	last    atomic.Pointer[uptimeText]
}

// uptimeText is one rounded uptime and its text.
type uptimeText struct {
	d    time.Duration
	text string
}

func (u *uptime) String() string {
	d := time.Since(u.started).Round(time.Millisecond)
	if last := u.last.Load(); last != nil && last.d == d {
		return last.text
	}
	t := &uptimeText{d, d.String()}
	u.last.Store(t)
	return t.text
}

// infoCache is info's view of the cache the refresh job keeps.
type infoCache struct {
	Bytes   int64 `json:"bytes"`
	Items   int64 `json:"items"`
	JobRuns int64 `json:"jobRuns"`
}

// storeFailed answers a store error: the item's absence, a bound the
// request passes, a database out of space (507: nothing was stored, and a
// retry soon would fail too), a refusal the database would repeat (500,
// without Retry-After), or a database that did not answer in time (503
// with Retry-After: the client may retry, here or on another pod).
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
	case errors.Is(err, store.ErrTooLarge):
		fail(c, http.StatusRequestEntityTooLarge, "the database refuses a value this large; nothing was stored (lower BERTH_BODY_LIMIT to what it holds)")
	case errors.Is(err, store.ErrOutOfSpace):
		log.Error("database out of space", "method", c.Request.Method, "route", c.FullPath(), "error", err.Error())
		fail(c, http.StatusInsufficientStorage, "the database is out of space; nothing was stored")
	case errors.Is(err, store.ErrRefused):
		log.Error("database refused", "method", c.Request.Method, "route", c.FullPath(), "error", err.Error())
		fail(c, http.StatusInternalServerError, "the database refused the operation, and would again; the service's log says why")
	case c.Request.Context().Err() != nil:
		c.Abort() // the client went away: no one reads an answer
	default:
		log.Warn("store unavailable", "method", c.Request.Method, "route", c.FullPath(), "error", err.Error())
		c.Header("Retry-After", "1")
		fail(c, http.StatusServiceUnavailable, "the database did not answer; retry later")
	}
}

// bodyFailed answers a request whose body could not be read after got
// bytes. The network's errors name the server's and the client's socket
// addresses (a pod's IP), which are not the client's to read: a body that
// did not arrive within the server's read timeout is a 408, one that
// ended early (before its Content-Length, or its last chunk) a 400, each saying so in the service's
// terms; a connection that broke has no one to answer. What is left is
// net/http's account of a malformed body (a bad chunk), which names no
// address.
func bodyFailed(c *gin.Context, err error, got int) {
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		fail(c, http.StatusRequestTimeout, "the body did not arrive within the server's read timeout (%d bytes came); nothing was stored", got)
	case errors.Is(err, io.ErrUnexpectedEOF) && c.Request.ContentLength >= 0:
		fail(c, http.StatusBadRequest, "the body ended after %d of the %d bytes its Content-Length announced; nothing was stored", got, c.Request.ContentLength)
	case errors.Is(err, io.ErrUnexpectedEOF):
		fail(c, http.StatusBadRequest, "the body ended after %d bytes, before its last chunk; nothing was stored", got)
	case errors.As(err, &netErr):
		c.Abort() // the connection broke: no one reads an answer
	default:
		fail(c, http.StatusBadRequest, "reading body: %v", err)
	}
}

// readBody reads the request's body, up to limit bytes. The buffer starts
// at the announced Content-Length, but never above readAhead: a client that
// announces a large body and sends nothing must not make the service
// reserve it (a few hundred such connections would exceed the pod's memory).
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(min(n, limit, readAhead)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(underlying(c.Writer), c.Request.Body, limit))
	return buf.Bytes(), err
}

// encoded is the first content coding h's Content-Encoding lines name
// other than identity, "" for none: every line and every comma-separated
// coding counts, as each is applied to the body.
func encoded(h http.Header) string {
	for _, line := range h.Values("Content-Encoding") {
		for coding := range strings.SplitSeq(line, ",") {
			if coding = strings.TrimSpace(coding); coding != "" && !strings.EqualFold(coding, "identity") {
				return coding
			}
		}
	}
	return ""
}

// underlying is net/http's own ResponseWriter beneath w's wrappers (Gin's,
// the middleware's). http.MaxBytesReader tells only that one that the body
// went past its limit, so the server closes the connection after the 413
// rather than reading up to 256 KiB more of the body before sending it.
func underlying(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// readAhead bounds what readBody reserves before the body arrives.
const readAhead = 4 << 10

// getOrHead serves GET and HEAD on one route: HEAD works wherever GET does
// (net/http sends the headers and drops the body).
func getOrHead(r gin.IRoutes, path string, h gin.HandlerFunc) {
	r.GET(path, h)
	r.HEAD(path, h)
}

// itemsPrefix is the items routes' path before the key.
const itemsPrefix = "/api/v1/items/"

// recovery answers a handler's panic as every other error, a JSON 500,
// and logs the panic and its stack through the service's logger, the one
// stream its log pipeline reads (gin.Recovery writes a plain-text block,
// in colour, to stderr, and answers with no body). A panic after part of
// the answer was written cuts the connection, as net/http does without a
// recovery, so the client sees the answer incomplete rather than taking
// what came for all of it; so does one whose client is gone or whose
// handler abandoned its answer (a broken pipe, a reset connection,
// http.ErrAbortHandler, as httputil.ReverseProxy raises when its upstream
// breaks), which is not logged (the request's metrics read 499).
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if ginberth.AbortsResponse(v) {
				panic(http.ErrAbortHandler) // net/http closes the connection, and logs nothing
			}
			log.Error("handler panicked", "method", c.Request.Method, "route", c.FullPath(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if c.Writer.Written() {
				panic(http.ErrAbortHandler) // part of the answer is out: cut it short, visibly
			}
			fail(c, http.StatusInternalServerError, "internal error: the service's log says why")
		}()
		c.Next()
	}
}

// noSniff tells browsers not to guess a response's type from its bytes.
func noSniff(c *gin.Context) {
	c.Writer.Header()["X-Content-Type-Options"] = nosniff
}

// nosniff is the header's one value, shared by every response: Header.Set
// would canonicalise the key and allocate a slice on each. net/http never
// writes into a header's slice (Set replaces it, Add appends to a full one).
var nosniff = []string{"nosniff"}

// isJSON reports whether a Content-Type is JSON (application/json, or a
// +json type such as application/merge-patch+json).
func isJSON(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && (t == "application/json" || strings.HasSuffix(t, "+json"))
}

func fail(c *gin.Context, code int, format string, args ...any) {
	c.AbortWithStatusJSON(code, gin.H{"error": fmt.Sprintf(format, args...)})
}
