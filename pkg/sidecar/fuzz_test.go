package sidecar

import (
	"net"
	"testing"

	"github.com/berth-dev/berth/pkg/probes"
)

// Any list of specs parses to targets that name a host and port (an
// http(s) URL without a port means its scheme's) and a scheme the waiter
// can probe, and a valid check name, or is refused; nothing panics.
func FuzzParseTargets(f *testing.F) {
	for _, seed := range []string{"http://127.0.0.1:15021/healthz/ready", "tcp://[::1]:4143", "host:9", "ftp://x:1", "http://:80", "://", "a:b:c", "http://[fe80::1%25en0%20x]:15021/ready", "http://envoy/ready", "https://[::1]/ready"} {
		f.Add(seed, "127.0.0.1:1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		targets, err := ParseTargets([]string{a, b})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tg := range targets {
			if s := tg.URL.Scheme; s != "http" && s != "https" && s != "tcp" {
				t.Fatalf("%q %q: scheme %q", a, b, s)
			}
			// The name is the host and port dialled: the URL's, or for an
			// http(s) URL that names no port, its host and the scheme's.
			want := tg.URL.Host
			if p, ok := defaultPorts[tg.URL.Scheme]; ok && tg.URL.Port() == "" {
				want = net.JoinHostPort(tg.URL.Hostname(), p)
			}
			if _, port, err := net.SplitHostPort(tg.Name); err != nil || port == "" || tg.Name != want || seen[tg.Name] {
				t.Fatalf("%q %q: target %+v", a, b, tg)
			}
			if err := probes.CheckName("sidecar/" + tg.Name); err != nil {
				t.Fatalf("%q %q: target %q names no valid check: %v", a, b, tg.Name, err)
			}
			seen[tg.Name] = true
		}
	})
}
