//go:build unix

package serve

import (
	"os"
	"syscall"
)

// uncatchable are the signals no process can catch, which ShutdownOn
// refuses, by the names its message gives them.
var uncatchable = map[os.Signal]string{os.Kill: "SIGKILL", syscall.SIGSTOP: "SIGSTOP"}
