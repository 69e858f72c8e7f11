package redact_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/redact"
	"github.com/jackc/pgx/v5/pgconn"
)

// FuzzURL feeds URL and Error connection strings and passwords from
// outside (BERTH_DATABASE_URL, the Pushgateway and sidecar URLs): neither
// panics, URL is stable (what it hid stays hidden when redacted again),
// the password pgx reads from the string (a URL or keyword/value) never
// shows in URL's result, and a password written in a URL's userinfo never
// shows, in URL's result or in an error quoting the URL. That password
// holds no "/", "?" or "#", which an unencoded one may hold only where the
// package's doc says.
func FuzzURL(f *testing.F) {
	for _, seed := range []struct{ raw, pass string }{
		{"postgres://berth:s3cret@db:5432/berth", "s3cr@t:pass"},
		{"host=db password='it\\'s' dbname=berth", "p a s s"},
		{"postgres://db/berth?password=a&b#c", "%41bcdef"},
		{"berth:12/34@db/berth", "pass%zz"},
		{"http://[::1]:9090/x@y", "\x00ctrl-char"},
		{"host=db user='berth'password=s3cretpw dbname=x", "s3cretpw"},
		{"host=db\vpassword\v=\v's3c\\\nret' sslpassword=abc\\ def", "abcdef"},
	} {
		f.Add(seed.raw, seed.pass)
	}
	f.Fuzz(func(t *testing.T, raw, pass string) {
		once := redact.URL(raw)
		if twice := redact.URL(once); twice != once {
			t.Errorf("URL(%q) = %q, and URL of that = %q", raw, once, twice)
		}
		_ = redact.Error(errors.New("cannot parse `"+raw+"`: "+raw), raw)
		if cfg, err := pgconn.ParseConfig(raw); err == nil {
			if p := cfg.Password; len(p) >= 6 && strings.Count(raw, p) == 1 && !strings.Contains(p, "xxxxx") {
				if strings.Contains(once, p) {
					t.Errorf("URL(%q) = %q: shows the password pgx reads, %q", raw, once, p)
				}
			}
		}

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
