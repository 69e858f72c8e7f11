// Package serve runs a lifespan group behind HTTP servers and drives the
// shutdown timeline, so that a Kubernetes rollout drops no request:
//
//	T0      SIGTERM, SIGINT, Server.Shutdown or the Run context ending:
//	        /readyz turns 503 at once, /livez stays 200, and API responses
//	        carry "Connection: close" so clients reconnect elsewhere
//	T0..T1  drain delay: keep accepting and serving while kube-proxy, load
//	        balancers and meshes learn the pod is going
//	T1      stop accepting; wait for in-flight requests (http.Server.Shutdown,
//	        bounded by the drain timeout; what is left is cut off)
//	T2      cancel the lifespans' background tasks and wait for them
//	T2..T3  stop hooks in reverse order of start, each with its own timeout
//	T3      optionally tell classic sidecars to quit
//	T3      the admin server (probes, metrics) stops last; the timeline is
//	        logged and reported; Run returns
//	any     a second signal exits at once with ExitForced, logging what was
//	        still running
//
// Before startup completes, API routes answer 503 with Retry-After while
// probes answer from the moment the admin listener is up. The API and admin
// servers listen separately by default; with SingleListener the probes and
// /metrics share the API port (and withhold failure reasons).
//
// With Config.GracePeriod set (the pod's terminationGracePeriodSeconds), New
// refuses a configuration whose preStop + drain delay + drain timeout + stop
// timeout + sidecar quit timeout + margin cannot fit in it.
//
// What serve does not do: it does not retry failed requests, does not make
// a handler honour its request context, and cannot shorten a stop function
// that ignores its context beyond abandoning it at its deadline.
package serve
