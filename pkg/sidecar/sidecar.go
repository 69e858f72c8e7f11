package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/backoff"
	"github.com/berth-dev/berth/internal/httpurl"
	"github.com/berth-dev/berth/internal/redact"
	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// Target is one sidecar to wait for.
type Target struct {
	// Name identifies it in logs and the "sidecar/NAME" check: host:port,
	// the port as a number without leading zeros (for an http(s) URL that
	// names no port, its scheme's: host:80 or host:443).
	Name string
	// URL is an http(s) readiness URL (2xx means ready) or tcp://host:port
	// (an accepted connection means ready).
	URL *url.URL
}

// ParseTargets reads readiness targets: http://…, https://… (the port may
// be left to the scheme's), tcp://host:port or a bare host:port (TCP). A TCP target is host:port alone: one written
// with a path (a readiness URL missing its "http://") is refused, as a
// connection accepted would then pass for ready. The error names every
// target refused, each quoted with its password, if any, hidden.
func ParseTargets(specs []string) ([]Target, error) {
	var out []Target
	var problems []string
	seen := map[string]bool{}
	for _, in := range specs {
		in = strings.TrimSpace(in)
		if in == "" {
			continue
		}
		t, err := parseTarget(in)
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case seen[t.Name]:
			problems = append(problems, fmt.Sprintf("sidecar %q: %s listed twice", shownTarget(in), t.Name))
		default:
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// defaultPorts are the ports an http(s) target means when it names none.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// withScheme is target in as a URL: a bare host:port is TCP.
func withScheme(in string) string {
	if strings.Contains(in, "://") {
		return in
	}
	return "tcp://" + in
}

// shownTarget is in as errors show it: with its password hidden, written
// as it was given (without the tcp:// added to a bare host:port).
func shownTarget(in string) string {
	spec := withScheme(in)
	return strings.TrimPrefix(redact.URL(spec), strings.TrimSuffix(spec, in))
}

// parseTarget reads one target, trimmed and not empty.
func parseTarget(in string) (Target, error) {
	spec := withScheme(in)
	shown := shownTarget(in)
	u, err := url.Parse(spec)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the URL, escaped past what redact finds
		}
		return Target{}, fmt.Errorf("sidecar %q: %v; want http://host:port/path, tcp://host:port or host:port", shown, err)
	}
	if err := schemeProblem(u.Scheme); err != nil {
		return Target{}, fmt.Errorf("sidecar %q: %v", shown, err)
	}
	if u.Scheme == "tcp" && (u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "") {
		return Target{}, fmt.Errorf("sidecar %q: a tcp target is host:port alone; for a readiness URL write http://host:port/path", shown)
	}
	name := u.Host
	if p, ok := defaultPorts[u.Scheme]; ok && u.Hostname() != "" && u.Port() == "" && !strings.HasSuffix(u.Host, ":") {
		// An http(s) URL that names no port means its scheme's, as it
		// does to the client that probes it (and to a quit URL).
		name = net.JoinHostPort(u.Hostname(), p)
	}
	host, port, err := net.SplitHostPort(name)
	if err != nil || port == "" {
		return Target{}, fmt.Errorf("sidecar %q: needs host:port; want http://host:port/path, tcp://host:port or host:port", shown)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("sidecar %q: port %s; want a number from 1 to 65535", shown, port)
	}
	// One port written two ways (8080, 08080) is one sidecar: its check,
	// and the twice-listed test, see the number.
	name = net.JoinHostPort(host, strconv.Itoa(n))
	if err := probes.CheckName("sidecar/" + name); err != nil {
		// The host as url.Parse decoded it (an escaped space in an IPv6
		// zone, say) names the sidecar's readiness check.
		return Target{}, fmt.Errorf("sidecar %q: host %q cannot name its readiness check: %v", shown, name, err)
	}
	return Target{Name: name, URL: u}, nil
}

