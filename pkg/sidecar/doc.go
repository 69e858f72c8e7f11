// Package sidecar makes a service aware of the sidecars in its pod (service
// mesh proxies, log shippers, the reference service's own sidecar mode).
//
// At startup, [Waiter.Hook] is a lifespan hook that waits until every
// configured sidecar is ready, probing an HTTP readiness URL (Istio's
// :15021/healthz/ready, Linkerd's :4191/ready) or dialling a TCP address,
// with exponential backoff and a deadline. Register it first, so the hooks
// that need the network run after it: with the app's default Concurrency
// of 1, hooks start in the order registered; with Concurrency above 1, a
// hook starts as soon as the hooks its After names are up, so each hook
// that needs the network must name "sidecars" in its After. Its start
// duration is the wait, in the lifespan's events and metrics. [Waiter.Checks] reports each sidecar as
// a readiness check that keeps probing it in the background.
//
// At shutdown, [Quit] calls each classic sidecar's quit endpoint (Istio's
// POST /quitquitquit, Linkerd's POST /shutdown) once the app's teardown is
// over, for Jobs and pods whose sidecars would otherwise outlive the app
// (serve runs it as Config.QuitSidecars). A refused connection is a sidecar
// gone already, unless [Options.RetryRefused] says it may not have started
// yet. Set it in the quit you give serve as
// Config.QuitSidecarsAfterFailedStartup (for a Job's pod with restartPolicy
// Never), which runs after a failed startup or a listener Run could not
// open, possibly within moments of the pod's start (after a startup an OS
// signal abandoned, serve runs Config.QuitSidecars instead: the sidecar is
// stopping too).
// Native sidecars (initContainers with restartPolicy: Always) need neither:
// the kubelet starts them before and stops them after the app.
package sidecar
