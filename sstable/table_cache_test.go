package sstable

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

func tableName(fileNum uint64) string { return fmt.Sprintf("%06d.sst", fileNum) }

// writeTables writes tables 1..n into dir "db" of a new MemFS; table i
// holds smallKVs(50, 'a'+i).
func writeTables(t *testing.T, n int) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	if err := fs.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := vfs.WriteFile(fs, fs.PathJoin("db", tableName(uint64(i))),
			buildTable(t, uint64(i), smallKVs(50, byte('a'+i)), WriterOptions{BlockSize: 256})); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// checkTableReader checks that r is table fileNum of writeTables.
func checkTableReader(r *Reader, fileNum uint64) error {
	want := smallKVs(50, byte('a'+fileNum))[10]
	v, _, found, err := r.Get(want.key.UserKey, want.key.Seq())
	if err != nil || !found || string(v) != string(want.val) {
		return fmt.Errorf("table %d: Get = %q %v %v", fileNum, v, found, err)
	}
	return nil
}

// TestTableCacheEviction checks LRU eviction, that an evicted Reader in use
// stays open until released, Evict, and Close.
func TestTableCacheEviction(t *testing.T) {
	fs := writeTables(t, 4)
	c := NewTableCache(fs, "db", 2, NewCache(1<<20), tableName)
	get := func(n uint64) (*Reader, func()) {
		t.Helper()
		r, release, err := c.Get(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkTableReader(r, n); err != nil {
			t.Fatal(err)
		}
		return r, release
	}
	r1, rel1 := get(1)
	r2, rel2 := get(2)
	rel2()
	r1b, rel1b := get(1) // hit; 1 becomes the most recent
	if r1b != r1 {
		t.Fatal("a cached table was opened twice")
	}
	rel1b()
	r3, rel3 := get(3) // evicts 2, unreferenced: closed
	if !r2.closed.Load() || r1.closed.Load() {
		t.Fatalf("after evicting 2: r2 closed %v, r1 closed %v", r2.closed.Load(), r1.closed.Load())
	}
	_, rel4 := get(4) // evicts 1, still in use by rel1: stays open
	if r1.closed.Load() {
		t.Fatal("a table in use was closed by eviction")
	}
	if err := checkTableReader(r1, 1); err != nil {
		t.Fatal(err)
	}
	rel1()
	if !r1.closed.Load() {
		t.Fatal("an evicted table was not closed by its last release")
	}
	c.Evict(3)
	if r3.closed.Load() {
		t.Fatal("Evict closed a table in use")
	}
	rel3()
	if !r3.closed.Load() {
		t.Fatal("an evicted table was not closed by its release")
	}
	if m := c.Metrics(); m.Open != 1 || m.Hits != 1 || m.Misses != 4 {
		t.Fatalf("metrics %+v", m)
	}
	rel4()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if c.Metrics().Open != 0 {
		t.Fatal("tables open after Close")
	}
}

// TestTableCacheOpenError checks that a failed open is reported and not
// cached.
func TestTableCacheOpenError(t *testing.T) {
	fs := writeTables(t, 1)
	c := NewTableCache(fs, "db", 4, nil, tableName)
	defer c.Close()
	if _, _, err := c.Get(2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get of a missing table: %v", err)
	}
	if err := vfs.WriteFile(fs, "db/000002.sst", []byte("not a table at all, but long enough to hold a footer of 72 bytes, see")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(2); !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("Get of a damaged table: %v", err)
	}
	if err := vfs.WriteFile(fs, "db/000002.sst", buildTable(t, 2, smallKVs(50, 'a'+2), WriterOptions{})); err != nil {
		t.Fatal(err)
	}
	r, release, err := c.Get(2)
	if err != nil {
		t.Fatalf("Get after repair: %v", err)
	}
	defer release()
	if err := checkTableReader(r, 2); err != nil {
		t.Fatal(err)
	}
}

// TestTableCacheConcurrent runs Gets, reads, evictions and releases from
// several goroutines (for -race), then checks that Close leaves every
// Reader closed.
func TestTableCacheConcurrent(t *testing.T) {
	rng := newRand(t)
	fs := writeTables(t, 8)
	c := NewTableCache(fs, "db", 3, NewCache(64<<10), tableName)
	var (
		mu      sync.Mutex
		readers = map[*Reader]bool{}
		wg      sync.WaitGroup
		errs    = make(chan error, 8)
	)
	for range 6 {
		r := newRandFrom(rng.Int63())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				n := uint64(1 + r.Intn(8))
				if r.Intn(10) == 0 {
					c.Evict(n)
					continue
				}
				rd, release, err := c.Get(n)
				if err == nil {
					mu.Lock()
					readers[rd] = true
					mu.Unlock()
					err = checkTableReader(rd, n)
					release()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.Close()
	t.Logf("%d readers opened; %+v", len(readers), c.Metrics())
	for r := range readers {
		if !r.closed.Load() {
			t.Fatalf("reader of table %d left open", r.fileNum)
		}
	}
}
