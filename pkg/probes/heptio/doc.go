// Package heptio adapts the checks of github.com/heptiolabs/healthcheck
// (TCP dial, HTTP GET, DNS resolve, goroutine count, database ping) to
// package probes, so they run under probes' context, timeout, thresholds
// and background scheduling.
//
// It is a package of its own so that a user of probes does not compile
// heptio's dependencies: probes imports only the standard library.
// heptiolabs/healthcheck's own handler, Timeout and Async wrappers are not
// used: their checks take no context, Timeout starts a goroutine per call,
// and Async a ticker that never stops. [Check] keeps at most one call in
// flight instead.
package heptio
