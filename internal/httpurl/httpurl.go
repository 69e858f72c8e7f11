// Package httpurl checks URLs that berth will call over HTTP: the
// Pushgateway's, a probe's, a sidecar's quit endpoint. It imports only the
// standard library, so pkg/sidecar may use it.
package httpurl

import (
	"net/url"
	"strconv"
	"strings"
)

// Valid reports whether s is an http:// or https:// URL with a host, and a
// port from 1 to 65535 if it names one (an empty port after a colon, as in
// "http://host:/x", is not one).
func Valid(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return false
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		return err == nil && n >= 1 && n <= 65535
	}
	return true
}
