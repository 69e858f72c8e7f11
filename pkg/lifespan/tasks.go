package lifespan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// tasks is the set of background tasks an app's hooks started.
type tasks struct {
	initOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	closed  bool          // stop began: no task may start
	stopped chan struct{} // closed when the first stop returns
	running map[string]int
	errs    []error
}

// init makes the tasks' context, once: from parent's values (the ctx
// given to Start, without its cancellation) when Start is the first to
// call it, as it is unless Stop comes first (no task starts then). Only
// Start and the task's own start and stop call it, never a reader such as
// names, which would fix the context before Start could give its values.
func (t *tasks) init(parent context.Context) {
	t.initOnce.Do(func() {
		t.ctx, t.cancel = context.WithCancel(parent)
	})
}

func (t *tasks) start(a *App, name string, fn func(context.Context) error) {
	t.init(context.Background())
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		err := fmt.Errorf("lifespan %q: task %q: started after shutdown began", a.Name, name)
		t.recordErr(err)
		a.emit(Event{Kind: TaskExited, Hook: name, Err: err})
		return
	}
	if t.running == nil {
		t.running = map[string]int{}
	}
	t.running[name]++
	t.wg.Add(1)
	t.mu.Unlock()
	a.emit(Event{Kind: TaskStarted, Hook: name})
	go func() {
		defer t.wg.Done()
		begin := time.Now()
		err := errGoexit // unless runTask returns
		defer func() { t.exited(a, name, begin, err) }()
		err = runTask(t.ctx, fn)
	}()
}

// exited records the end of task name, begun at begin, with err.
func (t *tasks) exited(a *App, name string, begin time.Time, err error) {
	t.mu.Lock()
	if t.running[name]--; t.running[name] == 0 {
		delete(t.running, name)
	}
	t.mu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled) && t.ctx.Err() != nil:
		err = nil // the stop cancelled it: a clean exit
	default:
		err = fmt.Errorf("lifespan %q: task %q: %w", a.Name, name, err)
		t.recordErr(err)
	}
	a.emit(Event{Kind: TaskExited, Hook: name, Duration: time.Since(begin), Err: err})
}

func runTask(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return fn(ctx)
}

func (t *tasks) recordErr(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, err)
}

// names returns the running tasks' names, sorted. It may run at any time,
// before Start too.
func (t *tasks) names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.running))
	for n := range t.running {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// stop cancels every task and waits for them with await, which is given a
// channel closed once they have all returned and reports whether that
// came in time. The first call returns the errors tasks ended with and, if
// some are still running, one naming them; a later or concurrent call
// waits for the first and returns nil, so no error is reported twice.
func (t *tasks) stop(app string, await func(done <-chan struct{}) bool) error {
	t.init(context.Background())
	t.mu.Lock()
	if t.closed {
		stopped := t.stopped
		t.mu.Unlock()
		<-stopped
		return nil
	}
	t.closed = true
	t.stopped = make(chan struct{})
	defer close(t.stopped)
	t.mu.Unlock()
	t.cancel()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	begin := time.Now()
	var late error
	if !await(done) {
		late = fmt.Errorf("lifespan %q: background tasks still running %v after cancellation: %v", app, time.Since(begin).Round(time.Millisecond), t.names())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(append(append([]error(nil), t.errs...), late)...)
}
