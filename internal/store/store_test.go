package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/store"
	"github.com/berth-dev/berth/internal/store/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("STORE_TEST_WRITER") != "" {
		writeAndHang() // the child process of TestAcknowledgedWriteSurvivesKill
		return
	}
	if dir := os.Getenv("STORE_TEST_START"); dir != "" {
		fmt.Print(start(dir)) // the child process of TestUnwritableFileNamesTheFix
		return
	}
	goleak.VerifyTestMain(m)
}

// start is what the service's db and migrate hooks do as it starts, on the
// SQLite file in dir; it returns the error, or "started".
func start(dir string) string {
	db, err := store.Open(context.Background(), store.Config{DataDir: dir, Wait: 5 * time.Second, Logger: quiet})
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	if err := db.Migrate(context.Background(), quiet); err != nil {
		return err.Error()
	}
	return "started"
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func sqliteOpener(dir string) storetest.Opener {
	return storetest.Opens(store.Config{DataDir: dir, Logger: quiet})
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener { return sqliteOpener(t.TempDir()) })
}

// A write acknowledged by Put survives kill -9 of the process right after:
// a child process puts an item, says so, and is killed before it can close
// anything; the parent then finds the item.
func TestAcknowledgedWriteSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_WRITER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "acked" {
		t.Fatalf("child said %q, %v", buf, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	db, err := sqliteOpener(dir)(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Get(t.Context(), "acked"); err != nil || string(got) != `{"v":1}` {
		t.Fatalf("after kill -9: %q, %v", got, err)
	}
}

// kill -9 cannot tell synchronous=FULL from OFF (the page cache keeps the
// write), so each connection's durability settings are read back: several
// connections held at once, as the pool would otherwise hand the same idle
// one to every query, and a setting made on one connection only (a PRAGMA
// run after opening, say) would pass.
func TestSQLiteConnectionSettings(t *testing.T) {
	db, err := sqliteOpener(t.TempDir())(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const held = 4 // below the pool's cap of 9 (one pinned), so none waits for another
	for i := range held {
		conn, err := db.SQL().Conn(t.Context())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer conn.Close()
		for _, tt := range []struct{ pragma, want string }{
			{"journal_mode", "wal"}, {"synchronous", "2"}, {"busy_timeout", "10000"}, {"foreign_keys", "1"},
		} {
			var got string
			if err := conn.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil || got != tt.want {
				t.Errorf("connection %d: PRAGMA %s = %q (%v), want %q", i, tt.pragma, got, err, tt.want)
			}
		}
	}
}

func writeAndHang() {
	dir := os.Getenv("STORE_TEST_WRITER")
	db, err := sqliteOpener(dir)(context.Background(), store.Limits{})
	if err != nil {
		panic(err)
	}
	if _, err := db.Put(context.Background(), "acked", []byte(`{"v":1}`)); err != nil {
		panic(err)
	}
	os.Stdout.WriteString("acked")
	select {} // killed here, with the database still open
}

func TestOpenWaitsThenNamesTheDatabase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(t.Context(), store.Config{DataDir: file, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "data directory (BERTH_DATA_DIR): mkdir "+file) {
		t.Fatalf("Open over a file = %v", err)
	}
	_, err = store.Open(t.Context(), store.Config{URL: "postgres://berth:s3cret@127.0.0.1:1/berth", Wait: 300e6, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "postgres 127.0.0.1:1/berth as berth did not answer within BERTH_DB_WAIT=300ms") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open of a database that is not there = %v", err)
	}
}

// A malformed URL's error shows no part of its password, even one with an
// unencoded "@", where pgx's own redaction stops.
func TestRedactURL(t *testing.T) {
	_, err := store.Open(t.Context(), store.Config{URL: "postgres://berth:s3c@ret@host:notaport/db", Logger: quiet})
	if err == nil || strings.Contains(err.Error(), "s3c") || strings.Contains(err.Error(), "ret") || !strings.Contains(err.Error(), "BERTH_DATABASE_URL: ") {
		t.Fatalf("a malformed URL's error = %v", err)
	}
}

func BenchmarkItemsSQLite(b *testing.B) {
	db, err := sqliteOpener(b.TempDir())(context.Background(), store.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchmarkItems(b, db, "?")
}

// A database with no room left refuses the write as ErrOutOfSpace, and
// stores none of it: no item, no count. SQLite's max_page_count stands in
// for a full disk (both are SQLITE_FULL).
func TestOutOfSpace(t *testing.T) {
	db, err := sqliteOpener(t.TempDir())(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SQL().SetMaxOpenConns(2) // the one Open pins and one for the work: the pragma below is the connection's
	var pages int
	if err := db.SQL().QueryRowContext(t.Context(), "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(t.Context(), fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	big := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	_, err = db.Put(t.Context(), "big", big)
	if !errors.Is(err, store.ErrOutOfSpace) || !strings.Contains(err.Error(), "store put (sqlite ") {
		t.Fatalf("Put into a full database = %v, want ErrOutOfSpace naming the database", err)
	}
	if _, err := db.Get(t.Context(), "big"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the refused Put, Get = %v, want ErrNotFound", err)
	}
	if st, err := db.Stats(t.Context()); err != nil || st.Items != 0 {
		t.Fatalf("after the refused Put, Stats = %+v, %v", st, err)
	}
}

// A data directory whose name holds a URI's special characters gets its
// file inside it: the path goes into SQLite's file: URI escaped (a "?" or
// "#" once ended the file name there, outside the directory, and dropped
// the pragmas after it).
func TestDataDirWithURICharacters(t *testing.T) {
	for _, name := range []string{"a#b", "a?b", "a%20b", "a b", "ünï"} {
		dir := filepath.Join(t.TempDir(), name)
		db, err := sqliteOpener(dir)(t.Context(), store.Limits{})
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var mode string
		err = db.SQL().QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode)
		db.Close()
		if _, statErr := os.Stat(filepath.Join(dir, "berth.db")); statErr != nil || err != nil || mode != "wal" {
			entries, _ := os.ReadDir(filepath.Dir(dir))
			t.Errorf("%q: the file %v, journal_mode %q (%v); the parent holds %v", name, statErr, mode, err, entries)
		}
	}
}

// A data directory whose berth.db cannot be opened (here a directory in
// its place; a file of another uid likewise) fails at once, naming the
// fix, instead of being waited on for BERTH_DB_WAIT.
func TestUnopenableFileIsNotWaitedOn(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "berth.db"), 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(t.Context(), store.Config{DataDir: dir, Wait: 30 * time.Second, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "not retried, as waiting will not mend it") || !strings.Contains(err.Error(), "a directory and a file it may write") {
		t.Fatalf("Open with a directory for berth.db = %v", err)
	}
}

// A berth.db, or a log or index beside it, that the service's uid may read
// but not write (a backup restored as root, say, into a directory fsGroup
// makes writable) fails the start at once, naming the fix. SQLite opened
// such a file read-only without a word and failed at the migration with a
// bare "readonly database", leaving an index as unwritable as the file,
// which failed the next start too, after the file was mended. The start
// runs as uid 65534 (from a copy of this test binary) when the test runs
// as root, which may write any file.
func TestUnwritableFileNamesTheFix(t *testing.T) {
	for _, name := range []string{"berth.db", "berth.db-wal", "berth.db-shm"} {
		t.Run(name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "berth-unwritable-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o777); err != nil { // the directory stays writable, as fsGroup makes it
				t.Fatal(err)
			}
			if got := start(dir); got != "started" {
				t.Fatal(got)
			}
			// Every file writable by all but the one under test (SQLite
			// removed its log and index at close: that one comes back empty).
			for _, f := range []string{"berth.db", "berth.db-wal", "berth.db-shm", "berth.db.lock"} {
				if f == name {
					if f, err := os.OpenFile(filepath.Join(dir, f), os.O_CREATE|os.O_RDONLY, 0o444); err == nil {
						f.Close()
					}
				}
				mode := os.FileMode(0o666)
				if f == name {
					mode = 0o444
				}
				if err := os.Chmod(filepath.Join(dir, f), mode); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			var got string
			if os.Getuid() == 0 {
				got = startAsNobody(t, dir)
			} else {
				got = start(dir)
			}
			if want := fmt.Sprintf("%s: permission denied: the service runs as uid %d: make BERTH_DATA_DIR, and berth.db in it, a directory and a file it may write (in a pod, set fsGroup)",
				filepath.Join(dir, name), map[bool]int{true: 65534, false: os.Getuid()}[os.Getuid() == 0]); !strings.Contains(got, want) {
				t.Fatalf("a start over a %s the service may not write = %q; want it to say %q", name, got, want)
			}
		})
	}
}

// startAsNobody runs start(dir) as uid 65534, from a copy of this test
// binary in dir, and returns what it printed.
func startAsNobody(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "store.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(bin)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_START="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the start as uid 65534: %v\n%s", err, out)
	}
	return string(out)
}

// A database file deleted, or replaced by another, while the store has it
// open: SQLite goes on writing the file it has open, which the next start
// will not find, so every write since (and every item before) would be
// lost then. Writes are refused, naming the file and what happened to it;
// reads still answer from the open file.
func TestWritesAreRefusedOnceTheFileIsGone(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		lose       func(t *testing.T, file string)
	}{
		{"deleted", "was deleted or renamed", func(t *testing.T, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", "was replaced by another file", func(t *testing.T, file string) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil { // a backup copied back: a new file
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, db := sqliteWithAnItem(t)
			if err := db.CheckFile(t.Context()); err != nil {
				t.Fatalf("CheckFile on the file opened = %v", err)
			}
			file := filepath.Join(dir, "berth.db")
			tt.lose(t, file)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), file+" "+tt.want) {
					t.Errorf("%s after the file %s = %v, want ErrRefused naming %s", what, tt.want, err, file)
				}
			}
			check("CheckFile", db.CheckFile(t.Context()))
			_, err := db.Put(t.Context(), "b", []byte(`2`))
			check("Put", err)
			check("Delete", db.Delete(t.Context(), "a"))
			if v, err := db.Get(t.Context(), "a"); err != nil || string(v) != "1" {
				t.Errorf("Get from the open file = %q, %v", v, err)
			}
		})
	}
}

