package lifespan

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// PanicError is the error a hook's or task's panic becomes. Stack is the
// panicking goroutine's stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

func recovered(v any) error {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// errGoexit is the error of a hook's start or stop, or a task, that ended
// its goroutine with runtime.Goexit rather than returning: t.FailNow and
// t.SkipNow do, from a hook or task in a test. No value came back, so it
// is a failure, not a success with nothing to stop.
var errGoexit = errors.New("exited by runtime.Goexit without returning (t.FailNow or t.SkipNow, in a test)")

// TimeoutError reports a start or stop that had not returned by its
// deadline. The hook's function may still be running. When it returns,
// what followed is reported, if anything did: a late stop's error, in a
// HookStopped with Late set; for a start that succeeded after all, the
// call of the stop it returned, as a stop of its own (HookStopping, then
// HookStopped). A late stop that succeeds, or a late start that fails,
// adds no event: the timeout already counted the failure.
//
// A start is waited for up to 100ms past its timeout, for the error it
// returns as its context ends (a dependency's "connection refused", say):
// Err is that error, when it came then, and the message gives it after the
// timeout.
type TimeoutError struct {
	Op      string // "start" or "stop"
	Timeout time.Duration
	Err     error // the start's own error, returned just past its timeout; nil if none
}

func (t *TimeoutError) Error() string {
	msg := fmt.Sprintf("%s did not return within %v", t.Op, t.Timeout)
	if t.Timeout <= 0 {
		msg = fmt.Sprintf("%s, called after the deadline, did not return", t.Op)
	}
	if t.Err != nil {
		msg += ": " + t.Err.Error()
	}
	return msg
}

// Unwrap returns the start's own error, if it returned one.
func (t *TimeoutError) Unwrap() error { return t.Err }

// Is makes a TimeoutError match context.DeadlineExceeded.
func (t *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
