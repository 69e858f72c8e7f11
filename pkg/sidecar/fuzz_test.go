package sidecar

import (
	"net"
	"testing"

	"github.com/berth-dev/berth/pkg/probes"
)

// Any list of specs parses to targets that name a host and port and a
// scheme the waiter can probe, and a valid check name, or is refused;
// nothing panics.
func FuzzParseTargets(f *testing.F) {
	for _, seed := range []string{"http://127.0.0.1:15021/healthz/ready", "tcp://[::1]:4143", "host:9", "ftp://x:1", "http://:80", "://", "a:b:c", "http://[fe80::1%25en0%20x]:15021/ready"} {
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
			if _, port, err := net.SplitHostPort(tg.URL.Host); err != nil || port == "" || tg.Name != tg.URL.Host || seen[tg.Name] {
				t.Fatalf("%q %q: target %+v", a, b, tg)
			}
			if err := probes.CheckName("sidecar/" + tg.Name); err != nil {
				t.Fatalf("%q %q: target %q names no valid check: %v", a, b, tg.Name, err)
			}
			seen[tg.Name] = true
		}
	})
}