// The recovery the refusal names works when the whole data directory was
// emptied, the write-ahead log with the file: the copy of the one open
// file the error points at holds every acknowledged write, as CheckFile
// folded the log into it when it found the file gone.
func TestTheOpenFileHoldsEveryWriteOnceRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/fd, which Linux has")
	}
	dir, file, db := twentyItems(t)
	emptyDataDir(t, file)
	// Readers at once, more than the pool has open: a connection opened
	// now fails, where SQLite made a new, empty file at the path (which
	// the next start would have found), and handed back newest first,
	// the pool's connections to the deleted file stay open.
	var conns []*sql.Conn
	for range 3 {
		if c, err := db.SQL().Conn(t.Context()); err == nil {
			conns = append(conns, c)
		}
	}
	for _, c := range slices.Backward(conns) {
		c.Close()
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a connection opened after the deletion made %s anew (%v)", file, err)
	}
	// Even a pool that closes every connection it holds idle (as it does
	// one that failed) leaves the one Open pinned, and the checkpoint on it.
	db.SQL().SetMaxIdleConns(0)
	if _, err := db.Put(t.Context(), "late", []byte(`1`)); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("Put after the directory was emptied = %v, want ErrRefused", err)
	}
	// What the error says to do: copy the open file back.
	again := copiedBack(t, db, dir, file)
	for i := range 20 {
		if v, err := again.Get(t.Context(), fmt.Sprint("k", i)); err != nil || string(v) != fmt.Sprint(i) {
			t.Errorf("k%d from the copied file = %q, %v", i, v, err)
		}
	}
}

