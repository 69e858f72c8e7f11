package deadline

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a connection that tells what was armed on it: each
// deadline set beneath a Conn, sent on armed (when not nil) and counted.
type recorder struct {
	net.Conn
	armed      chan time.Time
	reads, all atomic.Int64 // deadlines set in the future, and every set
}

func (r *recorder) note(t time.Time) {
	r.all.Add(1)
	if !t.IsZero() && t.After(time.Now()) {
		r.reads.Add(1)
	}
	if r.armed != nil {
		select { // never block: a Conn calls this holding its lock
		case r.armed <- t:
		default:
		}
	}
}

func (r *recorder) SetReadDeadline(t time.Time) error {
	r.note(t)
	return r.Conn.SetReadDeadline(t)
}

func (r *recorder) SetWriteDeadline(t time.Time) error {
	r.note(t)
	return r.Conn.SetWriteDeadline(t)
}

// pipe is a Conn over one end of a net.Pipe, recording what it arms, and
// the other end.
func pipe(t *testing.T) (*Conn, *recorder, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	rec := &recorder{Conn: a, armed: make(chan time.Time, 16)}
	// A deadline that never fires must fail the test, not hang it: the
	// pipe closes after 10s, ending any read or write with an error.
	watchdog := time.AfterFunc(10*time.Second, func() { a.Close(); b.Close() })
	t.Cleanup(func() { watchdog.Stop() })
	return Wrap(rec, time.Hour, time.Hour), rec, b
}

// next is the next deadline armed beneath, within 10s.
func next(t *testing.T, rec *recorder) time.Time {
	t.Helper()
	select {
	case d := <-rec.armed:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no deadline was armed within 10s")
		return time.Time{}
	}
}

func TestSetArmsOnlyAnEarlierDeadline(t *testing.T) {
	base := time.Now().Add(time.Hour)
	tests := []struct {
		name  string
		sets  []time.Duration // after base; -1 for none (zero)
		armed []time.Duration // what is set beneath, in order
	}{
		{"first deadline is armed", []time.Duration{0}, []time.Duration{0}},
		{"later one is noted", []time.Duration{0, time.Minute}, []time.Duration{0}},
		{"earlier one is armed", []time.Duration{time.Minute, 0}, []time.Duration{time.Minute, 0}},
		{"none is noted", []time.Duration{0, -1}, []time.Duration{0}},
		{"none at first is noted", []time.Duration{-1}, nil},
		{"equal one is noted", []time.Duration{0, 0}, []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec, _ := pipe(t)
			at := func(d time.Duration) time.Time {
				if d < 0 {
					return time.Time{}
				}
				return base.Add(d)
			}
			for _, d := range tt.sets {
				if err := c.SetReadDeadline(at(d)); err != nil {
					t.Fatal(err)
				}
			}
			var got []time.Time
			for len(rec.armed) > 0 {
				got = append(got, <-rec.armed)
			}
			if len(got) != len(tt.armed) {
				t.Fatalf("armed %v beneath, want %d deadlines", got, len(tt.armed))
			}
			for i, d := range tt.armed {
				if !got[i].Equal(at(d)) {
					t.Errorf("armed #%d = %v, want %v", i, got[i], at(d))
				}
			}
		})
	}
}

// A read still fails at the deadline asked for, though an earlier one was
// armed, and not before it.
func TestReadFailsAtTheDeadlineAskedFor(t *testing.T) {
	c, rec, _ := pipe(t)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(200 * time.Millisecond)
	if err := c.SetReadDeadline(want); err != nil { // later: noted, not armed
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline exceeded", err)
	}
	if now := time.Now(); now.Before(want) {
		t.Errorf("Read failed %v before the deadline asked for", want.Sub(now))
	} else if late := now.Sub(want); late > 2*time.Second { // not at the horizon (an hour), nor at a fixed step past it
		t.Errorf("Read failed %v after the deadline asked for", late)
	}
	if n := rec.all.Load(); n != 2 { // the first deadline, and the later one once the first fired
		t.Errorf("%d deadlines set beneath, want 2", n)
	}
}

// A deadline set earlier than the armed one interrupts a read blocked
// under the armed one.
func TestEarlierDeadlineInterruptsABlockedRead(t *testing.T) {
	c, rec, _ := pipe(t)
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	next(t, rec)
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil { // as net/http aborts a read
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v, want a deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read was not interrupted")
	}
}

// net/http ends a read by setting a deadline in the past, then clears
// it: the clear arms a deadline a horizon away at once, so the next read
// does not fail first, and later deadlines up to the horizon are noted.
func TestClearAfterAPastDeadlineArmsTheHorizon(t *testing.T) {
	c, rec, peer := pipe(t)
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	next(t, rec)
	before := time.Now()
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if d := next(t, rec); d.Before(before.Add(time.Hour)) {
		t.Fatalf("the clear armed %v, want an hour away", d)
	}
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil { // after the horizon armed: noted
		t.Fatal(err)
	}
	go func() { _, _ = peer.Write([]byte("x")) }()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if n := rec.all.Load(); n != 2 {
		t.Errorf("%d deadlines set beneath, want 2: the past one and the horizon", n)
	}
}

