// Package probes serves Kubernetes probe endpoints that tell the truth:
// /livez, /readyz and /startupz, each with per-check sub-paths
// (/readyz/<check>, which ?exclude= does not apply to), ?verbose for a
// "[+]name ok" list, repeatable ?exclude=<check>, and a JSON form
// (?format=json, in any case, or an Accept header that prefers
// application/json to text, by its q values; ?format=text
// asks for text whatever Accept says, an empty one is as if absent, and any
// other format is a 400). The status code (200 or 503) is the machine
// interface.
//
// A [Check] has a name, a context-aware function and a timeout. A check with
// an Interval runs in the background on its own schedule and probes read its
// cached result, so a probe never waits on a slow dependency;
// [Registry.Refresh] runs them all at once when what they watch has just
// changed (package serve calls it as startup completes); a check that
// shares calls between probes tells a refresh's run by [Refreshing]. Checks without an
// Interval run inline, concurrently, each under its timeout; one marked
// Instant only reads memory (a channel, a flag) and runs in the probe's own
// goroutine, with no timer. Failure and success thresholds keep a flapping
// dependency from flapping the probe.
// Every check's last result is kept, so metrics read results and never run
// a check.
//
// Failure reasons are shown only by a handler made with ShowReasons (the
// admin port); elsewhere a failing check's reason reads "reason withheld"
// ("[-]NAME failed: reason withheld" with ?verbose).
//
// Package probes/heptio registers any github.com/heptiolabs/healthcheck
// check (TCP dial, HTTP GET, DNS resolve, goroutine count, DB ping); this
// package itself imports only the standard library.
//
// The package knows nothing of lifespans; package serve registers the
// lifespan's hooks and drain as checks.
package probes
