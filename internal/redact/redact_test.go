package redact_test

import (
	"errors"
	"fmt"
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
