package serve

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/pkg/lifespan"
	"github.com/berth-dev/berth/pkg/probes"
)

// registerChecks adds the server's probe checks: "ping" (liveness, always
// passing: a wedged process cannot answer it), one readiness check per hook
// ("hook/APP/HOOK", failing until that hook has started), "shutdown"
// (readiness, failing from ReadinessFailing on) and "lifespan" (startup and
// readiness, passing from StartupComplete on).
func (s *Server) registerChecks() {
	reg := s.cfg.Probes
	reg.Add(probes.Liveness, probes.Check{Name: "ping", Instant: true, Run: func(context.Context) error { return nil }})
	for _, app := range s.cfg.Apps {
		hooks := app.Hooks()
		s.hooks = append(s.hooks, hooks)
		for _, hook := range hooks {
			reg.Add(probes.Readiness, probes.Check{Name: "hook/" + app.Name + "/" + hook, Instant: true, Run: func(context.Context) error {
				if st := app.HookStatus(hook); st != lifespan.HookUp {
					return fmt.Errorf("hook %s", st)
				}
				return nil
			}})
		}
	}
	reg.Add(probes.Readiness, probes.Check{Name: "shutdown", Instant: true, Run: func(context.Context) error {
		if s.sig.ReadinessFailing.Signalled() {
			return errors.New("shutting down")
		}
		return nil
	}})
	reg.Add(probes.Startup|probes.Readiness, probes.Check{Name: "lifespan", Instant: true, Run: func(context.Context) error {
		if s.sig.StartupComplete.Signalled() {
			return nil
		}
		for _, app := range s.cfg.Apps {
			if p := app.Phase(); p != lifespan.PhaseReady {
				return fmt.Errorf("app %q is %s", app.Name, p)
			}
		}
		return errors.New("startup not complete")
	}})
}
