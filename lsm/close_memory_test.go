package lsm

import (
	"fmt"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// TestClosedDBHoldsNoBlocks checks that Close empties the block cache, as
// it drops the memtables ("a closed DB holds no memory"). It did not: every
// cached block stayed referenced by the closed DB for as long as the *DB
// was reachable, up to BlockCacheSize (64 MiB by default) per closed store
// (found by a review of the caches, 2026-11-26).
func TestClosedDBHoldsNoBlocks(t *testing.T) {
	d, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1000)
	for i := range 2000 {
		must(t, d.Set([]byte(fmt.Sprintf("key%06d", i)), val))
	}
	must(t, d.Flush())
	for i := range 2000 {
		if _, err := d.Get([]byte(fmt.Sprintf("key%06d", i))); err != nil {
			t.Fatal(err)
		}
	}
	must(t, d.Close())
	if m := d.cache.Metrics(); m.Size > 0 {
		t.Fatalf("closed DB still holds %d bytes in %d cached blocks", m.Size, m.Count)
	}
}
