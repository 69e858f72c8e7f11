package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/berth-dev/berth/pkg/lifespan"
)

// shutdown waits for ShutdownInitiated and then follows the timeline, one
// step per signal (see Signals), and returns the shutdown's joined errors.
func (s *Server) shutdown() error {
	<-s.sig.ShutdownInitiated.Done()
	s.failReadiness()
	s.waitForEndpoints()
	s.drainInFlight()
	s.stopTasks()
	s.stopChecks()
	s.stopHooks()
	rep := s.complete()
	// The push in complete needs the network, which a classic sidecar
	// (a mesh proxy) provides: the sidecars quit after it.
	quitErr := s.quitSidecars(s.cfg.QuitSidecars)
	s.stopServers()
	return errors.Join(rep.Err, quitErr)
}

// failReadiness is T0: /readyz fails and responses ask clients to reconnect
// elsewhere, while requests are still served.
func (s *Server) failReadiness() {
	mode := "fixed"
	if s.cfg.DrainQuiet > 0 {
		mode = "quiet"
	}
	s.mark(s.sig.ReadinessFailing, "drain_mode", mode,
		"drain_delay_seconds", s.cfg.delay().Seconds(), "drain_quiet_seconds", s.cfg.DrainQuiet.Seconds())
}

// waitForEndpoints is T0..T1: keep serving while the pod leaves the
// Service's endpoints. A fixed delay waits it out; with a quiet period the
// wait ends once no request has arrived for that long (counting from T0),
// and never later than the delay.
//
// With the delay in a preStop sleep instead, the endpoints were updated
// during the sleep, but keep-alive connections opened before it still
// carry requests (the client reuses them; conntrack routes them here). The
// server then answers with "Connection: close" until they go quiet
// (preStopQuiet without a request, at most preStopCloseWindow), so that it
// does not close them under a client that is sending on them.
func (s *Server) waitForEndpoints() {
	delay, quiet := s.cfg.delay(), s.cfg.DrainQuiet
	if delay <= 0 && s.cfg.PreStopDelay > 0 {
		delay, quiet = preStopCloseWindow, preStopQuiet
	}
	if delay <= 0 {
		return
	}
	t0 := s.sig.ShutdownInitiated.At()
	deadline := t0.Add(delay)
	if quiet <= 0 {
		<-s.after(time.Until(deadline))
		return
	}
	for {
		last := s.lastArrivalSince(t0)
		quietAt := last.Add(quiet)
		if !quietAt.Before(deadline) {
			<-s.after(time.Until(deadline))
			return
		}
		<-s.after(time.Until(quietAt))
		if !s.lastArrivalSince(t0).After(last) {
			return // nothing arrived while we waited: traffic has moved on
		}
	}
}

// lastArrivalSince is when the last request arrived after t0, or t0.
func (s *Server) lastArrivalSince(t0 time.Time) time.Time {
	if last := s.gate.lastArrivalTime(); last.After(t0) {
		return last
	}
	return t0
}

// drainInFlight is T1..T2: stop accepting and wait for the requests in
// flight, bounded by the drain timeout; the rest are cut off.
//
// http.Server.Shutdown also waits, for up to 5s from its accept, on a
// connection that has sent nothing yet (a client may have opened it ahead
// of a request). When the drain timeout ends that wait with no request
// running, nothing is cut off: the drain is clean, and such connections
// are closed.
//
// Shutdown does not track a connection a handler took over (Hijack: a
// WebSocket, say), and can return while that handler still runs; the gate
// still counts it, so the drain waits on the gate for the rest of the
// timeout, and a handler still running then counts as cut off (the server
// cannot close its connection: it ends with the process).
func (s *Server) drainInFlight() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	err := s.shutdownAPI(ctx)
	s.drainStarted() // normally done already, by the server's shutdown callback
	if err == nil && s.gate.awaitIdle(ctx) > 0 {
		err = context.DeadlineExceeded
	}
	if err != nil {
		s.cutOff = s.gate.inFlight.Load()
		_ = s.apiSrv.Close()
		if s.cutOff > 0 {
			s.errs = append(s.errs, fmt.Errorf("drain: %d requests still running after the %v drain timeout were cut off: %w", s.cutOff, s.cfg.DrainTimeout, err))
		}
	}
	s.mark(s.sig.InFlightDrained, "cut_off", s.cutOff)
}

