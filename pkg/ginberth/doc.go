// Package ginberth is the Gin glue of berth, kept apart so the core
// packages stay net/http-plain.
//
// [Get] and [MustGet] read a typed value of the lifespan's state in a
// handler, and [Set] adds a value for this request only (a copy-on-write
// layer, so nothing leaks into other requests or back into the lifespan).
// Behind package serve they need no middleware: serve's API listener puts
// its apps' state in every request's context, once per listener, and Get
// reads it from there. [State] is middleware for an engine served some
// other way, or for handlers that should see one app's state alone.
// [Metrics] records request metrics labelled by the route template
// (c.FullPath()), never the raw path.
package ginberth
