//go:build !unix

package serve

import "os"

// uncatchable are the signals no process can catch, which ShutdownOn
// refuses, by the names its message gives them (SIGSTOP is unix's alone).
var uncatchable = map[os.Signal]string{os.Kill: "SIGKILL"}