// shutdownAPI is the API server's graceful Shutdown, told when the last
// request in flight returns. Shutdown looks for its connections to go idle
// at intervals that double up to half a second, so on its own it saw the
// end of a long request up to 500ms late, and the pod's exit waited for
// it. Once the gate is empty, a second Shutdown (which only closes what is
// idle, as the first does) looks afresh, from a millisecond on.
func (s *Server) shutdownAPI(ctx context.Context) error {
	first := make(chan error, 1)
	go func() { first <- s.apiSrv.Shutdown(ctx) }()
	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	emptied := make(chan struct{})
	go func() {
		if s.gate.awaitIdle(waitCtx) == 0 {
			close(emptied)
		}
	}()
	select {
	case err := <-first:
		return err
	case <-emptied:
		// The first Shutdown returns at its next look, or when the
		// caller cancels ctx, whichever comes first.
		return s.apiSrv.Shutdown(ctx)
	}
}

// drainStarted signals DrainStarted once the API listener is closed, noting
// the requests in flight then.
func (s *Server) drainStarted() {
	s.drainOnce.Do(func() {
		n := s.gate.inFlight.Load()
		s.inFlightAtDrain.Store(n)
		s.mark(s.sig.DrainStarted, "in_flight", n)
	})
}

// stopTasks cancels the apps' background tasks and waits for them, before
// any stop hook runs, so they end while what they use is still open. It
// shares the stop timeout with stopHooks. When the drain cut requests off,
// it first gives them up to a tenth of the stop timeout to return (their
// contexts are cancelled), so that none still runs when the hooks close
// what it uses.
func (s *Server) stopTasks() {
	ctx, cancel := s.stopContext()
	defer cancel()
	if s.cutOff > 0 {
		wait, stopWaiting := context.WithTimeout(ctx, s.cfg.StopTimeout/10)
		n := s.gate.awaitIdle(wait)
		stopWaiting()
		if n > 0 {
			s.cfg.Logger.Warn("requests cut off at the drain timeout are still running; stopping the tasks and hooks anyway",
				"still_running", n, slog.Float64("waited_seconds", (s.cfg.StopTimeout/10).Seconds()))
		}
	}
	if err := s.cfg.Apps.StopTasks(ctx); err != nil {
		s.errs = append(s.errs, err)
	}
	s.mark(s.sig.TasksStopped)
}

// stopChecks ends the background checks before the hooks release what
// they check (a database's pool, say), so that none runs on into the
// teardown. It waits for their calls in flight for a tenth of the stop
// timeout at most, and no longer than the stop budget leaves (but at least
// checksFloor, time enough for checks that honour their context to
// return): a check that ignores its context (its Timeout may be long)
// does not eat the hooks' time.
func (s *Server) stopChecks() {
	wait := s.cfg.StopTimeout / 10
	ctx, cancel := s.stopContext()
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(deadline), checksFloor))
	}
	cancel()
	s.endChecksWithin(wait, "the hooks stop")
}

// checksFloor is the least time stopChecks gives the checks' calls in
// flight, even with the stop budget spent.
const checksFloor = 50 * time.Millisecond

// endChecksWithin stops the background checks, once, and waits for their
// calls in flight no longer than wait; when they outlast it, it logs that
// they were still running as what follows (next) began.
func (s *Server) endChecksWithin(wait time.Duration, next string) {
	if !s.checksStopped.CompareAndSwap(false, true) {
		return // stopped already (and waited for, as long as that allowed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	begin := time.Now()
	if bounded(ctx, func(context.Context) error { s.cfg.Probes.Stop(); return nil }) != nil {
		s.cfg.Logger.Warn("background checks still running as "+next+": a check ignores its context, or the stop timeout was spent",
			slog.Float64("waited_seconds", time.Since(begin).Seconds()))
	}
}

// stopHooks is T2..T3: every stop hook, in reverse order of start.
func (s *Server) stopHooks() {
	ctx, cancel := s.stopContext()
	defer cancel()
	if err := s.cfg.Apps.Stop(ctx); err != nil {
		s.errs = append(s.errs, err)
	}
	s.mark(s.sig.HooksStopped)
}

// stopContext ends StopTimeout after InFlightDrained: tasks and hooks share
// that one budget.
func (s *Server) stopContext() (context.Context, context.CancelFunc) {
	return context.WithDeadline(s.values, s.sig.InFlightDrained.At().Add(s.cfg.StopTimeout))
}

// quitSidecars runs quit (Config.QuitSidecars, or after a failed startup
// Config.QuitSidecarsAfterFailedStartup), if set, to tell classic sidecars
// to quit, now that the app needs no network: its hooks have stopped and
// OnShutdown has sent its report. It logs the quit and returns its error,
// which ends a shutdown unclean. Its own log line says only that the
// quit returned: sidecar.Quit's lines say what became of each sidecar
// (told to quit, or already gone).
func (s *Server) quitSidecars(quit func(context.Context) error) error {
	if quit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.values, s.cfg.QuitTimeout)
	defer cancel()
	begin := time.Now()
	err := bounded(ctx, quit)
	took := slog.Float64("took_seconds", time.Since(begin).Seconds())
	if err != nil {
		err = fmt.Errorf("quit sidecars: %w", err)
		s.cfg.Logger.Error("sidecars quit failed", "error", err.Error(), took)
		return err
	}
	s.cfg.Logger.Info("sidecars quit done", took)
	return nil
}

