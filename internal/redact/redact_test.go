package redact_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/redact"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestURL(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"postgres://berth:s3cret@db:5432/berth", "postgres://berth:xxxxx@db:5432/berth"},
		{"postgres://berth@db/berth", "postgres://berth@db/berth"},
		{"postgres://db/berth?application_name=a@b", "postgres://db/berth?application_name=a@b"},
		{"postgres://berth:s3c@ret@db:notaport/berth", "postgres://berth:xxxxx@db:notaport/berth"},
		{"postgres://berth:pass word@db/berth", "postgres://berth:xxxxx@db/berth"},
		{"http://pushgateway:9091", "http://pushgateway:9091"},
		// Written otherwise: without the scheme, the password in the query
		// (pgx reads it there), a libpq keyword/value string.
		{"berth:s3cret@db:5432/berth", "berth:xxxxx@db:5432/berth"},
		{"admin:s3cret@127.0.0.1:15000/quit@x", "admin:xxxxx@127.0.0.1:15000/quit@x"},
		{"admin:s3c@ret@pushgateway:9091", "admin:xxxxx@pushgateway:9091"},
		{"postgres://berth@db/berth?password=s3cret&sslmode=bogus", "postgres://berth@db/berth?password=xxxxx&sslmode=bogus"},
		{"postgres://db/berth?sslmode=require&PASSWORD=s3cret#x", "postgres://db/berth?sslmode=require&PASSWORD=xxxxx"},
		{"postgres://db/berth?sslpassword=s3cret", "postgres://db/berth?sslpassword=xxxxx"},
		{"host=db user=berth password=s3cret dbname=berth", "host=db user=berth password=xxxxx dbname=berth"},
		{`host=db password = 'it\'s s3cret' dbname=berth`, "host=db password = 'xxxxx' dbname=berth"},
		{`host=db password='s3c\'ret and more' sslpassword=p@ss:w`, "host=db password='xxxxx' sslpassword=xxxxx"},
		// libpq's (and pgx's) reading: a keyword may follow a closing quote
		// at once, a vertical tab is a space, and a backslash escapes a
		// newline too.
		{"host=db user='berth'password=s3cretpw dbname=x", "host=db user='berth'password=xxxxx dbname=x"},
		{"host=db sslpassword='x' password='pw'dbname=y", "host=db sslpassword='xxxxx' password='xxxxx'dbname=y"},
		{"host=db\vpassword\v=\vs3cretpw dbname=x", "host=db\vpassword\v=\vxxxxx dbname=x"},
		{"host=db password='ab\\\ns3cretpw' dbname=x", "host=db password='xxxxx' dbname=x"},
		{"password=s3cret", "password=xxxxx"},
		{"host=db:5432 password=p@ss dbname=berth", "host=db:5432 password=xxxxx dbname=berth"},
		{"admin:c2VjcmV0cGFzcw==@pushgateway:9091", "admin:xxxxx@pushgateway:9091"},
		{"admin:abc/def==@pushgateway:9091/x", "admin:xxxxx@pushgateway:9091/x"},
		{"admin:pa ss word@pushgateway:9091", "admin:xxxxx@pushgateway:9091"},
		{`host=db password=s3cr\ et6789 dbname=berth`, "host=db password=xxxxx dbname=berth"},
		{"postgres://db/berth?pass%77ord=s3cret&sslmode=require", "postgres://db/berth?pass%77ord=xxxxx&sslmode=require"},
		{"postgres://db/berth?password=&sslmode=require", "postgres://db/berth?password=&sslmode=require"},
		// Unencoded: a "/" ends a URL's authority, so net/url reads the
		// password as a port and the rest as the path; a "&" or "#" ends a
		// query parameter, so pgx reads only its start as the password.
		{"postgres://berth:12/34@db/berth", "postgres://berth:xxxxx@db/berth"},
		{"postgres://berth:ab/cd@db/berth?sslmode=require", "postgres://berth:xxxxx@db/berth?sslmode=require"},
		{"postgres://db/berth?password=s3c&ret&sslmode=require", "postgres://db/berth?password=xxxxx&sslmode=require"},
		{"postgres://db/berth?password=s3c#ret", "postgres://db/berth?password=xxxxx"},
		{"postgres://db/berth?sslmode=require#password=x", "postgres://db/berth?sslmode=require#password=x"},
		{"postgres://berth:/s3cret@db/berth", "postgres://berth:xxxxx@db/berth"},
		{"postgres://berth:12?s3cret@db/berth", "postgres://berth:xxxxx@db/berth"},
		{"postgres://berth:12#s3cret@db/berth", "postgres://berth:xxxxx@db/berth"},
		{"postgres://berth:#s3cret@db/berth", "postgres://berth:xxxxx@db/berth"},
		// An "@" further along a URL's path is no password's.
		{"http://127.0.0.1:9090/users/@me", "http://127.0.0.1:9090/users/@me"},
		{"http://pushgateway:9091/metrics/job/a@b", "http://pushgateway:9091/metrics/job/a@b"},
		{"http://[::1]:9090/x@y", "http://[::1]:9090/x@y"},
		{"postgres://db:5432/berth?application_name=a@b", "postgres://db:5432/berth?application_name=a@b"},
		// Not passwords.
		{"host=db user=berth dbname=berth", "host=db user=berth dbname=berth"},
		{"postgres://db/berth?mypassword=open", "postgres://db/berth?mypassword=open"},
		{"127.0.0.1:15021", "127.0.0.1:15021"},
		{"berth@db/berth", "berth@db/berth"},
	} {
		if got := redact.URL(tt.raw); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// pgx's parse errors quote the URL with its own redaction, which stops at
// the password's first "@": no part of the password survives Error.
func TestErrorHidesEveryPartOfThePassword(t *testing.T) {
	for _, tt := range []struct{ raw, secret string }{
		{"postgres://berth:s3c@ret1@host:notaport/db", "ret1"},
		{"postgres://berth:s3c@ret2@host:5432/db?pool_max_conns=abc", "ret2"},
		{"postgres://berth:a:b@secret3@host:5432/db?sslmode=bogus", "secret3"},
		{"postgres://berth:pass word4@host:notaport/db", "word4"},
		{"postgres://berth:s3cret5@host:notaport/db", "s3cret5"},
	} {
		_, err := pgxpool.ParseConfig(tt.raw)
		if err == nil {
			t.Fatalf("%s parsed", tt.raw)
		}
		got := redact.Error(err, tt.raw).Error()
		if strings.Contains(got, tt.secret) || !strings.Contains(got, "xxxxx") {
			t.Errorf("Error(%q) = %q: shows %q", tt.raw, got, tt.secret)
		}
	}
	if redact.Error(nil, "postgres://a:b@c/d") != nil {
		t.Error("Error(nil) is not nil")
	}
	plain := errors.New("connection refused")
	if got := redact.Error(plain, "postgres://a:b@c/d"); got != plain {
		t.Errorf("an error without the URL became %v", got)
	}
}

// A password written otherwise (in the query, as a keyword, without the
// URL's scheme) is hidden in an error that repeats it too: quoted as pgx
// quotes a connection string, as a parameter, or anywhere when it is six
// characters or more.
func TestErrorHidesAPasswordWrittenOtherwise(t *testing.T) {
	for _, raw := range []string{
		"postgres://berth@db/berth?password=s3cret6&sslmode=bogus",
		"host=db user=berth password=s3cret6 sslmode=bogus",
		"host=db user=berth password='s3cret6' sslmode=bogus",
		"berth:s3cret6@db:5432/berth",
		"postgres://berth@db/berth?password=s3cr%65t6",
		"postgres://berth@db/berth?pass%77ord=s3cret6",
		`host=db password=s3cret\6 sslmode=bogus`,
		`host=db password='s3cret\6' sslmode=bogus`,
	} {
		for _, msg := range []string{
			"cannot parse `" + raw + "`: failed to configure TLS",
			"connecting with password=s3cret6: refused",
			"the server refused s3cret6",
		} {
			if got := redact.Error(errors.New(msg), raw).Error(); strings.Contains(got, "s3cret6") {
				t.Errorf("Error(%q, %q) = %q", msg, raw, got)
			}
		}
	}
}

// A password with an unencoded "/", "&" or "#" (which cut it short as
// net/url and pgx read it) is hidden whole in an error that quotes the
// URL or repeats the password, not only the part they read.
func TestErrorHidesAnUnencodedPasswordWhole(t *testing.T) {
	for _, tt := range []struct{ raw, pass string }{
		{"postgres://berth:s3cr/et6@db/berth", "s3cr/et6"},
		{"postgres://berth@db/berth?password=s3c&ret6", "s3c&ret6"},
		{"postgres://berth@db/berth?password=s3c#ret6", "s3c#ret6"},
		{"postgres://berth:12?s3cret6@db/berth", "12?s3cret6"},
	} {
		for _, msg := range []string{"cannot parse `" + tt.raw + "`: failed", "the server refused " + tt.pass} {
			if got := redact.Error(errors.New(msg), tt.raw).Error(); strings.Contains(got, "et6") {
				t.Errorf("Error(%q, %q) = %q", msg, tt.raw, got)
			}
		}
	}
}

// A short password (under six characters, not hidden everywhere) is still
// hidden where the message repeats it as a parameter; and a keyword/value
// string holding ":" and "@" is not read as a URL's user and password,
// which would cut it at the "@" inside its password and show the rest.
func TestErrorHidesAShortPasswordParameter(t *testing.T) {
	for _, tt := range []struct{ raw, msg, want string }{
		{"postgres://db/berth?password=pw", "connecting with password=pw failed: refused", "connecting with password=xxxxx failed: refused"},
		{"host=db password=pw", "connecting with password=pw failed: refused", "connecting with password=xxxxx failed: refused"},
		// A URL repeated unquoted: its password, last in the query, ends
		// where the URL does, not with the message.
		{"postgres://db/berth?sslmode=disable&password=pw", "dial postgres://db/berth?sslmode=disable&password=pw: refused", "dial postgres://db/berth?sslmode=disable&password=xxxxx: refused"},
		{"host=db:5432 password=p@ss dbname=berth", "cannot parse host=db:5432 password=p@ss dbname=berth", "cannot parse host=db:5432 password=xxxxx dbname=berth"},
	} {
		if got := redact.Error(errors.New(tt.msg), tt.raw).Error(); got != tt.want {
			t.Errorf("Error(%q, %q) = %q, want %q", tt.msg, tt.raw, got, tt.want)
		}
	}
}

// An error that repeats the URL unquoted (client_golang's push errors)
// loses its password too, however short.
func TestErrorHidesTheUserinfoOfAnUnquotedURL(t *testing.T) {
	raw := "http://berth:pw@pushgateway:9091"
	err := fmt.Errorf("unexpected status code 503 while pushing to %s/metrics/job/berth-exit: down", raw)
	got := redact.Error(err, raw).Error()
	if want := "unexpected status code 503 while pushing to http://berth:xxxxx@pushgateway:9091/metrics/job/berth-exit: down"; got != want {
		t.Fatalf("Error = %q, want %q", got, want)
	}
}

// pgx's parse error for a URL whose password parameter comes last keeps
// its cause after Error: the password parameter's value ends where the
// quoted URL does, not at the end of the message.
func TestErrorKeepsTheCauseAfterAQueryPassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://db/berth?sslmode=bogus&password=s3cret6",
		"postgres://berth@db/berth?sslmode=bogus&password=pw",
	} {
		_, err := pgxpool.ParseConfig(raw)
		if err == nil {
			t.Fatalf("%s parsed", raw)
		}
		got := redact.Error(err, raw).Error()
		if !strings.Contains(got, "sslmode is invalid") {
			t.Errorf("Error(%q) = %q: lost the cause", raw, got)
		}
		if strings.Contains(got, "s3cret6") || strings.Contains(got, "password=pw") {
			t.Errorf("Error(%q) = %q: shows the password", raw, got)
		}
	}
}

