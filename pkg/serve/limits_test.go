package serve

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/deadline"
	"github.com/berth-dev/berth/pkg/lifespan"
)

// rawGet sends a GET on conn with an extra header of n bytes and returns
// the status line.
func rawGet(t *testing.T, conn net.Conn, n int) string {
	t.Helper()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", n))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return strings.TrimSpace(line)
}

// dialer returns a function that opens a connection to addr, closed when
// the test ends.
func dialer(t *testing.T, addr net.Addr) func() net.Conn {
	return func() net.Conn {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// waitsPastTheCap checks a server at its connection cap: past, a
// connection the kernel accepted beyond it, gets no answer to a GET of
// path until held[0] closes and frees a slot.
func waitsPastTheCap(t *testing.T, held []net.Conn, past net.Conn, path string) {
	t.Helper()
	fmt.Fprintf(past, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	past.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := bufio.NewReader(past).ReadString('\n'); err == nil {
		t.Fatalf("a connection past the cap of %d was served", len(held))
	}
	held[0].Close() // a slot frees: the waiting connection is served
	past.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(past).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("once a slot freed: %q, %v", line, err)
	}
}

func TestLimitsBoundWhatAClientCanHold(t *testing.T) {
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), DrainDelay: -1,
		Limits: Limits{ReadTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4 << 10, MaxConnections: 2}})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	dial := dialer(t, f.srv.APIAddr())

	t.Run("oversized headers are refused", func(t *testing.T) {
		if got := rawGet(t, dial(), 8<<10); !strings.Contains(got, "431") {
			t.Fatalf("headers over the limit: %q, want 431", got)
		}
	})
	t.Run("a request that trickles in is cut off at the read timeout", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		begin := time.Now()
		for {
			if _, err := c.Write([]byte("a")); err != nil {
				break // the server closed the connection
			}
			if _, err := c.Read(make([]byte, 1)); err != nil {
				break
			}
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Fatalf("a trickling body held its connection for %v", took)
		}
	})
	t.Run("connections past the cap wait; the probes still answer", func(t *testing.T) {
		held := []net.Conn{dial(), dial()} // the cap: two open connections
		for _, c := range held {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			bufio.NewReader(c).ReadString('\n')
		}
		if code, _, _ := f.get(f.srv.AdminAddr(), "/readyz"); code != 200 {
			t.Fatalf("readyz while the API is at its connection cap = %d", code)
		}
		waitsPastTheCap(t, held, dial(), "/")
	})
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
}

// Both servers carry their limits, on the server and on the listener it
// accepts from: the API's from Config.Limits, each zero field filled from
// DefaultLimits, and the admin server's fixed ones. Both sets are the
// figures Limits' doc and the README give.
func TestServersCarryTheirLimits(t *testing.T) {
	documented := Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10, MaxConnections: 4096}
	if DefaultLimits != documented {
		t.Fatalf("DefaultLimits = %+v, documented as %+v", DefaultLimits, documented)
	}
	idleOnly := DefaultLimits
	idleOnly.IdleTimeout = time.Second
	for _, tt := range []struct {
		name    string
		limits  Limits
		wantAPI Limits
	}{
		{"defaults", Limits{}, DefaultLimits},
		{"one field set, the others default", Limits{IdleTimeout: time.Second}, idleOnly},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1, Limits: tt.limits})
			within(t, f.sig.StartupComplete.Done(), "StartupComplete")
			for _, srv := range []struct {
				name string
				got  *http.Server
				ln   capped
				want Limits
			}{
				{"api", f.srv.apiSrv, f.srv.apiServed, tt.wantAPI},
				{"admin", f.srv.adminSrv, f.srv.adminServed, Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second,
					IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, MaxConnections: 256}},
			} {
				got := Limits{ReadHeaderTimeout: srv.got.ReadHeaderTimeout, ReadTimeout: srv.got.ReadTimeout, WriteTimeout: srv.got.WriteTimeout,
					IdleTimeout: srv.got.IdleTimeout, MaxHeaderBytes: srv.got.MaxHeaderBytes, MaxConnections: srv.ln.max}
				if got != srv.want {
					t.Errorf("%s server: %+v, want %+v", srv.name, got, srv.want)
				}
			}
			f.srv.Shutdown()
			within(t, f.runErr, "Run")
		})
	}
}

// The admin server refuses oversized headers and caps its connections:
// a client that opens hundreds of connections to the probe port cannot
// make the server hold more than 256.
func TestAdminServerIsBounded(t *testing.T) {
	f := start(t, Config{Apps: lifespan.Group{app(&journal{})}, API: http.NotFoundHandler(), DrainDelay: -1})
	within(t, f.sig.StartupComplete.Done(), "StartupComplete")
	dial := dialer(t, f.srv.AdminAddr())
	if got := rawGet(t, dial(), 20<<10); !strings.Contains(got, "431") {
		t.Fatalf("admin headers over 16 KiB: %q, want 431", got)
	}
	held := make([]net.Conn, 0, 256)
	for range 256 { // the cap: each served once, then held open
		c := dial()
		fmt.Fprintf(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
			t.Fatalf("connection %d of the cap: %q, %v", len(held)+1, line, err)
		}
		held = append(held, c)
	}
	waitsPastTheCap(t, held, dial(), "/livez")
	f.srv.Shutdown()
	within(t, f.runErr, "Run")
}

// The connections a server's listener accepts move their deadlines
// lazily, so net/http's several moves per request arm about one timer.
func TestListenerMovesDeadlinesLazily(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	capped := DefaultLimits.listener(ln, DefaultLimits.server(http.NotFoundHandler()))
	defer capped.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := capped.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*deadline.Conn); !ok {
		t.Errorf("accepted a %T, want a *deadline.Conn", conn)
	}
}