// errAbandoned is bounded's error for a function that outlived its context.
var errAbandoned = errors.New("abandoned: it did not return within its timeout")

// errGoexit is bounded's error for a function that ended its goroutine
// with runtime.Goexit (t.FailNow, in a test) instead of returning: it did
// not finish, as lifespan reads a hook's Goexit.
var errGoexit = errors.New("exited by runtime.Goexit without returning (t.FailNow or t.SkipNow, in a test)")

// bounded runs f(ctx) and returns its error, waiting for it no longer than
// ctx: a function that ignores its context is abandoned (it goes on in its
// goroutine) rather than holding the shutdown past what the budget counts.
// A panic in f is its error (a *lifespan.PanicError), as a hook's is, and
// a runtime.Goexit is errGoexit: it
// must not end the process before the steps after it (the sidecars' quit,
// the admin server's close) have run.
//
// f's own context ends a sliver before the wait does (a tenth of the time
// left, at most 50ms), so that a function that gives up as its context
// ends, as a quit or a push that is still retrying does, has returned its
// own error by the time the wait ends, rather than being read as
// abandoned.
func bounded(ctx context.Context, f func(context.Context) error) error {
	fctx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(ctx, deadline.Add(-min(time.Until(deadline)/10, 50*time.Millisecond)))
		defer cancel()
	}
	done := make(chan error, 1)
	go func() {
		err := errGoexit // unless f returns
		defer func() {
			if v := recover(); v != nil {
				err = &lifespan.PanicError{Value: v, Stack: debug.Stack()}
			}
			done <- err
		}()
		err = f(fctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // it returned as its time ran out: not abandoned
			return err
		default:
			return errAbandoned
		}
	}
}

// complete makes the report, signals ShutdownComplete, gives the report to
// OnShutdown and logs it.
func (s *Server) complete() ShutdownReport {
	sig := s.sig
	// A server that failed ends the run unclean, however well the drain
	// went: the process did not stop because it was asked to.
	s.errs = s.ledByServerErrors(s.errs...)
	rep := ShutdownReport{
		Reason:               s.reason,
		ServedDuringDelay:    s.gate.duringDelay.Load(),
		InFlightAtDrainStart: s.inFlightAtDrain.Load(),
		CutOff:               s.cutOff,
		Delay:                between(sig.ShutdownInitiated, sig.DrainStarted),
		Drain:                between(sig.DrainStarted, sig.InFlightDrained),
		Tasks:                between(sig.InFlightDrained, sig.TasksStopped),
		Hooks:                between(sig.TasksStopped, sig.HooksStopped),
		Err:                  errors.Join(s.errs...),
	}
	s.report.Store(&rep) // before the signal: Report reads it once signalled
	s.mark(sig.ShutdownComplete)
	// The stored report is read by others from here on (Report, a
	// scrape): it is never written again; final is a copy, with Total.
	final, _ := s.Report()
	if final.Err != nil {
		s.cfg.Logger.Error("shutdown complete with errors", append(final.logAttrs(), "error", final.Err)...)
	} else {
		s.cfg.Logger.Info("shutdown complete", final.logAttrs()...)
	}
	s.onShutdown(final)
	return final
}

// onShutdown runs Config.OnShutdown, waiting for it no longer than its
// timeout: a slow push never delays the exit past what the budget counts.
func (s *Server) onShutdown(rep ShutdownReport) {
	if s.cfg.OnShutdown == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.values, s.cfg.OnShutdownTimeout)
	defer cancel()
	begin := time.Now()
	err := bounded(ctx, func(ctx context.Context) error { return s.cfg.OnShutdown(ctx, rep) })
	switch {
	case errors.Is(err, errAbandoned):
		s.cfg.Logger.Error("final report abandoned: it did not return within its timeout", slog.Float64("timeout_seconds", s.cfg.OnShutdownTimeout.Seconds()))
	case err != nil:
		s.cfg.Logger.Error("final report failed", "error", err.Error(), slog.Float64("took_seconds", time.Since(begin).Seconds()))
	default:
		s.cfg.Logger.Info("final report sent", slog.Float64("took_seconds", time.Since(begin).Seconds()))
	}
}