// An empty password is no secret, and shows as empty however it is
// written, as an empty query parameter does ("?password=" stays so): an
// "xxxxx" would tell an operator chasing "password authentication failed"
// that a password was set.
func TestURLLeavesAnEmptyPasswordEmpty(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"postgres://db/berth?password=&sslmode=require", "postgres://db/berth?password=&sslmode=require"},
		{"postgres://berth:@db/berth", "postgres://berth:@db/berth"},
		{"berth:@db:5432/berth", "berth:@db:5432/berth"},
		{"host=db user=berth password='' dbname=berth", "host=db user=berth password='' dbname=berth"},
	} {
		if got := redact.URL(tt.raw); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// A URL error (net/http's "Get %q", net/url's "parse %q") quotes the URL
// with Go's escapes, so a query password holding '"' or '\\' is not
// written there as raw writes it: it is hidden in that form too.
func TestErrorHidesAQueryPasswordInAGoQuotedURL(t *testing.T) {
	for _, raw := range []string{
		`http://127.0.0.1:1/readyz?token=1&password=a"bcdefg`,
		`http://127.0.0.1:1/readyz?password=a\bcdefg&x=1`,
		`http://127.0.0.1:1/readyz?password=a"b`,
	} {
		err := &url.Error{Op: "Get", URL: raw, Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
		got := redact.Error(err, raw).Error()
		if strings.Contains(got, "bcdefg") || strings.Contains(got, `password=a\"b`) || !strings.Contains(got, "connection refused") {
			t.Errorf("Error(%q) = %q: shows the password, or lost the cause", err, got)
		}
	}
}

// A short password parameter that begins another (or whose "password=v"
// sits inside "sslpassword=v…") does not hide only the start of the
// longer one.
func TestErrorHidesAPasswordParameterThatAnotherPrefixes(t *testing.T) {
	for _, raw := range []string{
		"postgres://db/berth?password=ab&sslpassword=ab3de",
		"postgres://db/berth?password=ab&password=ab3de",
	} {
		got := redact.Error(errors.New("dial "+raw+": refused"), raw).Error()
		if strings.Contains(got, "3de") {
			t.Errorf("Error(%q) = %q: shows the end of a password", raw, got)
		}
	}
}
