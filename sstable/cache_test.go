package sstable

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// block returns a test block that names its key.
func block(k cacheKey, n int) []byte {
	b := make([]byte, max(n, 24))
	binary.LittleEndian.PutUint64(b, k.id)
	binary.LittleEndian.PutUint64(b[8:], k.fileNum)
	binary.LittleEndian.PutUint64(b[16:], k.offset)
	return b
}

// TestCacheLRU checks eviction order, promotion on hit and the counters,
// on a single-shard cache.
func TestCacheLRU(t *testing.T) {
	const size = 1000
	c := NewCache(4 * (size + cacheEntryOverhead))
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for a small cache", len(c.shards))
	}
	key := func(i uint64) cacheKey { return cacheKey{id: 1, fileNum: i, offset: 4096 * i} }
	for i := range uint64(4) {
		c.set(key(i), block(key(i), size))
	}
	if _, ok := c.get(key(0)); !ok { // 0 becomes the most recent
		t.Fatal("block 0 missing")
	}
	c.set(key(4), block(key(4), size)) // evicts 1, the least recent
	for i, want := range []bool{true, false, true, true, true} {
		b, ok := c.get(key(uint64(i)))
		if ok != want || (ok && !bytes.Equal(b, block(key(uint64(i)), size))) {
			t.Errorf("block %d: cached %v, want %v", i, ok, want)
		}
	}
	m := c.Metrics()
	if m.Count != 4 || m.Size != 4*(size+cacheEntryOverhead) || m.Hits != 5 || m.Misses != 1 || m.Capacity != c.capacity {
		t.Fatalf("metrics %+v", m)
	}
	c.set(key(9), make([]byte, 5*size)) // larger than the cache: not cached
	if _, ok := c.get(key(9)); ok || c.Metrics().Count != 4 {
		t.Fatal("an oversize block was cached")
	}
	c.set(key(2), block(key(2), 10)) // replacing a block recharges it
	if m := c.Metrics(); m.Count != 4 || m.Size != 3*(size+cacheEntryOverhead)+24+cacheEntryOverhead {
		t.Fatalf("after replacing: %+v", m)
	}
}

// TestCacheClear checks that Clear drops every block, leaves the blocks
// handed out intact, and that the cache works as before afterwards.
func TestCacheClear(t *testing.T) {
	c := NewCache(64 << 20)
	key := func(i uint64) cacheKey { return cacheKey{id: 1, fileNum: i, offset: 4096 * i} }
	for i := range uint64(100) {
		c.set(key(i), block(key(i), 1000))
	}
	held, _ := c.get(key(7))
	c.Clear()
	if m := c.Metrics(); m.Count != 0 || m.Size != 0 {
		t.Fatalf("after Clear: %+v", m)
	}
	if _, ok := c.get(key(7)); ok {
		t.Fatal("a block survived Clear")
	}
	if !bytes.Equal(held, block(key(7), 1000)) {
		t.Fatal("Clear changed a block handed out")
	}
	c.set(key(1), block(key(1), 1000))
	if b, ok := c.get(key(1)); !ok || !bytes.Equal(b, block(key(1), 1000)) || c.Metrics().Count != 1 {
		t.Fatal("the cache does not work after Clear")
	}
	var nilCache *Cache
	nilCache.Clear()
}

// TestCacheNil checks that a nil or empty cache caches nothing.
func TestCacheNil(t *testing.T) {
	var c *Cache
	c.set(cacheKey{}, []byte("x"))
	if _, ok := c.get(cacheKey{}); ok || c.NewID() != 0 || c.Metrics() != (CacheMetrics{}) {
		t.Fatal("nil cache holds something")
	}
	c = NewCache(0)
	c.set(cacheKey{}, []byte("x"))
	if _, ok := c.get(cacheKey{}); ok || c.Metrics().Misses != 1 {
		t.Fatal("empty cache holds something")
	}
	if a, b := c.NewID(), c.NewID(); a == 0 || a == b {
		t.Fatal("NewID repeats")
	}
}

// TestCacheConcurrent hammers a sharded cache from several goroutines: every
// hit must return its own block, and the size must stay within capacity.
func TestCacheConcurrent(t *testing.T) {
	rng := newRand(t)
	c := NewCache(16 << 20)
	t.Logf("%d shards", len(c.shards))
	ops := 20000
	if raceEnabled {
		ops = 5000
	}
	var wg sync.WaitGroup
	for g := range 8 {
		s := rng.Int63()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRandFrom(s)
			for range ops {
				k := cacheKey{id: uint64(g % 2), fileNum: uint64(r.Intn(50)), offset: uint64(r.Intn(100))}
				if b, ok := c.get(k); ok {
					if !bytes.Equal(b[:24], block(k, 0)) {
						panic(fmt.Sprintf("block of %v holds %x", k, b[:24]))
					}
				} else {
					c.set(k, block(k, 1000+r.Intn(8000)))
				}
			}
		}()
	}
	wg.Wait()
	m := c.Metrics()
	t.Logf("%+v", m)
	if m.Size > m.Capacity || m.Hits == 0 || m.Misses == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestReaderUsesCache checks the block cache from the Reader's side: a
