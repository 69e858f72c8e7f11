// Package deadline makes a server connection's deadlines cheap to move.
//
// net/http's server moves a connection's deadlines several times in every
// request when its timeouts are set: the idle wait, the headers, the whole
// request, the response and its end. Each deadline set in the future arms
// or moves a runtime timer, and one cleared stops it: over loopback, a few
// percent of a small request's cost, which a server without timeouts does
// not pay (and a slow client can exhaust). A [Conn] keeps the deadline it
// was asked for apart from the one armed on the connection beneath, and
// moves the armed one only when it must: when the new deadline is earlier.
// A later deadline, or none, is only noted. When the armed deadline fires
// before the one asked for, the Read or Write it interrupted arms the one
// asked for (or one a horizon away, if that is sooner) and carries on
// unseen. A call still fails at the deadline it was given, not before and
// not later than the runtime's timers allow.
package deadline

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ServerListener is [Listener] with the horizons srv's timeouts call for:
// its shortest read timeout (ReadHeaderTimeout, ReadTimeout, IdleTimeout)
// and its WriteTimeout. With none of them set, net/http sets no deadline
// in the future, and ln is returned as it is.
func ServerListener(ln net.Listener, srv *http.Server) net.Listener {
	read := time.Duration(0)
	for _, d := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout} {
		if d > 0 && (read == 0 || d < read) {
			read = d
		}
	}
	if read == 0 && srv.WriteTimeout <= 0 {
		return ln
	}
	write := srv.WriteTimeout
	if write <= 0 {
		write = read // none is ever asked for: any horizon serves
	}
	if read == 0 {
		read = write
	}
	return Listener(ln, read, write)
}

// Listener wraps each connection ln accepts in a [Conn] with these
// horizons (see [Wrap]).
func Listener(ln net.Listener, readHorizon, writeHorizon time.Duration) net.Listener {
	return &listener{ln, readHorizon, writeHorizon}
}

type listener struct {
	net.Listener
	readHorizon, writeHorizon time.Duration
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c, l.readHorizon, l.writeHorizon), nil
}

// Conn is a net.Conn whose deadlines are armed beneath only when they
// must be (see the package documentation). It is safe for concurrent
// use, as net.Conn is: net/http sets a read deadline from one goroutine
// to end a read another is blocked in.
type Conn struct {
	net.Conn
	read, write lazy
	closed      atomic.Bool
}

// lazy is one direction's deadlines. The armed deadline is never later
// than the one wanted: zero (none) only when none is wanted.
type lazy struct {
	mu      sync.Mutex
	want    time.Time // the deadline asked for; zero for none
	armed   time.Time // the deadline set on the connection beneath; zero for none
	passed  bool      // armed had passed when it was set (net/http ends a read so)
	horizon time.Duration
}

// Wrap returns c with lazy deadlines. When an armed deadline fires early
// and a Read re-arms, it arms the deadline asked for or one readHorizon
// away, whichever is sooner; a Write, writeHorizon. Choose horizons no
// longer than the shortest timeout the server sets in that direction: the
// next request's earlier deadline then falls after the armed one, and is
// noted rather than armed. A horizon below a millisecond is taken as one.
//
// c must outlive a timeout, as a *net.TCPConn does: an armed deadline
// fires early by design. Wrap beneath TLS, never above it: a *tls.Conn
// whose write times out is broken for good.
func Wrap(c net.Conn, readHorizon, writeHorizon time.Duration) *Conn {
	w := &Conn{Conn: c}
	w.read.horizon = max(readHorizon, time.Millisecond)
	w.write.horizon = max(writeHorizon, time.Millisecond)
	return w
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// Close closes the connection; deadlines set after it fail as the
// connection beneath says, also ones that would only be noted.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// SetReadDeadline sets the read deadline: armed beneath at once when it is
// earlier than the armed one, else noted.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.set(&c.read, true, t) }

// SetWriteDeadline sets the write deadline, as SetReadDeadline the read
// deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.set(&c.write, false, t) }

func (c *Conn) set(l *lazy, read bool, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.want = t
	if c.closed.Load() || !t.IsZero() && (l.armed.IsZero() || t.Before(l.armed)) {
		err := c.arm(l, read, t)
		l.passed = err == nil && !t.After(time.Now())
		return err
	}
	if l.passed {
		// The armed deadline was set in the past, to end a read: every
		// call would fail at once, so move it now, as the next call would.
		return c.rearm(l, read, time.Now())
	}
	return nil // none, or not before the armed one: it fires first
}

// arm sets t beneath; the caller holds l.mu.
func (c *Conn) arm(l *lazy, read bool, t time.Time) error {
	var err error
	if read {
		err = c.Conn.SetReadDeadline(t)
	} else {
		err = c.Conn.SetWriteDeadline(t)
	}
	if err == nil {
		l.armed = t
	}
	return err
}

// Read reads from the connection, carrying on past an armed deadline that
// fired before the one asked for.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err == nil || !c.early(&c.read, true, n, err) {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Write writes to the connection, carrying on past an armed deadline that
// fired before the one asked for, from where it stopped.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !c.early(&c.write, false, n, err) {
			return written, err
		}
		if written == len(p) {
			return written, nil
		}
	}
}

// early reports whether err, returned with n bytes, is an armed deadline
// that fired before the one asked for; if so, it arms the deadline asked
// for, or one l.horizon away if that is sooner (none, if none is asked
// for).
func (c *Conn) early(l *lazy, read bool, n int, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.want.IsZero() && !now.Before(l.want) {
		return false // the deadline asked for has passed
	}
	if n == 0 && now.Before(l.armed) {
		// Nothing moved and the armed deadline has not passed: the error
		// is not its but one the connection beneath keeps (a *tls.Conn
		// whose write timed out). Retrying would spin.
		return false
	}
	return c.rearm(l, read, now) == nil
}

// rearm arms the deadline asked for, or one l.horizon after now if that
// is sooner (also when none is asked for: the next request's deadline,
// no sooner than the horizon, then falls after it and is only noted); the
// caller holds l.mu.
func (c *Conn) rearm(l *lazy, read bool, now time.Time) error {
	next := now.Add(l.horizon)
	if !l.want.IsZero() && l.want.Before(next) {
		next = l.want
	}
	l.passed = false
	return c.arm(l, read, next)
}
