// Package lifespan runs a service's startup and shutdown hooks in a
// well-defined order, the Go shape of Starlette's lifespan context manager.
//
// A [Hook] is a named start function that returns its own stop function: a
// closure over the start's locals, the way code after `yield` sees the
// variables set before it. An [App] starts its hooks in registration order,
// or in dependency order several at once when hooks name the hooks they
// need ([Hook.After], [App.Concurrency]). If a start fails, panics, ends
// its goroutine without returning (runtime.Goexit, as t.FailNow does) or
// passes its timeout, every hook already started is stopped in reverse and the
// error names the app and hook. [App.Stop] cancels and awaits the background
// tasks hooks started ([Scope.Go]), then calls every started hook's stop in
// reverse, best effort: each stop has its own timeout, a failing stop never
// skips the others, and once the overall deadline has passed the remaining
// stops are still called, with a context that says so, and share a 100ms
// grace to return in. Errors are joined with [errors.Join].
//
// Hooks publish typed values with [Key.Set] during startup; once the app is
// ready they form a read-only [State]. A request layers its own values on
// top with [Key.With], which never changes the app's state, so nothing a
// request adds can leak into another request.
//
// A [Group] holds several apps: it starts them in order and stops them in
// reverse, and keys read from it read each app's state in order. Package
// serve puts its Group in every API request's context under
// [StateContextKey], once per listener, so handlers reach the state at no
// cost per request.
//
// Every phase change, hook start and stop and task exit is an
// [Event] given to the app's [Observer]; [LogObserver] logs them with
// log/slog, and package metrics turns them into Prometheus figures.
//
// The package imports only the standard library and knows nothing of HTTP:
// package serve drives the drain around it and package probes reports it.
package lifespan
