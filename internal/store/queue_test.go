package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// SQLite's writes queue in the process for one slot: a write waits for the
// one before it instead of racing it for SQLite's lock with a busy wait
// (which starves the writer that waited longest until its timeout turns a
// healthy write into a 503). One that waits past its timeout says so and
// writes nothing; reads do not queue.
func TestSQLiteWritesQueue(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), Logger: log, Limits: Limits{Timeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx, log); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "kept", []byte(`1`)); err != nil {
		t.Fatal(err)
	}

	if s.writer == nil {
		t.Fatal("SQLite's writes have no queue")
	}
	s.writer <- struct{}{} // a write in progress
	for op, write := range map[string]func() error{
		"put":    func() error { _, err := s.Put(ctx, "new", []byte(`2`)); return err },
		"delete": func() error { return s.Delete(ctx, "kept") },
	} {
		if err := write(); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the writes queued before this one") {
			t.Errorf("%s behind a write in progress = %v, want it to wait its timeout for the slot, and say so", op, err)
		}
	}
	if v, err := s.Get(ctx, "kept"); err != nil || string(v) != "1" {
		t.Errorf("a read behind a write in progress = %q, %v; want it served", v, err)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the put that gave up wrote its item: Get = %v", err)
	}
	<-s.writer

	if created, err := s.Put(ctx, "new", []byte(`2`)); err != nil || !created {
		t.Errorf("put once the slot is free = %v, %v", created, err)
	}
	if err := s.Delete(ctx, "kept"); err != nil {
		t.Errorf("delete once the slot is free = %v", err)
	}
	if len(s.writer) != 0 {
		t.Error("a write kept the slot after it returned")
	}
}