// Options tunes the wait ([NewWaiter]) and the quit calls ([Quit]). The
// zero value means: 100ms first backoff, doubling to 2s, 60s deadline, 1s
// per attempt, a plain http.Client and slog.Default. A pause that would
// pass the moment AttemptTimeout before the deadline is cut short, so one
// attempt starts then with its full timeout: a sidecar that is ready by
// then is found, however the backoff falls. (With a deadline no longer
// than AttemptTimeout, that moment has passed at the start, and the
// backoff runs as it falls.)
type Options struct {
	// The wait's schedule. Quit, bounded by its context, uses the backoff
	// alone, and only with RetryRefused.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Deadline       time.Duration
	AttemptTimeout time.Duration
	// Client makes the HTTP probes and the quit calls.
	Client *http.Client
	// Logger logs the wait's progress (a sidecar's first failed attempt,
	// then each time its attempts double, and when it is ready) and each
	// quit call's outcome.
	Logger *slog.Logger
	// RetryRefused makes Quit retry a connection refused, with the
	// backoff and, when its context has a deadline, once more shortly
	// before it (a tenth of the time left, at most 100ms), where it
	// otherwise reads one as a sidecar already gone: for a quit that can come before the sidecar
	// has started listening, as when the app gives up within moments of
	// the pod's start (a refused configuration, a startup that failed at
	// once). A sidecar that never listens is then a failure, logged and
	// returned.
	RetryRefused bool
}

// Waiter waits for sidecars and reports them as checks.
type Waiter struct {
	targets []Target
	opts    Options
}

// NewWaiter returns a waiter for targets. It panics on a target it could
// never probe (no URL, a scheme other than http, https or tcp, no host):
// a programmer's error, which would otherwise surface mid-startup. (A
// Name no check can have is refused by [Waiter.Checks]' registration, as
// only the checks need one; ParseTargets makes neither mistake.)
func NewWaiter(targets []Target, opts Options) *Waiter {
	for i, t := range targets {
		if err := t.valid(); err != nil {
			panic(fmt.Sprintf("sidecar: NewWaiter: target %d (%q): %v; make targets with ParseTargets", i, t.Name, err))
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.InitialBackoff, 100*time.Millisecond)
	def(&opts.MaxBackoff, 2*time.Second)
	def(&opts.Deadline, 60*time.Second)
	def(&opts.AttemptTimeout, time.Second)
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Waiter{targets: targets, opts: opts}
}

// schemeProblem says why a target of scheme cannot be probed: nil for
// http, https and tcp.
func schemeProblem(scheme string) error {
	if scheme != "http" && scheme != "https" && scheme != "tcp" {
		return fmt.Errorf("scheme %q not supported; want http, https or tcp", scheme)
	}
	return nil
}

// valid reports why t could never be probed, as ParseTargets makes none
// such: nil when it can.
func (t Target) valid() error {
	if t.URL == nil {
		return errors.New("no URL")
	}
	if err := schemeProblem(t.URL.Scheme); err != nil {
		return err
	}
	if t.URL.Host == "" {
		return errors.New("URL names no host:port")
	}
	return nil
}

// probe asks one sidecar once whether it is ready.
func (w *Waiter) probe(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.AttemptTimeout)
	defer cancel()
	if t.URL.Scheme == "tcp" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", t.URL.Host)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL.String(), nil)
	if err != nil {
		return err
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return hidePassword(err, t.URL.String())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", redact.URL(t.URL.String()), resp.Status)
	}
	return nil
}

// Wait returns once every target answered ready, or with an error naming
// those that did not before the deadline (or ctx) ended, each with its
// last failure. When ctx ended first, the error says so and matches ctx's
// cause (errors.Is with context.Canceled or DeadlineExceeded): the caller
// gave up, which is no failure of the sidecar's.
func (w *Waiter) Wait(ctx context.Context) error { return w.wait(ctx, w.probe) }

