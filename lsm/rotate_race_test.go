package lsm

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestRotationKeepsInFlightCommits commits values close to half a memtable
// from many goroutines into tiny memtables, so that rotations keep
// happening while the commits of the memtable they retire are still being
// applied, then reads every acknowledged key back, before and after a
// reopen. It guards bug 13 (docs/RELIABILITY.md): a memtable whose commits
// applied between the two loads of memSlot.unused was taken for unused and
// dropped with its WAL's commits in it.
func TestRotationKeepsInFlightCommits(t *testing.T) {
	dir := t.TempDir()
	o := &Options{NoSync: true, MemTableSize: 64 << 10, L0CompactionThreshold: 2, TargetFileSize: 64 << 10, LevelBaseBytes: 256 << 10}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 150
	value := func(w, i int) []byte { return bytes.Repeat([]byte{byte(w*31 + i)}, 20<<10+(w*7+i)%5000) }
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				tx := db.Begin(nil)
				tx.Set([]byte(fmt.Sprintf("k/%d/%04d", w, i)), value(w, i))
				if err := tx.Commit(); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(db *DB, when string) {
		t.Helper()
		for w := range writers {
			for i := range perWriter {
				v, err := db.Get([]byte(fmt.Sprintf("k/%d/%04d", w, i)))
				if err != nil || !bytes.Equal(v, value(w, i)) {
					t.Fatalf("%s: key k/%d/%04d: %d bytes, %v", when, w, i, len(v), err)
				}
			}
		}
	}
	check(db, "before the reopen")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, o); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, "after the reopen")
}
