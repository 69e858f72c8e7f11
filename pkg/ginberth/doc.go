// Package ginberth is the Gin glue of berth, kept apart so the core
// packages stay net/http-plain.
//
// [State] makes the lifespan's state reachable from handlers: [Get] and
// [MustGet] read a typed value, [Set] adds a value for this request only
// (a copy-on-write layer, so nothing leaks into other requests or back into
// the lifespan). [Metrics] records request metrics labelled by the route
// template (c.FullPath()), never the raw path.
package ginberth
