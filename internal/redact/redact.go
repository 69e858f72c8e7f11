// Package redact hides the password of a URL, in the URL and in errors
// that quote it, so that a connection string can be shown to an operator.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// URL returns raw with its password, if any, replaced by "xxxxx". A URL
// that does not parse (an unencoded "@" or space in the password, say)
// has everything between the user's ":" and the last "@", the host's, cut
// out, as net/url itself splits user from host at the last "@".
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return hideUserinfo(raw, raw)
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// quoted is a connection string as pgx quotes it in its errors.
var quoted = regexp.MustCompile("`[^`]*`")

// Error returns err with every quoted connection string in its message
// replaced by URL(raw): pgx's own redaction stops at the password's first
// "@", so a password with an unencoded "@" would otherwise show its end.
// A password of six characters or more is also hidden wherever else it
// appears; a shorter one is not, as it would garble the rest of the
// message (a password "p" in "ca.pem").
func Error(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := quoted.ReplaceAllLiteralString(err.Error(), "`"+URL(raw)+"`")
	// raw's own "user:password@", wherever the message repeats raw
	// unquoted (client_golang's push errors quote the URL so).
	msg = hideUserinfo(msg, raw)
	if pass := password(raw); len(pass) >= 6 {
		msg = strings.ReplaceAll(msg, pass, "xxxxx")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// userinfo is the text of raw between "://" and its last "@", split at
// the first ":"; ok is false without that ":".
func userinfo(raw string) (user, pass string, ok bool) {
	i, at := strings.Index(raw, "://"), strings.LastIndex(raw, "@")
	if i < 0 || at < i {
		return "", "", false
	}
	return strings.Cut(raw[i+3:at], ":")
}

// hideUserinfo replaces raw's "user:password@", wherever s holds it, by
// "user:xxxxx@".
func hideUserinfo(s, raw string) string {
	user, pass, ok := userinfo(raw)
	if !ok {
		return s
	}
	return strings.ReplaceAll(s, user+":"+pass+"@", user+":xxxxx@")
}

// password is raw's password: as net/url reads it, or, when raw does not
// parse, the text between the user's ":" and the last "@".
func password(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		pass, _ := u.User.Password()
		return pass
	}
	_, pass, _ := userinfo(raw)
	return pass
}
