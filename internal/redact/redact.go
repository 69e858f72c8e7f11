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

// keywordParam is a password parameter of a libpq keyword/value string:
// its value quoted (with backslash escapes) or running to the next
// unescaped space, kept in the last group. keywordString is such a string:
// it begins with a keyword and "=", which no URL does.
var (
	keywordParam  = regexp.MustCompile(`(?i)((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:\\.|\S)+)`)
	keywordString = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
)

// isPasswordKey reports whether a URL query's key, escapes decoded as
// url.Query decodes them (and so pgx reads it), names a password.
func isPasswordKey(key string) bool {
	if k, err := url.QueryUnescape(key); err == nil {
		key = k
	}
	return strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword")
}

// query returns where s's query begins and ends, or ok false without one.
func query(s string) (start, end int, ok bool) {
	q := strings.Index(s, "?")
	if q < 0 || keywordString.MatchString(s) {
		return 0, 0, false
	}
	end = len(s)
	if h := strings.Index(s[q:], "#"); h >= 0 {
		end = q + h
	}
	return q + 1, end, true
}

// hideParams replaces the values of s's password parameters by "xxxxx".
func hideParams(s string) string {
	if start, end, ok := query(s); ok {
		pairs := strings.Split(s[start:end], "&")
		for i, pair := range pairs {
			if k, v, ok := strings.Cut(pair, "="); ok && v != "" && isPasswordKey(k) {
				pairs[i] = k + "=xxxxx"
			}
		}
		s = s[:start] + strings.Join(pairs, "&") + s[end:]
	}
	return keywordParam.ReplaceAllString(s, "${1}xxxxx")
}

// userinfo is raw's "user:password" split at the first ":": the text
// between "://" and the last "@". For a URL without a scheme it is the
// text before the last "@" ahead of the path, or, when none is (a "/" in
// the password), before the last "@" of all. ok is false without that
// ":", or when raw is a keyword/value string.
func userinfo(raw string) (user, pass string, ok bool) {
	start, at := 0, strings.LastIndex(raw, "@")
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	} else if keywordString.MatchString(raw) {
		return "", "", false
	} else if slash := strings.Index(raw, "/"); slash >= 0 {
		if a := strings.LastIndex(raw[:slash], "@"); a >= 0 && strings.Contains(raw[:a], ":") {
			at = a
		}
	}
	if at < start {
		return "", "", false
	}
	return strings.Cut(raw[start:at], ":")
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
// parameters, as pgx reads them (a query's unescaped, a keyword's
// unquoted and unescaped).
func passwords(raw string) []string {
	var out []string
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if pass, ok := u.User.Password(); ok {
			out = append(out, pass)
		}
	} else if _, pass, ok := userinfo(raw); ok {
		out = append(out, pass)
	}
	if start, end, ok := query(raw); ok {
		for _, pair := range strings.Split(raw[start:end], "&") {
			if k, v, ok := strings.Cut(pair, "="); ok && isPasswordKey(k) {
				out = append(out, v)
				if unescaped, err := url.QueryUnescape(v); err == nil {
					out = append(out, unescaped)
				}
			}
		}
	}
	for _, m := range keywordParam.FindAllStringSubmatch(raw, -1) {
		v := m[len(m)-1]
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		out = append(out, v, backslashes.ReplaceAllString(v, "$1"))
	}
	return out
}

// backslashes is a keyword value's escape: the character after it stands
// for itself.
var backslashes = regexp.MustCompile(`\\(.)`)
