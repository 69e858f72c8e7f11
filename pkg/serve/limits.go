package serve

import (
	"net"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/deadline"
	"golang.org/x/net/netutil"
)

// Limits bound what clients can hold of a server: how long a request may
// take to arrive and to be answered, how long an idle keep-alive
// connection stays open, how large its headers may be, and how many
// connections are open at once (past that, new ones wait in the kernel's
// backlog until one closes). Zero fields take the defaults.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (API default
	// 10s), ReadTimeout the whole request, body included (API default 30s),
	// WriteTimeout the time from the end of the headers to the end of the
	// response (API default 60s: above the longest request the API
	// allows), IdleTimeout an idle keep-alive connection (API default 90s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers (API default 64
	// KiB) as http.Server's field of that name does: net/http reads up to
	// 4 KiB past it (its read-ahead) before it answers 431.
	MaxHeaderBytes int
	// MaxConnections bounds the connections open at once (API default 4096).
	MaxConnections int
}

// DefaultLimits are the API server's defaults; adminLimits the admin
// server's fixed limits: probes and scrapes are small and quick, and a slow
// client of the API never holds a connection the kubelet needs.
var (
	DefaultLimits = Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10, MaxConnections: 4096}
	adminLimits   = Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, MaxConnections: 256}
)

// orDefaults fills l's zero fields from d.
func (l Limits) orDefaults(d Limits) Limits {
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	l.ReadHeaderTimeout = pick(l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	l.ReadTimeout = pick(l.ReadTimeout, d.ReadTimeout)
	l.WriteTimeout = pick(l.WriteTimeout, d.WriteTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, d.IdleTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = d.MaxConnections
	}
	return l
}

// server returns an http.Server for h with these limits.
func (l Limits) server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: l.MaxHeaderBytes}
}

// listener bounds ln's open connections, and moves their deadlines
// lazily: with srv's timeouts set, net/http moves them several times in
// every request, and each move would arm a runtime timer (see
// internal/deadline).
func (l Limits) listener(ln net.Listener, srv *http.Server) capped {
	return capped{deadline.ServerListener(netutil.LimitListener(ln, l.MaxConnections), srv), l.MaxConnections}
}

// capped is a listener that holds at most max connections open; it says
// what its cap is, which the listener netutil returns does not.
type capped struct {
	net.Listener
	max int
}
