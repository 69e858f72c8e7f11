// Package redact hides the passwords a connection string holds, in the
// string and in errors that quote it, so that it can be shown to an
// operator however it was written: a URL (with its scheme, or without,
// as "user:password@host"), a password in a URL's query, or a libpq
// keyword/value string ("host=db password=s3cret"), which pgx reads too.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// URL returns raw with every password in it replaced by "xxxxx": the
// URL's own, and the value of a password or sslpassword parameter, in
// its query or as a libpq keyword. A URL that does not parse (an
// unencoded "@" or space in the password, say), or that has no scheme,
// has everything between the user's ":" and the last "@", the host's, cut
// out, as net/url itself splits user from host at the last "@".
func URL(raw string) string {
	s := hideParams(raw)
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" { // "user:pass@host" parses as scheme "user"
		return hideUserinfo(s, s)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		return u.String()
	}
	return s
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
	// unquoted (client_golang's push errors quote the URL so), and any
	// password parameter it repeats.
	msg = hideParams(hideUserinfo(msg, raw))
	for _, pass := range passwords(raw) {
		if len(pass) >= 6 {
			msg = strings.ReplaceAll(msg, pass, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// queryParam is a password parameter in a URL's query, and keywordParam
// one in a libpq keyword/value string, whose value may be quoted (with
// backslash escapes) or runs to the next space. Each keeps its value in
// its last group.
var (
	queryParam   = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)([^&#]+)`)
	keywordParam = regexp.MustCompile(`(?i)((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)`)
)

// hideParams replaces the values of s's password parameters by "xxxxx".
func hideParams(s string) string {
	s = queryParam.ReplaceAllString(s, "${1}xxxxx")
	return keywordParam.ReplaceAllString(s, "${1}xxxxx")
}

// userinfo is raw's "user:password" split at the first ":": the text
// between "://" and the last "@", or for a URL without a scheme, the text
// before the last "@" ahead of its path; ok is false without that ":", or
// when raw is no URL (a keyword/value string, say).
func userinfo(raw string) (user, pass string, ok bool) {
	start, end := 0, len(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	} else if j := strings.IndexAny(raw, "/?#"); j >= 0 {
		end = j
	}
	at := strings.LastIndex(raw[:end], "@")
	if at < start {
		return "", "", false
	}
	info := raw[start:at]
	if start == 0 && strings.ContainsAny(info, " \t=") {
		return "", "", false
	}
	return strings.Cut(info, ":")
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

// passwords are the passwords raw holds: the URL's, as net/url reads it
// or, when raw does not parse as a URL with a scheme, the text between
// the user's ":" and the last "@"; and the values of its password
// parameters, unquoted.
func passwords(raw string) []string {
	var out []string
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if pass, ok := u.User.Password(); ok {
			out = append(out, pass)
		}
	} else if _, pass, ok := userinfo(raw); ok {
		out = append(out, pass)
	}
	for _, re := range []*regexp.Regexp{queryParam, keywordParam} {
		for _, m := range re.FindAllStringSubmatch(raw, -1) {
			v := m[len(m)-1]
			if unquoted, err := url.QueryUnescape(v); re == queryParam && err == nil {
				out = append(out, unquoted)
			}
			out = append(out, strings.Trim(v, "'"))
		}
	}
	return out
}