// second scan hits for every block, and blocks held by an iterator stay
// correct while other reads evict them.
func TestReaderUsesCache(t *testing.T) {
	kvs := smallKVs(2000, 'a')
	c := NewCache(32 << 10)
	r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{BlockSize: 1024}), 1, ReaderOptions{Cache: c, CacheID: c.NewID()})
	defer r.Close()
	blocks := r.Properties().NumDataBlocks
	it := r.NewIter()
	it.First()
	for range 10 {
		it.Next()
	}
	held, heldVal := it.Key(), it.Value()
	checkScan(t, r, kvs) // forward and backward: evicts the first blocks
	if m := c.Metrics(); m.Misses < blocks || m.Size > m.Capacity {
		t.Fatalf("after scans of %d blocks: %+v", blocks, m)
	}
	if sameEntry(it, kvs[10]) != nil || base.CompareInternal(held, kvs[10].key) != 0 || !bytes.Equal(heldVal, kvs[10].val) {
		t.Fatal("held entry changed while its block was evicted")
	}
	if !it.Next() || sameEntry(it, kvs[11]) != nil || it.Close() != nil {
		t.Fatal("iterator broke when its block was evicted")
	}

	big := NewCache(1 << 20)
	r2 := mustOpen(t, buildTable(t, 2, kvs, WriterOptions{BlockSize: 1024}), 2, ReaderOptions{Cache: big})
	defer r2.Close()
	checkScan(t, r2, kvs)
	before := big.Metrics()
	checkScan(t, r2, kvs)
	after := big.Metrics()
	if after.Misses != before.Misses || after.Hits-before.Hits < 2*blocks-1 {
		t.Fatalf("second scans missed: before %+v, after %+v", before, after)
	}
}

// TestConcurrentReaders runs Gets and iterators from several goroutines
// over one Reader with a small shared cache (for -race).
func TestConcurrentReaders(t *testing.T) {
	rng := newRand(t)
	kvs := randomKVs(rng, 3000, 4, 16, 200)
	c := NewCache(64 << 10)
	r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{BlockSize: 512}), 1, ReaderOptions{Cache: c})
	defer r.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 6 {
		s := rng.Int63()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readerWorkload(r, kvs, newRandFrom(s))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readerWorkload mixes Gets and short scans, checked against kvs.
func readerWorkload(r *Reader, kvs []kv, rng interface{ Intn(int) int }) error {
	it := r.NewIter()
	defer it.Close()
	for range 300 {
		i := rng.Intn(len(kvs))
		e := kvs[i]
		want, _ := modelGet(kvs, e.key.UserKey, e.key.Seq())
		v, kind, found, err := r.Get(e.key.UserKey, e.key.Seq())
		if err != nil || !found || kind != want.key.Kind() || !bytes.Equal(v, want.val) {
			return fmt.Errorf("Get(%s) = %q %v %v %v", e.key, v, kind, found, err)
		}
		if !it.SeekGE(e.key.UserKey) {
			return fmt.Errorf("SeekGE(%q) failed: %v", e.key.UserKey, it.Error())
		}
		j := i
		for j > 0 && bytes.Equal(kvs[j-1].key.UserKey, e.key.UserKey) {
			j--
		}
		for n := 0; n < 20 && j < len(kvs); n, j = n+1, j+1 {
			if err := sameEntry(it, kvs[j]); err != nil {
				return err
			}
			if !it.Next() && j+1 < len(kvs) {
				return fmt.Errorf("scan stopped early: %v", it.Error())
			}
		}
	}
	return nil
}

// TestIterWithoutCacheFill reads a table with an iterator that does not
// fill the cache: the cache stays empty, and blocks already cached are
// still used.
func TestIterWithoutCacheFill(t *testing.T) {
	c := NewCache(1 << 20)
	kvs := make([]kv, 2000)
	for i := range kvs {
		kvs[i] = kv{ikey(fmt.Sprintf("k%05d", i), 1, base.KindSet), make([]byte, 50)}
	}
	r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{}), 1, ReaderOptions{Cache: c, CacheID: c.NewID()})
	defer r.Close()
	it := r.NewIter()
	it.SetCacheFill(false)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	it.Close()
	if n != 2000 || c.Metrics().Count != 0 {
		t.Fatalf("read %d entries; %d blocks cached by an iterator that does not fill the cache", n, c.Metrics().Count)
	}
	it = r.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
	}
	it.Close()
	cached := c.Metrics().Count
	if cached == 0 {
		t.Fatal("a filling iterator cached nothing")
	}
	it = r.NewIter()
	it.SetCacheFill(false)
	for ok := it.First(); ok; ok = it.Next() {
	}
	it.Close()
	if m := c.Metrics(); m.Hits == 0 || m.Count != cached {
		t.Fatalf("a non-filling iterator over a cached table: %+v", m)
	}
}
