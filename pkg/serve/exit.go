package serve

import "errors"

// Exit codes of a process run by serve (cmd/server uses them as they are).
const (
	ExitOK = 0
	// ExitStartup: a hook failed to start, or a signal or a failing server
	// abandoned the startup (after the rollback either way).
	ExitStartup = 1
	// ExitConfig: the configuration was refused before anything started, a
	// listener could not be opened, or Run was called a second time.
	ExitConfig = 2
	// ExitUnclean: the shutdown completed but something failed in it (a stop
	// hook, a background task, requests cut off by the drain timeout), or
	// a server failed after startup and began it.
	ExitUnclean = 3
	// ExitForced: a second signal cut the shutdown short.
	ExitForced = 4
)

// StartupError wraps the error of a startup that failed or was abandoned.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return "startup failed: " + e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

// ExitCode maps Run's error to the process exit code: nil is ExitOK, a
// *ConfigError ExitConfig, a *StartupError ExitStartup, anything else
// ExitUnclean.
func ExitCode(err error) int {
	var se *StartupError
	var ce *ConfigError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ce):
		return ExitConfig
	case errors.As(err, &se):
		return ExitStartup
	default:
		return ExitUnclean
	}
}
