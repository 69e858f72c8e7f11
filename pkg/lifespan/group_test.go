package lifespan

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGroupStartsInOrderStopsInReverse(t *testing.T) {
	j := &journal{}
	a, b, c := &App{Name: "a"}, &App{Name: "b"}, &App{Name: "c"}
	a.Append(recorded(j, "a.db", nil, nil))
	b.Append(recorded(j, "b.db", nil, nil))
	c.Append(recorded(j, "c.db", nil, nil))
	g := Group{a, b, c}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a.db", "start b.db", "start c.db", "stop c.db", "stop b.db", "stop a.db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

func TestGroupFailureStopsEarlierApps(t *testing.T) {
	j := &journal{}
	a, b, c, d := &App{Name: "a"}, &App{Name: "b"}, &App{Name: "c"}, &App{Name: "d"}
	a.Append(recorded(j, "a.db", nil, errors.New("a close")))
	b.Append(recorded(j, "b.db", nil, nil))
	c.Append(recorded(j, "c.db", nil, nil), recorded(j, "c.bad", errors.New("denied"), nil))
	d.Append(recorded(j, "d.db", nil, nil))
	err := Group{a, b, c, d}.Start(t.Context())
	for _, s := range []string{`lifespan "c": hook "c.bad": start: denied`, `lifespan "a": hook "a.db": stop: a close`} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Start = %v, want %q", err, s)
		}
	}
	// The failed app rolls itself back; the apps before it stop in reverse.
	want := []string{"start a.db", "start b.db", "start c.db", "start c.bad failed", "stop c.db", "stop b.db", "stop a.db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

// A Stop that abandons one app's start bounds the stop of the apps that
// started before it by its deadline, as Group.Stop would, and their stops
// keep the values of the context given to Group.Start.
func TestGroupRollbackAfterAnAbandonedStart(t *testing.T) {
	type key struct{}
	got := make(chan stopSeen, 1)
	entered := make(chan struct{})
	a, b := &App{Name: "a", StopTimeout: time.Minute}, &App{Name: "b"}
	a.Append(seeingStop("db", key{}, got))
	b.Append(blockedStart("cache", entered))
	started := make(chan error, 1)
	go func() { started <- Group{a, b}.Start(context.WithValue(t.Context(), key{}, "start's")) }()
	<-entered
	stopDeadline := time.Now().Add(5 * time.Second) // long before a's stop timeout (a minute) ends
	ctx, cancel := context.WithDeadline(context.Background(), stopDeadline)
	defer cancel()
	_ = b.Stop(ctx)
	if err := <-started; err == nil {
		t.Fatal("Group.Start succeeded with an abandoned start")
	}
	s := <-got
	if s.value != "start's" || s.deadline.After(stopDeadline) {
		t.Errorf("a's stop saw %v with until %v; want \"start's\", by the Stop's deadline %v", s.value, s.deadline, stopDeadline)
	}
}

// A Stop that reaches an app of the group before its turn to start came
// (Group.Stop, abandoning the group's start between two apps) ends
// Group.Start with an error that says so, and rolls back the apps that
// started: it used to read "Start called after Stop", a caller's mistake.
func TestGroupStoppedBetweenAppsSaysSo(t *testing.T) {
	j := &journal{}
	a, b := &App{Name: "a"}, &App{Name: "b"}
	a.Append(recorded(j, "a.db", nil, nil))
	b.Append(recorded(j, "b.cache", nil, nil))
	a.Observer = func(e Event) {
		if e.Kind == PhaseChanged && e.Phase == PhaseReady {
			// a has started, b not yet: Group.Stop, in reverse, reaches b
			// first.
			if err := b.Stop(context.Background()); err != nil {
				t.Errorf("b.Stop = %v", err)
			}
		}
	}
	err := Group{a, b}.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), `lifespan "b": not started: Stop reached it before its turn came`) || strings.Contains(err.Error(), "Start called after Stop") {
		t.Errorf("Start = %v; want b's error to say a Stop came before its turn", err)
	}
	if want := []string{"start a.db", "stop a.db"}; !slices.Equal(j.list(), want) {
		t.Errorf("journal = %q, want %q", j.list(), want)
	}
	// Start called on an app stopped before is still the caller's mistake.
	if err := b.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "Start called after Stop") {
		t.Errorf("b.Start after its Stop = %v", err)
	}
}

func TestGroupRefusesMistakes(t *testing.T) {
	tests := []struct {
		name  string
		group Group
		want  string
	}{
		{"two apps with one name", Group{{Name: "a"}, {Name: "a"}}, `lifespan: group: two apps named "a"`},
		{"nil app", Group{{Name: "a"}, nil}, "lifespan: group: app 1 is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.group.Start(t.Context()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want %q", err, tt.want)
			}
			if tt.group[0].Phase() != PhaseNew {
				t.Fatal("an app started although the group was refused")
			}
		})
	}
	var empty Group
	if err := empty.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := empty.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestGroupRunningNamesEachApp(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	a, b := &App{Name: "a"}, &App{Name: "b"}
	a.Append(Hook{Name: "db", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
		s.Go("refresh", func(ctx context.Context) error { <-ctx.Done(); return nil })
		return nil, nil
	}})
	b.Append(Hook{Name: "warm", Start: func(context.Context, *Scope) (StopFunc, error) {
		close(entered)
		<-release
		return nil, nil
	}})
	g := Group{a, b}
	started := make(chan error, 1)
	go func() { started <- g.Start(context.Background()) }()
	<-entered
	if got := g.Running(); !slices.Equal(got, []string{"a/task:refresh", "b/hook:warm"}) {
		t.Errorf("Running = %q", got)
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// StopTasks ends each app's tasks in the reverse of the apps' order, each
// app's before the next app's begin to end, as Stop stops the apps.
func TestGroupStopTasksInReverse(t *testing.T) {
	j := &journal{}
	var g Group
	for _, name := range []string{"a", "b", "c"} {
		app := &App{Name: name}
		app.Append(Hook{Name: "jobs", Start: func(_ context.Context, s *Scope) (StopFunc, error) {
			s.Go("job", func(ctx context.Context) error { <-ctx.Done(); j.add("%s's task ended", name); return ctx.Err() })
			return nil, nil
		}})
		g = append(g, app)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.StopTasks(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := j.list(), []string{"c's task ended", "b's task ended", "a's task ended"}; !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
}

// A Group whose app was stopped (or started) before the group's Start is
// the caller's mistake, named as such, and refused before any app starts:
// not a start abandoned by a Stop that came during it.
func TestGroupStartAfterItsStopIsTheCallersMistake(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(b *App) error
		want    string
	}{
		{"b stopped", func(b *App) error { return b.Stop(context.Background()) }, `lifespan "b": Start called after Stop`},
		{"b started", func(b *App) error { return b.Start(context.Background()) }, `lifespan "b": Start called twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			g := Group{{Name: "a"}, {Name: "b"}}
			g[0].Append(recorded(j, "a.db", nil, nil))
			g[1].Append(recorded(j, "b.cache", nil, nil))
			if err := tt.prepare(g[1]); err != nil {
				t.Fatal(err)
			}
			defer g.Stop(context.Background())
			err := g.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "abandoned") {
				t.Errorf("Group.Start = %v; want the caller's mistake named, %q", err, tt.want)
			}
			if g[0].Phase() != PhaseNew {
				t.Errorf("a is %s: an app started although the group was refused", g[0].Phase())
			}
		})
	}
}
