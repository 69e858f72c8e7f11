package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/berth-dev/berth/internal/store"
)

// Any key and value is either stored and read back byte for byte, or
// refused with nothing written; nothing panics.
func FuzzPutGet(f *testing.F) {
	for _, seed := range []struct{ key, value string }{
		{"k", `{"v":1}`}, {"", `1`}, {"a\x00b", `1`}, {"\xff", `2`}, {"ünï/ℵ", `"x"`}, {"k", ""},
	} {
		f.Add(seed.key, []byte(seed.value))
	}
	db, err := sqliteOpener(f.TempDir())(context.Background(), store.Limits{MaxKeyBytes: 64, MaxValueBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ctx := context.Background()
		_ = db.Delete(ctx, key)
		_, err := db.Put(ctx, key, value)
		got, getErr := db.Get(ctx, key)
		switch {
		case err == nil && (getErr != nil || !bytes.Equal(got, value)):
			t.Fatalf("put %q accepted, read back %q, %v", key, got, getErr)
		case err != nil && getErr == nil:
			t.Fatalf("put %q refused (%v) yet something is stored: %q", key, err, got)
		}
	})
}
