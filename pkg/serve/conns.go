package serve

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// conns keeps the API server's open connections and what each is doing,
// for the drain timeout: a connection with a request under way (being
// received or served) is cut off there, one that has sent nothing since
// its last response (or at all) is not. The hot path costs an atomic load
// per read and an atomic store per state change; the set changes only as
// connections open and close.
type conns struct {
	mu   sync.Mutex
	open map[*trackedConn]struct{}
}

// listener wraps ln so that the connections it accepts are kept.
func (c *conns) listener(ln net.Listener) net.Listener { return trackingListener{ln, c} }

// track is the server's ConnState hook.
func (c *conns) track(conn net.Conn, st http.ConnState) {
	tc, ok := conn.(*trackedConn)
	if !ok {
		return
	}
	if st == http.StateIdle {
		tc.heard.Store(false) // the next request has not begun to arrive
	}
	tc.state.Store(int32(st))
	if st == http.StateClosed || st == http.StateHijacked {
		c.mu.Lock()
		delete(c.open, tc)
		c.mu.Unlock()
	}
}

// underWay counts the connections with a request under way: being served,
// or begun to arrive (net/http marks a connection active only once a
// request's headers are in).
func (c *conns) underWay() (n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tc := range c.open {
		switch http.ConnState(tc.state.Load()) {
		case http.StateActive:
			n++
		case http.StateNew, http.StateIdle:
			if tc.heard.Load() {
				n++
			}
		}
	}
	return n
}

type trackingListener struct {
	net.Listener
	c *conns
}

func (l trackingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: conn}
	l.c.mu.Lock()
	if l.c.open == nil {
		l.c.open = map[*trackedConn]struct{}{}
	}
	l.c.open[tc] = struct{}{}
	l.c.mu.Unlock()
	return tc, nil
}

// trackedConn is a connection, its last http.ConnState, and whether it
// has received bytes since it last went idle.
type trackedConn struct {
	net.Conn
	state atomic.Int32
	heard atomic.Bool
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.heard.Load() {
		c.heard.Store(true)
	}
	return n, err
}