// wait is Wait with probe in place of w.probe, for tests.
func (w *Waiter) wait(ctx context.Context, probe func(context.Context, Target) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, w.opts.Deadline, errOwnDeadline)
	defer cancel()
	errs := make([]error, len(w.targets))
	var wg sync.WaitGroup
	for i, t := range w.targets {
		wg.Go(func() { errs[i] = w.waitOne(ctx, t, probe) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitOne probes t with backoff until it is ready or ctx ends. The error
// then carries the sidecar's last real failure (a 503, a refused
// connection): a probe cut short by the deadline itself says nothing about
// why the sidecar was not ready, so it never replaces an earlier answer.
func (w *Waiter) waitOne(ctx context.Context, t Target, probe func(context.Context, Target) error) error {
	begin := time.Now()
	// The aim is the latest moment an attempt can start and still run its
	// whole AttemptTimeout before ctx's deadline (Wait's own, or an
	// earlier one of the caller's).
	var aim time.Time
	if deadline, ok := ctx.Deadline(); ok {
		aim = deadline.Add(-w.opts.AttemptTimeout)
	}
	attempts, err := backoff.Schedule{
		Initial: w.opts.InitialBackoff, Max: w.opts.MaxBackoff, Aim: aim,
		// The first failed attempt and then each time the count doubles
		// (1, 2, 4, 8...): a wait that ends at once stays quiet, and a
		// long one says why without a line per attempt.
		Retrying: func(attempt int, err error) {
			if attempt&(attempt-1) == 0 {
				w.opts.Logger.Info("waiting for sidecar", "sidecar", t.Name, "attempt", attempt,
					slog.Float64("waited_seconds", time.Since(begin).Seconds()), "error", err.Error())
			}
		},
	}.Retry(ctx, func() error { return probe(ctx, t) })
	if err != nil {
		which := fmt.Sprintf("sidecar %s (%s) not ready after %v and %d attempts", t.Name, redact.URL(t.URL.String()), time.Since(begin).Round(time.Millisecond), attempts)
		if cause := context.Cause(ctx); cause != nil && cause != errOwnDeadline {
			if !errors.Is(cause, ctx.Err()) { // a cause of the caller's own: it cancelled all the same
				cause = fmt.Errorf("%w: %w", ctx.Err(), cause)
			}
			// The caller gave up (a signal, another hook's failure, the
			// hook's start timeout): the error says so, and matches
			// context.Canceled or DeadlineExceeded, so no one reads the
			// wait's end as the sidecar's failure.
			return fmt.Errorf("%s, when the wait was cut short (%w); last failure: %w", which, cause, err)
		}
		return fmt.Errorf("%s; last failure: %w", which, err)
	}
	w.opts.Logger.Info("sidecar ready", "sidecar", t.Name, "attempts", attempts, slog.Float64("waited_seconds", time.Since(begin).Seconds()))
	return nil
}

// hidePassword hides raw's password in err. A client's error quotes the
// URL whole, query included: its URL is redacted where it stands, which
// keeps the message after it (the cause: a refused connection, a timeout)
// and the error chain. Any other error goes through redact.Error.
func hidePassword(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL)
		return err
	}
	return redact.Error(err, raw)
}

// errOwnDeadline is the cause of a wait's end at Options.Deadline, which
// is the sidecar's failure; any other is the caller's.
var errOwnDeadline = errors.New("the sidecar wait's deadline")

// Hook returns the lifespan hook "sidecars" that waits for every target.
func (w *Waiter) Hook() lifespan.Hook {
	return lifespan.Hook{Name: "sidecars", Start: func(ctx context.Context, _ *lifespan.Scope) (lifespan.StopFunc, error) {
		return nil, w.Wait(ctx)
	}}
}

// Checks returns a readiness check per target, "sidecar/NAME", probing it
// every interval in the background (each probe bounded by twice the
// AttemptTimeout) and failing after three misses in a row.
// An interval of 0 or less means 5s: the checks always run in the
// background, so a probe never waits on a slow sidecar.
func (w *Waiter) Checks(interval time.Duration) []probes.Check {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	out := make([]probes.Check, 0, len(w.targets))
	for _, t := range w.targets {
		out = append(out, probes.Check{
			Name: "sidecar/" + t.Name, Interval: interval, Timeout: doubled(w.opts.AttemptTimeout), FailureThreshold: 3,
			Run: func(ctx context.Context) error { return w.probe(ctx, t) },
		})
	}
	return out
}

// doubled is 2d, or the longest duration where that would overflow (an
// AttemptTimeout of math.MaxInt64, written for "no limit per attempt").
func doubled(d time.Duration) time.Duration {
	if d > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * d
}

// Quit POSTs to every quit URL at once (Istio /quitquitquit, Linkerd
// /shutdown) with opts.Client, bounded by ctx, logs each outcome to
// opts.Logger, and returns the failures joined; any answer but a 2xx is a
// failure, a redirect included (it is not followed). A connection refused
// counts as success, the sidecar already gone, unless opts.RetryRefused
// says it may not have started yet.
func Quit(ctx context.Context, urls []string, opts Options) error {
	client, log := &http.Client{}, opts.Logger
	if opts.Client != nil {
		*client = *opts.Client
	}
	// A quit is a POST the sidecar answered with a 2xx: a redirect (a web
	// UI's port sending the client to its login page) is that answer, a
	// failure, not a GET to follow whose 200 would read as "told to quit".
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if log == nil {
		log = slog.Default()
	}
	// Only a refusal is retried, and only with RetryRefused.
	retry := backoff.Schedule{Initial: opts.InitialBackoff, Max: opts.MaxBackoff,
		GiveUp: func(err error) bool { return !opts.RetryRefused || !isRefused(err) }}
	if retry.Initial <= 0 {
		retry.Initial = 100 * time.Millisecond
	}
	if retry.Max <= 0 {
		retry.Max = 2 * time.Second
	}
	if deadline, ok := ctx.Deadline(); ok && opts.RetryRefused {
		// Pauses that double would leave the end of the wait untried: one
		// attempt comes shortly before it, for a sidecar that listens late.
		retry.Aim = deadline.Add(-min(time.Until(deadline)/10, 100*time.Millisecond))
	}
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			begin := time.Now()
			shown := redact.URL(u)
			// The outcome is the last attempt's: a refusal, an answer, or a
			// connection whose answer ctx's end cut short.
			var connected atomic.Bool // the last attempt connected
			var err error
			_, _ = retry.Retry(ctx, func() error {
				connected.Store(false)
				err = quitOne(ctx, client, u, &connected)
				return err
			})
			switch {
			case err != nil && isRefused(err) && !opts.RetryRefused:
				log.Info("sidecar already gone: connection refused", "url", shown)
				return
			case err != nil && isRefused(err):
				err = fmt.Errorf("nothing listened there before the quit's timeout: %w", err)
			case err != nil && connected.Load() && ctx.Err() != nil:
				err = fmt.Errorf("it listened, but did not answer before the quit's timeout: %w", ctx.Err())
			}
			if err != nil {
				errs[i] = fmt.Errorf("POST %s: %w", shown, err)
				log.Error("sidecar quit failed", "url", shown, "error", err)
				return
			}
			log.Info("sidecar told to quit", "url", shown, slog.Float64("took_seconds", time.Since(begin).Seconds()))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// quitOne POSTs to one quit URL, and notes in connected when the request
// got a connection to it, made or reused (something listened, whatever
// came after). Its error shows the URL with any password hidden, as it is
// before Quit wraps it (wrapping copies the message).
func quitOne(ctx context.Context, client *http.Client, u string, connected *atomic.Bool) error {
	// GotConn, not ConnectDone: the quit may go over a connection the
	// readiness probes left open (Linkerd and the chart's own sidecar
	// answer both on one port), which is connected all the same.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return hidePassword(err, u)
	}
	resp, err := client.Do(req)
	if err != nil {
		return hidePassword(err, u)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}

// ValidateQuitURLs checks quit URLs before they are needed; the error
// names every URL refused, each with its password, if any, hidden.
func ValidateQuitURLs(urls []string) error {
	var problems []string
	for _, s := range urls {
		if !httpurl.Valid(s) {
			problems = append(problems, fmt.Sprintf("sidecar quit URL %q: want http://host:port/path (e.g. http://127.0.0.1:15020/quitquitquit)", redact.URL(s)))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