// A data directory given relative to the working directory (the default,
// data) names the same file after the directory changes: CheckFile looked
// at the relative path again, and refused every write as if the file were
// gone.
func TestCheckFileFollowsTheFileNotTheWorkingDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	db, err := sqliteOpener("data")(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t.Chdir(t.TempDir())
	if _, err := db.Put(t.Context(), "a", []byte(`1`)); err != nil {
		t.Fatalf("Put after a change of working directory = %v", err)
	}
}

// Once the file is deleted, a read on a connection opened before still
// answers from the open file (TestWritesAreRefusedOnceTheFileIsGone); one
// that needs a new connection, as the connections opened are busy with
// other requests, cannot open the file. That is the loss CheckFile names,
// refused (a 500 without Retry-After), not a failure to retry for good.
func TestReadsOnANewConnectionOnceTheFileIsDeleted(t *testing.T) {
	dir, db := sqliteWithAnItem(t)
	// Requests in flight hold the connections the pool has opened.
	for range 3 {
		conn, err := db.SQL().Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var n int
		if err := conn.QueryRowContext(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "berth.db")); err != nil {
		t.Fatal(err)
	}
	const want = "was deleted or renamed while the service had it open"
	if v, err := db.Get(t.Context(), "a"); !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Errorf("Get on a new connection = %q, %v; want ErrRefused, saying the file %s", v, err, want)
	}
	if _, err := db.Stats(t.Context()); !errors.Is(err, store.ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Errorf("Stats on a new connection = %v; want ErrRefused, saying the file %s", err, want)
	}
}

