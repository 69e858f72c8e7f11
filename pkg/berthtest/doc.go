// Package berthtest is berth's lifespan-aware test helper, the Go shape of
// Starlette's `with TestClient(app)`: [Start] runs the real startup and
// serving path on loopback and hands back a client; the test's cleanup runs
// the full shutdown timeline and fails the test if the shutdown reports an
// error (a failed stop hook, a background task error, a request cut off).
package berthtest
