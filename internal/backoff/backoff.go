// Package backoff is the retry loop of berth's startup waits: the database
// wait (internal/store) and the sidecar wait (pkg/sidecar). Pauses double
// from a first backoff to a cap, and one attempt is aimed at a chosen
// moment (the end of the wait, or the last moment an attempt can still run
// its whole timeout), so that what is ready by then is found however the
// doubling falls.
package backoff

import (
	"context"
	"time"
)

// Schedule says when attempts come.
type Schedule struct {
	// Initial is the first pause; each later one doubles, up to Max.
	Initial, Max time.Duration
	// Aim, when not zero, is a moment an attempt starts at: a pause that
	// would pass it ends there instead. Once Aim has passed, pauses run
	// their full length again.
	Aim time.Time
	// Final, with Aim, makes Aim the end of the wait: no attempt starts
	// after it, and one that ends after it is the last.
	Final bool
	// Retrying, when not nil, is told of each failed attempt that a pause
	// follows (for a log line: "waiting for ..."), before the pause.
	Retrying func(attempt int, err error)
	// GiveUp, when not nil, is asked about each failure: true makes that
	// attempt the last, for an error no wait can mend (a wrong password).
	GiveUp func(err error) bool
}

// Retry calls try until it returns nil, until ctx ends, until GiveUp says
// so of a failure, or, with Final, until an attempt that ends at or after
// Aim fails. Its first attempt
// comes at once, whatever the state of ctx. It returns the number of
// attempts and, when none succeeded, the last failure: a failure that
// came after ctx ended (an attempt cut short by the wait's own end) does
// not replace an earlier one, which says more about why the thing waited
// for was not ready. The caller tells a wait that ran out from one whose
// ctx ended by asking ctx.Err.
func (s Schedule) Retry(ctx context.Context, try func() error) (attempts int, err error) {
	pause := s.Initial
	var last error
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return attempt, nil
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		if s.GiveUp != nil && s.GiveUp(err) {
			return attempt, err
		}
		now, aimed := time.Now(), !s.Aim.IsZero()
		if aimed && s.Final && !now.Before(s.Aim) {
			return attempt, last
		}
		wait := pause
		if aimed && now.Before(s.Aim) && now.Add(wait).After(s.Aim) {
			wait = s.Aim.Sub(now)
		}
		if s.Retrying != nil {
			s.Retrying(attempt, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return attempt, last
		case <-timer.C:
		}
		if pause <= s.Max/2 {
			pause *= 2
		} else {
			pause = s.Max // doubled past it, or past what a Duration holds
		}
	}
}