// When the armed deadline fires before the one asked for (here none), the
// read carries on and returns what arrives after.
func TestReadCarriesOnPastAnEarlyDeadline(t *testing.T) {
	c, rec, peer := pipe(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	next(t, rec)
	if err := c.SetReadDeadline(time.Time{}); err != nil { // none: noted
		t.Fatal(err)
	}
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		b := make([]byte, 5)
		n, err := io.ReadFull(c, b)
		done <- result{string(b[:n]), err}
	}()
	// The armed deadline fired, and the read armed one a horizon (an
	// hour) away, none being asked for.
	if d := next(t, rec); d.Before(time.Now().Add(59 * time.Minute)) {
		t.Fatalf("re-armed %v, want an hour away", d)
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.s != "hello" {
		t.Fatalf("Read = %q, %v; want hello", r.s, r.err)
	}
}

// A write interrupted by an early armed deadline carries on from where it
// stopped, and reports every byte.
func TestWriteCarriesOnPastAnEarlyDeadline(t *testing.T) {
	c, rec, peer := pipe(t)
	if err := c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	next(t, rec)
	if err := c.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil { // later: noted
		t.Fatal(err)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := c.Write([]byte("hello world")); done <- result{n, err} }()
	got := make([]byte, 4)
	if _, err := io.ReadFull(peer, got); err != nil { // part of it, then the write blocks
		t.Fatal(err)
	}
	if d := next(t, rec); d.IsZero() || d.After(time.Now().Add(time.Hour)) {
		t.Fatalf("re-armed %v, want the hour asked for", d)
	}
	rest := make([]byte, 7)
	if _, err := io.ReadFull(peer, rest); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.n != 11 {
		t.Fatalf("Write = %d, %v; want 11, nil", r.n, r.err)
	}
	if s := string(got) + string(rest); s != "hello world" {
		t.Fatalf("peer read %q", s)
	}
}

// Behind an http.Server with every timeout set, a keep-alive request arms
// about one deadline in the future beneath (the re-arm after net/http's
// abort of its background read, which sets one in the past), where
// without Conn it arms four: the idle wait, the headers, the whole
// request and the response. TestHTTPServerTimeoutsHold shows the timeouts
// still hold.
func TestHTTPServerArmsFewDeadlines(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var recs []*recorder
			rl := &recordingListener{Listener: ln, wrap: func(c net.Conn) net.Conn {
				rec := &recorder{Conn: c}
				mu.Lock()
				recs = append(recs, rec)
				mu.Unlock()
				if lazy {
					return Wrap(rec, 2*time.Second, 5*time.Second)
				}
				return rec
			}}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
				ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(rl) }()
			client := &http.Client{Transport: &http.Transport{}}
			const n = 200
			for range n {
				resp, err := client.Get("http://" + ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
			}
			client.CloseIdleConnections()
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				t.Fatal(err)
			}
			var armed int64
			mu.Lock()
			for _, r := range recs {
				armed += r.reads.Load()
			}
			mu.Unlock()
			perReq := float64(armed) / n
			t.Logf("%d requests on %d connections armed %d deadlines beneath: %.2f per request", n, len(recs), armed, perReq)
			if lazy && perReq > 1.5 {
				t.Errorf("%.2f deadlines armed in the future per request, want at most 1.5", perReq)
			}
			if !lazy && perReq < 3 {
				t.Errorf("without Conn, %.2f deadlines armed per request: the comparison no longer shows what Conn saves", perReq)
			}
		})
	}
}

// The server's header timeout still cuts a client that sends half a
// request and stops.
func TestHTTPServerTimeoutsHold(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 100 * time.Millisecond,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(Listener(ln, time.Minute, time.Minute)) }()
	defer func() { srv.Close(); <-served }()
	for _, tt := range []struct{ name, send string }{
		{"first request", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"after a complete one", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Before the dial: the server may accept the connection, and
			// start its header timeout, before Dial returns here.
			start := time.Now()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.send); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(conn) // the server closes it at the header timeout
			if err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
			if got := strings.Count(string(b), "HTTP/1.1 404"); got != strings.Count(tt.send, "\r\n\r\n") {
				t.Errorf("%d answers, want one per complete request: %q", got, b)
			}
			if d := time.Since(start); d < 100*time.Millisecond {
				t.Errorf("closed after %v, before the 100ms header timeout", d)
			}
		})
	}
}

type recordingListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// Sets from one goroutine beside reads and writes in another, as net/http
// does, with the race detector watching.
func TestConcurrentSetsReadsAndWrites(t *testing.T) {
	c, rec, peer := pipe(t)
	rec.armed = nil
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(peer, peer) }) // echo
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := time.Time{}
			if i%3 != 0 {
				d = time.Now().Add(time.Duration(i%5) * time.Millisecond)
			}
			_ = c.SetReadDeadline(d)
			_ = c.SetWriteDeadline(d)
		}
	})
	b := make([]byte, 1)
	for range 200 {
		if _, err := c.Write([]byte("x")); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		if _, err := c.Read(b); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	close(stop)
	c.Close()
	peer.Close()
	wg.Wait()
}

// stutter is a connection whose first Read returns data with the
// deadline's error, as a net.Conn may: a Read that carries on must not
// lose that data.
type stutter struct {
	net.Conn
	once bool
}

func (s *stutter) Read(p []byte) (int, error) {
	if !s.once {
		s.once = true
		return copy(p, "abc"), os.ErrDeadlineExceeded
	}
	return s.Conn.Read(p)
}

func TestReadKeepsDataReturnedWithAnEarlyDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	watchdog := time.AfterFunc(10*time.Second, func() { a.Close() }) // fail, not hang
	defer watchdog.Stop()
	c := Wrap(&stutter{Conn: a}, time.Hour, time.Hour)
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = b.Write([]byte("def")) }()
	got, err := io.ReadAll(io.LimitReader(c, 6))
	if err != nil || string(got) != "abcdef" {
		t.Fatalf("read %q, %v; want abcdef", got, err)
	}
}

func TestServerListenerHorizons(t *testing.T) {
	s := time.Second
	tests := []struct {
		name                 string
		srv                  *http.Server
		wrapped              bool
		readHorizon, writeHz time.Duration
	}{
		{"no timeouts: not wrapped", &http.Server{}, false, 0, 0},
		{"every timeout", &http.Server{ReadHeaderTimeout: 10 * s, ReadTimeout: 30 * s, WriteTimeout: 60 * s, IdleTimeout: 90 * s}, true, 10 * s, 60 * s},
		{"the shortest read timeout", &http.Server{ReadTimeout: 5 * s, IdleTimeout: 90 * s, WriteTimeout: s}, true, 5 * s, s},
		{"only a write timeout", &http.Server{WriteTimeout: 7 * s}, true, 7 * s, 7 * s},
		{"only an idle timeout", &http.Server{IdleTimeout: 9 * s}, true, 9 * s, 9 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := ServerListener(ln, tt.srv)
			l, ok := got.(*listener)
			if ok != tt.wrapped {
				t.Fatalf("wrapped = %v, want %v", ok, tt.wrapped)
			}
			if ok && (l.readHorizon != tt.readHorizon || l.writeHorizon != tt.writeHz) {
				t.Errorf("horizons %v, %v; want %v, %v", l.readHorizon, l.writeHorizon, tt.readHorizon, tt.writeHz)
			}
		})
	}
}

// Wrap keeps each direction's horizon, and takes one below a millisecond
// as one: a zero horizon would re-arm at now, and a read with no deadline
// asked for would spin.
func TestWrapHorizons(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for _, tt := range []struct{ read, write, wantRead, wantWrite time.Duration }{
		{2 * time.Second, 5 * time.Second, 2 * time.Second, 5 * time.Second},
		{0, -time.Second, time.Millisecond, time.Millisecond},
	} {
		c := Wrap(a, tt.read, tt.write)
		if c.read.horizon != tt.wantRead || c.write.horizon != tt.wantWrite {
			t.Errorf("Wrap(%v, %v): horizons %v, %v; want %v, %v", tt.read, tt.write, c.read.horizon, c.write.horizon, tt.wantRead, tt.wantWrite)
		}
	}
}

// SetDeadline ends both a read and a write at it.
func TestSetDeadlineSetsBoth(t *testing.T) {
	c, _, _ := pipe(t)
	if err := c.SetDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) { // the peer never reads
		t.Errorf("Write: %v, want a deadline exceeded", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read: %v, want a deadline exceeded", err)
	}
}

// Like the connection beneath, a closed Conn reports that its deadlines
// cannot be set, also when one is only noted.
func TestSetOnAClosedConnFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Wrap(raw, time.Hour, time.Hour)
	if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	later := time.Now().Add(2 * time.Minute)
	t.Logf("beneath: %v", raw.SetReadDeadline(later))
	for name, set := range map[string]func(time.Time) error{"SetReadDeadline": c.SetReadDeadline, "SetWriteDeadline": c.SetWriteDeadline, "SetDeadline": c.SetDeadline} {
		for _, d := range []time.Time{later, {}} {
			if err := set(d); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s(%v) on a closed Conn: %v, want net.ErrClosed", name, d.Format(time.TimeOnly), err)
			}
		}
	}
}
