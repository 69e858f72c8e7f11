package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type journal struct {
	mu sync.Mutex
	e  []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.e = append(j.e, s); j.mu.Unlock() }
func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.e)
}

// within fails the test unless ch is closed (or sends) within 10s: every
// wait in these tests is bounded.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// app is an app with one hook per name, each journalling its stop.
func app(j *journal, names ...string) *lifespan.App {
	a := &lifespan.App{Name: "api"}
	for _, n := range names {
		a.Append(lifespan.Hook{Name: n, Start: func(context.Context, *lifespan.Scope) (lifespan.StopFunc, error) {
			return func(context.Context) error { j.add("stop " + n); return nil }, nil
		}})
	}
	return a
}

// fixture is a server on loopback. Unless the test sets DrainDelay, the
// drain delay is held until the test sends on delay.
type fixture struct {
	t      *testing.T
	srv    *Server
	sig    *Signals
	delay  chan time.Time
	runErr chan error
	client *http.Client
}

func start(t *testing.T, cfg Config) *fixture {
	t.Helper()
	return startAfter(t, cfg, nil)
}

// startAfter is start with after, when not nil, in place of the server's
// timer for the drain delay's waits.
func startAfter(t *testing.T, cfg Config, after func(time.Duration) <-chan time.Time) *fixture {
	t.Helper()
	cfg.APIAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.ShutdownOn == nil {
		cfg.ShutdownOn = []os.Signal{syscall.SIGUSR2} // never sent by these tests unless asked
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, srv: srv, sig: srv.Signals(), delay: make(chan time.Time), runErr: make(chan error, 1),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	switch {
	case after != nil:
		srv.after = after
	case cfg.DrainDelay == 0:
		srv.after = func(time.Duration) <-chan time.Time { return f.delay }
	}
	go func() { f.runErr <- srv.Run(context.Background()) }()
	within(t, f.sig.Listening.Done(), "Listening")
	return f
}

func (f *fixture) get(addr net.Addr, path string) (int, http.Header, string) {
	f.t.Helper()
	resp, err := f.client.Get("http://" + addr.String() + path)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
