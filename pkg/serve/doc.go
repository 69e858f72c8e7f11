// Package serve runs a group of lifespan apps behind HTTP servers and drives
// the shutdown timeline, so that a Kubernetes rollout drops no request.
//
// The server's life is a set of named, one-shot lifecycle [Signals]: each
// is signalled once, records its time, and is what readiness, the request
// gate, the logs, the metrics and the [ShutdownReport] read. In order:
//
//	Listening          probes answer; API routes answer 503 + Retry-After
//	StartupComplete    every hook started, background checks refreshed; the API serves
//	ShutdownInitiated  T0: SIGTERM, SIGINT, SIGHUP, Server.Shutdown or ctx done
//	ReadinessFailing   /readyz 503, /livez 200, responses to requests that
//	                   arrive from here on carry "Connection: close";
//	                   requests still served
//	DrainStarted       T1: after the drain delay, or once no request has
//	                   arrived for the quiet period: stop accepting, wait
//	                   for in-flight requests (bounded by the drain timeout)
//	InFlightDrained    T2: the last request finished (or was cut off)
//	TasksStopped       cut-off requests given a tenth of the stop timeout
//	                   to return; background tasks cancelled and awaited
//	HooksStopped       T3: the background checks end (their calls in
//	                   flight awaited, for at most a tenth of the stop
//	                   timeout), then stop hooks run in reverse order of
//	                   start
//	ShutdownComplete   the report is made, logged and given to OnShutdown;
//	                   then classic sidecars are told to quit, and the
//	                   admin server (probes, metrics) stops last
//
// A second OS signal, more than a second after the first, exits at once
// with ExitForced, logging what was still running; one within the second
// is ignored, so a runtime and a process manager that both forward a
// SIGTERM do not skip the drain. SIGQUIT keeps Go's meaning (stacks, exit
// 2, no drain). With OnShutdown set, a last function sees the report before
// classic sidecars quit and the admin server stops, within OnShutdownTimeout (counted in the budget):
// the reference service pushes its final figures to a Pushgateway there.
// It sees a failed startup's report too, so a start hook's failure
// outlives the process that it ended.
//
// Both servers bound what a client can hold ([Limits]: read, write and
// idle timeouts, header size, open connections); the admin server's limits
// are fixed and tighter, so a flood on the API cannot starve the probes.
// Their connections arm a deadline only when it is earlier than the one
// armed: net/http moves each connection's deadlines several times in every
// request, and each move would arm a runtime timer. A read or write that
// an earlier armed deadline interrupts carries on to the one asked for, so
// every timeout still ends a call when it says.
//
// Every API request's context holds the apps' state (the Group under
// lifespan.StateContextKey, set once per listener by [Server.BaseContext]),
// so handlers read it at no cost per request; a server that mounts
// [Server.APIHandler] takes BaseContext as its own.
//
// The API and admin servers listen separately by default; with
// SingleListener the probes and /metrics share the API port (and withhold
// failure reasons). With Config.GracePeriod set (the pod's
// terminationGracePeriodSeconds), New refuses settings whose preStop (+ 1s
// to close keep-alive connections after it) + drain delay + drain timeout +
// stop timeout (+ sidecar quit timeout) (+ OnShutdownTimeout) + margin
// cannot fit in it.
//
// What serve does not do: it does not retry failed requests, does not make
// a handler honour its request context, and cannot shorten a stop function
// that ignores its context beyond abandoning it at its deadline.
package serve
