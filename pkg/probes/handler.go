package probes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// HandlerOptions configures a probe handler.
type HandlerOptions struct {
	// ShowReasons puts check errors in verbose and JSON output. Set it only
	// on a port the public cannot reach (the admin port).
	ShowReasons bool
}

// Handler serves /livez, /readyz and /startupz and their per-check
// sub-paths. Mount it at the root of a mux (or at the paths themselves).
func (r *Registry) Handler(opts HandlerOptions) http.Handler {
	return &handler{r: r, opts: opts}
}

// The headers' values, shared by every response: net/http never writes
// into a header's slice, and setting them this way skips canonicalising
// the key and allocating a slice per response, on the path the kubelet
// calls every few seconds and a busy process must still answer quickly.
var (
	noStore   = []string{"no-store"}
	nosniff   = []string{"nosniff"}
	textPlain = []string{"text/plain; charset=utf-8"}
	okBody    = []byte("ok\n")
)

// resultsPool lends probes the array of their report's results, so that a
// probe, which the kubelet sends every few seconds and a busy process must
// still answer quickly, does not allocate one each time.
var resultsPool = sync.Pool{New: func() any { return new([]Result) }}

// maxPooledResults is the largest array of results resultsPool keeps.
const maxPooledResults = 64

type handler struct {
	r    *Registry
	opts HandlerOptions
}

type jsonCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

type jsonReport struct {
	Probe    string      `json:"probe"`
	Status   string      `json:"status"`
	Checks   []jsonCheck `json:"checks"`
	Excluded []string    `json:"unknownExcludes,omitempty"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path := strings.TrimPrefix(req.URL.Path, "/")
	probe, only, _ := strings.Cut(path, "/")
	var kind Kind
	for _, kp := range kindPaths {
		if kp.path == probe {
			kind = kp.kind
		}
	}
	if kind == 0 {
		http.Error(w, fmt.Sprintf("no probe at /%s: the probes are /livez, /readyz and /startupz", probe), http.StatusNotFound)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	var excludeBuf [8]string
	q := parseProbeQuery(req.URL.RawQuery, excludeBuf[:0])
	asJSON := acceptsJSON(req.Header)
	if q.formatSet {
		switch v := q.format; {
		case v == "": // as if absent: Accept decides
		case strings.EqualFold(v, "json"):
			asJSON = true
		case strings.EqualFold(v, "text"):
			asJSON = false
		default:
			http.Error(w, fmt.Sprintf("format %q: want json or text (the default)", v), http.StatusBadRequest)
			return
		}
	}
	// A sub-path asks for its one check: ?exclude= does not apply there.
	exclude := q.exclude
	if only != "" {
		exclude = nil
	}
	// A check the probe started runs to its own timeout even if the
	// client (the kubelet, whose timeoutSeconds may be shorter) leaves:
	// its result is the dependency's, whoever waits for it.
	results := resultsPool.Get().(*[]Result)
	rep, ok := h.r.evaluate(req.Context(), true, kind, only, exclude, *results)
	defer func() {
		// Back to the pool once the response is written, holding no check's
		// error or name meanwhile; a probe of very many checks does not keep
		// its large array there.
		if cap(rep.Checks) <= maxPooledResults {
			clear(rep.Checks)
			*results = rep.Checks[:0]
			resultsPool.Put(results)
		}
	}()
	if !ok {
		checks := "it has none"
		if names := h.r.names(kind); len(names) > 0 {
			checks = "its checks: " + strings.Join(names, ", ")
		}
		http.Error(w, fmt.Sprintf("%s has no check %q; %s", probe, only, checks), http.StatusNotFound)
		return
	}
	hdr := w.Header()
	hdr["Cache-Control"], hdr["X-Content-Type-Options"] = noStore, nosniff
	code := http.StatusOK
	if !rep.Passing {
		code = http.StatusServiceUnavailable
	}
	if asJSON {
		h.writeJSON(w, code, probe, rep)
		return
	}
	hdr["Content-Type"] = textPlain
	w.WriteHeader(code)
	verbose := q.verbose
	if rep.Passing && !verbose {
		_, _ = w.Write(okBody)
		return
	}
	var b strings.Builder
	for _, c := range rep.Checks {
		if c.Passing {
			fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
		} else {
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, h.reason(c))
		}
	}
	if len(rep.Excluded) > 0 {
		fmt.Fprintf(&b, "warn: some checks cannot be excluded: no matches for %s\n", strings.Join(rep.Excluded, ", "))
	}
	if rep.Passing {
		fmt.Fprintf(&b, "%s check passed\n", probe)
	} else {
		fmt.Fprintf(&b, "%s check failed\n", probe)
	}
	_, _ = w.Write([]byte(b.String()))
}

// maxQueryParams is url.ParseQuery's default limit: it reads nothing of a
// query with more parameters.
const maxQueryParams = 10000

// probeQuery is what a probe's query asks for: ?format= (its first
// value), ?exclude= (every value, in order) and ?verbose (with any value).
type probeQuery struct {
	format             string
	formatSet, verbose bool
	exclude            []string
}

// parseProbeQuery reads raw as url.ParseQuery does (pairs split at '&', a
// pair holding ';' skipped, '+' and %XX unescaped, a pair that does not
// unescape skipped) but keeps only what a probe reads, appending the
// excludes to exclude: it builds no map, which the kubelet's probe (with
// its ?exclude=) would otherwise allocate every few seconds.
func parseProbeQuery(raw string, exclude []string) probeQuery {
	q := probeQuery{exclude: exclude}
	if strings.Count(raw, "&") >= maxQueryParams {
		return q // url.ParseQuery reads none of them (at its default limit)
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		switch k {
		case "format":
			if !q.formatSet {
				q.format, q.formatSet = v, true
			}
		case "exclude":
			q.exclude = append(q.exclude, v)
		case "verbose":
			q.verbose = true
		}
	}
	return q
}

func (h *handler) reason(c Result) string {
	switch {
	case !h.opts.ShowReasons:
		return "reason withheld"
	case c.Err == nil:
		return fmt.Sprintf("recovering: its last %d runs passed, fewer than its SuccessThreshold", c.ConsecutiveSuccesses)
	default:
		return c.Err.Error()
	}
}

func (h *handler) writeJSON(w http.ResponseWriter, code int, probe string, rep Report) {
	out := jsonReport{Probe: probe, Status: "ok", Checks: make([]jsonCheck, 0, len(rep.Checks)), Excluded: rep.Excluded}
	if !rep.Passing {
		out.Status = "failed"
	}
	for _, c := range rep.Checks {
		jc := jsonCheck{Name: c.Name, OK: c.Passing}
		if !c.Passing {
			jc.Reason = h.reason(c)
		}
		out.Checks = append(out.Checks, jc)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(out)
}