// A negative bound, which no key, value or count could meet, is refused at
// Open, naming each one and what would be valid, before any file or
// connection is opened.
func TestOpenRefusesNegativeLimits(t *testing.T) {
	for _, tt := range []struct {
		limits store.Limits
		want   string
	}{
		{store.Limits{MaxItems: -1}, "store: Limits.MaxItems is -1; want 0 (no bound) or more"},
		{store.Limits{MaxKeyBytes: -8}, "store: Limits.MaxKeyBytes is -8; want 0 (DefaultMaxKeyBytes) or more"},
		{store.Limits{MaxValueBytes: -1, Timeout: -time.Second}, "store: Limits.MaxValueBytes is -1; want 0 (no bound) or more; Limits.Timeout is -1s; want 0 (none) or more"},
	} {
		dir := t.TempDir()
		db, err := store.Open(t.Context(), store.Config{DataDir: dir, Limits: tt.limits})
		if err == nil {
			db.Close()
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("Open with %+v = %v, want %q", tt.limits, err, tt.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("Open with %+v left %d files behind", tt.limits, len(entries))
		}
	}
}

// sqliteWithAnItem opens a SQLite store in a directory of the test's own,
// closed when the test ends, holding "a" = 1; it returns the directory too.
func sqliteWithAnItem(t *testing.T) (string, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqliteOpener(dir)(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Put(t.Context(), "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	return dir, db
}

// When the first look that finds the file gone cannot finish folding the
// write-ahead log into the open file (it must wait for a read in flight on
// an older snapshot, and the look's context ends first: a write's Timeout,
// a probe's), a later look folds it: the copy of the one open file that
// the refusal points at still holds every acknowledged write.
func TestTheOpenFileHoldsEveryWriteWhenTheFirstCheckpointIsCutShort(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/fd, which Linux has")
	}
	dir, file, db := twentyItems(t)
	// A request in flight reads from a snapshot older than the last write
	// (here held open), so the checkpoint must wait for it; the first look
	// that finds the file gone is a write whose Timeout ends first.
	reader, err := db.SQL().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var n int
	if _, err := reader.ExecContext(t.Context(), "BEGIN DEFERRED"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRowContext(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(t.Context(), "k20", []byte(`20`)); err != nil {
		t.Fatal(err)
	}
	emptyDataDir(t, file)
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err = db.CheckFile(short)
	cancel()
	if !errors.Is(err, store.ErrRefused) {
		t.Fatalf("CheckFile = %v, want ErrRefused", err)
	}
	if _, err := reader.ExecContext(t.Context(), "ROLLBACK"); err != nil { // the request ends
		t.Fatal(err)
	}
	// Later looks, with time to spare: the health check, the next write.
	if err := db.CheckFile(t.Context()); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("CheckFile = %v, want ErrRefused", err)
	}
	if _, err := db.Put(t.Context(), "late", []byte(`1`)); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("Put = %v, want ErrRefused", err)
	}
	// What the error says to do: copy the open file back.
	again := copiedBack(t, db, dir, file)
	missing := 0
	for i := range 21 {
		if v, err := again.Get(t.Context(), fmt.Sprint("k", i)); err != nil || string(v) != fmt.Sprint(i) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of 21 acknowledged writes missing from the copied file: the first look's checkpoint was cut short, and no later look retried it", missing)
	}
}

// twentyItems opens a SQLite store in a directory of its own and puts
// k0..k19 (values 0..19); it returns the directory, the database file and
// the store, closed when the test ends.
func twentyItems(t *testing.T) (dir, file string, db *store.DB) {
	t.Helper()
	dir = t.TempDir()
	db, err := sqliteOpener(dir)(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := range 20 {
		if _, err := db.Put(t.Context(), fmt.Sprint("k", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "berth.db"), db
}

// emptyDataDir deletes the database file, its write-ahead log and its
// shared-memory file, as an operator emptying the data directory would.
func emptyDataDir(t *testing.T, file string) {
	t.Helper()
	for _, f := range []string{file, file + "-wal", file + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

// copiedBack does what a refusal for a deleted file says: it copies the
// file db still has open back to file from /proc/self/fd, closes db, and
// opens the store in dir again.
func copiedBack(t *testing.T, db *store.DB, dir, file string) *store.DB {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	copied := false
	for _, fd := range fds {
		link := filepath.Join("/proc/self/fd", fd.Name())
		if target, err := os.Readlink(link); err == nil && target == file+" (deleted)" && !copied {
			b, err := os.ReadFile(link)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			copied = true
		}
	}
	if !copied {
		t.Fatalf("no open file links to %s (deleted)", file)
	}
	db.Close()
	again, err := sqliteOpener(dir)(t.Context(), store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	return again
}
