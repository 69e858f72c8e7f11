package redact_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/redact"
)

// FuzzURL feeds URL and Error connection strings and passwords from
// outside (BERTH_DATABASE_URL, the Pushgateway and sidecar URLs): neither
// panics, URL is stable (what it hid stays hidden when redacted again),
// and a password written in a URL's userinfo never shows, in URL's result
// or in an error quoting the URL. The password holds no "/", "?" or "#",
// which an unencoded one may hold only where the package's doc says.
func FuzzURL(f *testing.F) {
	for _, seed := range []struct{ raw, pass string }{
		{"postgres://berth:s3cret@db:5432/berth", "s3cr@t:pass"},
		{"host=db password='it\\'s' dbname=berth", "p a s s"},
		{"postgres://db/berth?password=a&b#c", "%41bcdef"},
		{"berth:12/34@db/berth", "pass%zz"},
		{"http://[::1]:9090/x@y", "\x00ctrl-char"},
	} {
		f.Add(seed.raw, seed.pass)
	}
	f.Fuzz(func(t *testing.T, raw, pass string) {
		once := redact.URL(raw)
		if twice := redact.URL(once); twice != once {
			t.Errorf("URL(%q) = %q, and URL of that = %q", raw, once, twice)
		}
		_ = redact.Error(errors.New("cannot parse `"+raw+"`: "+raw), raw)

		const head, tail = "postgres://berth:", "@db:5432/berth"
		if len(pass) < 6 || strings.ContainsAny(pass, "/?#") || strings.Contains(head+tail, pass) || strings.Contains(pass, "xxxxx") {
			return
		}
		withPass := head + pass + tail
		if got := redact.URL(withPass); strings.Contains(got, pass) {
			t.Errorf("URL(%q) = %q: shows the password", withPass, got)
		}
		if got := redact.Error(errors.New("cannot parse `"+withPass+"`: failed"), withPass).Error(); strings.Contains(got, pass) {
			t.Errorf("Error quoting %q = %q: shows the password", withPass, got)
		}
	})
}
