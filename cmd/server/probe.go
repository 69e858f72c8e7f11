package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/httpurl"
	"github.com/berth-dev/berth/internal/redact"
)

// probeTimeout bounds a probe's request, its answer's body included: a
// target that accepts the connection and never answers fails the probe
// (exit 1) rather than hanging a helm test hook.
var probeTimeout = 5 * time.Second

// runProbe is `server probe URL`: exit 0 on a 2xx, 1 otherwise, for helm
// test hooks and exec probes in an image without a shell.
func runProbe(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: server probe URL   (exits 0 when GET URL answers 2xx)")
		return 2
	}
	// A URL that cannot be asked is the caller's to fix (exit 2), not a
	// target that is down (exit 1).
	where := redact.URL(args[0]) // as printed: any password hidden
	if !httpurl.Valid(args[0]) {
		fmt.Fprintf(stderr, "probe: %q is not an http:// or https:// URL with a host; want one such as http://127.0.0.1:9090/livez\n", where)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", redact.Error(err, args[0]))
		return 1
	}
	defer resp.Body.Close()
	// The whole body (up to maxProbeBody), so `server probe .../metrics`
	// can be read through kubectl exec in an image with no shell. A body
	// the timeout (or the connection) cut short fails the probe: what it
	// printed is not the answer.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody+1))
	cut := len(body) > maxProbeBody
	if cut {
		body = body[:maxProbeBody]
	}
	fmt.Fprintf(stdout, "%s %s\n%s", where, resp.Status, body)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "probe: the answer's body was cut short after %d bytes: %v\n", len(body), redact.Error(err, args[0]))
		return 1
	case cut:
		fmt.Fprintf(stderr, "probe: the answer's body is longer than %d MiB; the rest is not printed\n", maxProbeBody>>20)
	}
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// maxProbeBody is how much of an answer's body a probe prints.
const maxProbeBody = 8 << 20
