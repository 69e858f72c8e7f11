package lifespan

import (
	"context"
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

// TimeoutError reports a start or stop that had not returned by its
// deadline. The hook's function may still be running. When it returns, a
// HookStopped event with Late set reports what followed, if anything did:
// a late stop's error, or, for a start that succeeded after all, the call
// of the stop it returned. A late stop that succeeds, or a late start that
// fails, adds no event: the timeout already counted the failure.
type TimeoutError struct {
	Op      string // "start" or "stop"
	Timeout time.Duration
}

func (t *TimeoutError) Error() string {
	if t.Timeout <= 0 {
		return fmt.Sprintf("%s, called after the deadline, did not return", t.Op)
	}
	return fmt.Sprintf("%s did not return within %v", t.Op, t.Timeout)
}

// Is makes a TimeoutError match context.DeadlineExceeded.
func (t *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
