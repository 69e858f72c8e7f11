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
	"slices"
	"strconv"
	"strings"
)

// URL returns raw with every password in it replaced by "xxxxx": the
// URL's own, and the value of a password or sslpassword parameter, in
// its query or as a libpq keyword. A URL that does not parse (an
// unencoded "@" or space in the password, say), that has no scheme, or
// whose password an unencoded "/", "?" or "#" cut short (see asURL) has
// everything between the user's ":" and the last
// "@", the host's, cut out, as net/url itself splits user from host at
// the last "@". A password parameter's value runs on over what an
// unencoded "&" or "#" in it cut off: the parameters without "=" after
// it and, when it comes last, the fragment.
func URL(raw string) string {
	s := hideParams(raw)
	u, ok := asURL(s)
	if !ok {
		return hideUserinfo(s, s)
	}
	if pass, ok := u.User.Password(); ok && pass != "" {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		return u.String()
	}
	return s
}

// asURL parses raw as a URL when net/url reads its userinfo as written:
// it parses, and has a scheme ("user:pass@host" parses as scheme "user",
// the rest opaque). An unencoded "/", "?" or "#" in a password that
// begins with digits (or with that character) ends the authority early,
// and net/url reads "scheme://user:12/34@host" as host "user", port "12"
// and path "/34@host": such a URL, whose authority holds a ":" and whose
// first path segment, query or fragment (up to its first "/", "?" or "#")
// holds an "@", is read by hand too. (A URL with a port and a first path
// segment holding "@", "scheme://host:5432/db@x", reads so as well; an
// "@" further along the path, "/users/@me", does not.)
func asURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return nil, false
	}
	if u.User == nil && strings.Contains(u.Host, ":") && !strings.HasPrefix(u.Host, "[") {
		_, rest, _ := strings.Cut(raw, "://")
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			first := rest[end+1:]
			if next := strings.IndexAny(first, "/?#"); next >= 0 {
				first = first[:next]
			}
			if strings.Contains(first, "@") {
				return nil, false
			}
		}
	}
	return u, true
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
	// password parameter it repeats: a keyword's, which ends at a space,
	// and raw's query parameters as raw writes them. A query's last
	// parameter runs to the end of the string it is in, so read in the
	// message it would take the rest of the message, the error's cause.
	msg = hideKeywords(hideUserinfo(msg, raw))
	// Each as raw writes it and as Go's %q writes it (net/http's and
	// net/url's errors quote the URL so, escaping a '"' or a backslash in
	// it), the longest first, so that one that begins another is not
	// replaced inside it.
	var secrets [][2]string // what to find, what to put in its place
	if _, params, _, ok := queryOf(raw); ok {
		for _, p := range params {
			if p.password && p.value != "" {
				secrets = append(secrets, [2]string{p.key + "=" + p.value, p.key + "=xxxxx"})
			}
		}
	}
	for _, pass := range passwords(raw) {
		if len(pass) >= 6 {
			secrets = append(secrets, [2]string{pass, "xxxxx"})
		}
	}
	for _, s := range slices.Clone(secrets) {
		if q := strconv.Quote(s[0]); q[1:len(q)-1] != s[0] {
			secrets = append(secrets, [2]string{q[1 : len(q)-1], s[1]})
		}
	}
	slices.SortStableFunc(secrets, func(a, b [2]string) int { return len(b[0]) - len(a[0]) })
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s[0], s[1])
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// keywordParam is a password parameter of a libpq keyword/value string,
// after the start, a space or the closing quote of the value before it
// (which libpq ends there): its value quoted, in the second group (with
// backslash escapes; unterminated, it runs to the end), or running to the
// next unescaped space, in the third. A space is libpq's, which counts a
// vertical tab as one. keywordString is such a string: it begins with a
// keyword and "=", which no URL does.
var (
	keywordParam  = regexp.MustCompile(`(?i)((?:^|[\s\v'])(?:ssl)?password[\s\v]*=[\s\v]*)(?:('(?:[^'\\]|\\[\s\S]|\\$)*'?)|((?:\\[\s\S]|[^\s\v])+))`)
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

// param is one of a URL query's parameters: "key=value", or a bare
// "key" without "=".
type param struct {
	key, value         string
	hasValue, password bool
}

// queryOf splits s into what comes before its query's parameters, the
// parameters, and what follows them (the fragment, with its "#"); ok is
// false when s has no query. A password's value runs on over what an
// unencoded "&" or "#" in it cut off: the bare keys after it and, when it
// comes last, the fragment.
func queryOf(s string) (head string, params []param, tail string, ok bool) {
	start, end, ok := query(s)
	if !ok {
		return s, nil, "", false
	}
	head, tail = s[:start], s[end:]
	for _, pair := range strings.Split(s[start:end], "&") {
		k, v, hasValue := strings.Cut(pair, "=")
		if n := len(params); !hasValue && n > 0 && params[n-1].password {
			params[n-1].value += "&" + pair
			continue
		}
		params = append(params, param{key: k, value: v, hasValue: hasValue, password: hasValue && isPasswordKey(k)})
	}
	if n := len(params); params[n-1].password {
		params[n-1].value += tail
		tail = ""
	}
	return head, params, tail, true
}

// hideParams replaces the values of s's password parameters by "xxxxx".
func hideParams(s string) string {
	if head, params, tail, ok := queryOf(s); ok {
		var b strings.Builder
		b.WriteString(head)
		for i, p := range params {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(p.key)
			switch {
			case p.password && p.value != "":
				b.WriteString("=xxxxx")
			case p.hasValue:
				b.WriteString("=" + p.value)
			}
		}
		b.WriteString(tail)
		s = b.String()
	}
	return hideKeywords(s)
}

// hideKeywords replaces the values of s's libpq password keywords by
// "xxxxx".
func hideKeywords(s string) string {
	return keywordParam.ReplaceAllStringFunc(s, func(m string) string {
		p := keywordParam.FindStringSubmatch(m)
		switch p[2] {
		case "''": // empty: no secret, and shown so
			return m
		case "": // unquoted
		default: // quoted: what follows the quote is the next keyword's
			return p[1] + "'xxxxx'"
		}
		return p[1] + "xxxxx"
	})
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
	if !ok || pass == "" {
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
	if u, ok := asURL(raw); ok {
		if pass, ok := u.User.Password(); ok {
			out = append(out, pass)
		}
	} else if _, pass, ok := userinfo(raw); ok {
		out = append(out, pass)
	}
	_, params, _, _ := queryOf(raw)
	for _, p := range params {
		if p.password {
			// The whole value, and the part before an unencoded "&" or
			// "#", which pgx reads as the password.
			read, _, _ := strings.Cut(p.value, "#")
			read, _, _ = strings.Cut(read, "&")
			out = append(out, p.value, read)
			if unescaped, err := url.QueryUnescape(read); err == nil {
				out = append(out, unescaped)
			}
		}
	}
	for _, m := range keywordParam.FindAllStringSubmatch(raw, -1) {
		v := m[3]
		if q := m[2]; q != "" {
			v = strings.TrimSuffix(q[1:], "'")
		}
		out = append(out, v, backslashes.ReplaceAllString(v, "$1"))
	}
	return out
}

// backslashes is a keyword value's escape: the character after it stands
// for itself.
var backslashes = regexp.MustCompile(`(?s)\\(.)`)
