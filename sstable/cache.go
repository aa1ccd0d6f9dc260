package sstable

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Cache is a size-bounded cache of decoded data blocks, shared by all the
// tables of one or more stores. It is split into shards, each an LRU list
// under its own mutex, chosen by a hash of the block's key (cache id, file
// number, offset). All its methods may be called concurrently; a nil *Cache
// caches nothing.
//
// Blocks are immutable and never recycled: eviction only drops the cache's
// reference, so a block that an iterator or a Get result still holds stays
// valid (the garbage collector frees it once nobody holds it). Memory in use
// may therefore exceed the capacity by the blocks held outside the cache.
// Two readers that miss the same block at once both read it; the second
// insertion replaces the first.
type Cache struct {
	shards   []cacheShard
	mask     uint64
	capacity int64
	nextID   atomic.Uint64
}

// cacheKey names a block: the store (Cache.NewID), the file, the offset.
type cacheKey struct {
	id, fileNum, offset uint64
}

// cacheEntryOverhead is charged for each entry on top of its block's length:
// the entry, its map slot and its key.
const cacheEntryOverhead = 112

// minShardBytes bounds the number of shards of a small cache.
const minShardBytes = 1 << 20

// cacheEntry is a cached block in its shard's LRU list.
type cacheEntry struct {
	key        cacheKey
	value      []byte
	charge     int64
	prev, next *cacheEntry
}

// cacheShard is one LRU list. lru is the list's sentinel: lru.next is the
// most recently used entry, lru.prev the least.
type cacheShard struct {
	mu struct {
		sync.Mutex
		m            map[cacheKey]*cacheEntry
		lru          cacheEntry
		size         int64
		hits, misses uint64
	}
	capacity int64
	_        [64]byte // keeps shards' mutexes on separate cache lines
}

// NewCache returns a cache that holds up to capacityBytes of blocks (plus a
// small overhead per block, counted in). A capacity <= 0 caches nothing but
// still counts misses.
func NewCache(capacityBytes int64) *Cache {
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) && n < 64 && int64(n)*2*minShardBytes <= capacityBytes {
		n *= 2
	}
	c := &Cache{shards: make([]cacheShard, n), mask: uint64(n - 1), capacity: capacityBytes}
	for i := range c.shards {
		s := &c.shards[i]
		s.capacity = capacityBytes / int64(n)
		s.mu.m = make(map[cacheKey]*cacheEntry)
		s.mu.lru.prev, s.mu.lru.next = &s.mu.lru, &s.mu.lru
	}
	return c
}

// NewID returns a cache id not returned before by this Cache, never 0, for
// ReaderOptions.CacheID. It may be called concurrently.
func (c *Cache) NewID() uint64 {
	if c == nil {
		return 0
	}
	return c.nextID.Add(1)
}

// shard returns the shard of k.
func (c *Cache) shard(k cacheKey) *cacheShard {
	h := (k.fileNum^k.id<<40)*hashM1 + k.offset*hashM2
	h ^= h >> 31
	return &c.shards[h&c.mask]
}

// get returns the block of k and whether it was cached, and counts a hit or
// a miss. The block must not be modified.
func (c *Cache) get(k cacheKey) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.mu.m[k]
	if e == nil {
		s.mu.misses++
		return nil, false
	}
	s.mu.hits++
	s.unlinkLocked(e)
	s.pushFrontLocked(e)
	return e.value, true
}

// set caches block v under k, evicting least recently used blocks to make
// room. A block larger than a shard's capacity is not cached. The cache
// keeps v: it must never be modified again.
func (c *Cache) set(k cacheKey, v []byte) {
	if c == nil {
		return
	}
	s := c.shard(k)
	charge := int64(len(v)) + cacheEntryOverhead
	if charge > s.capacity {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.mu.m[k]; old != nil {
		s.removeLocked(old)
	}
	e := &cacheEntry{key: k, value: v, charge: charge}
	s.mu.m[k] = e
	s.pushFrontLocked(e)
	s.mu.size += charge
	for s.mu.size > s.capacity {
		s.removeLocked(s.mu.lru.prev)
	}
}

// Clear drops every cached block, for a store that closes: the blocks
// that iterators or Get results still hold stay valid. Blocks set after it
// are cached as usual. It may be called concurrently with the other
// methods, and on a nil Cache.
func (c *Cache) Clear() {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.mu.m = make(map[cacheKey]*cacheEntry)
		s.mu.lru.prev, s.mu.lru.next = &s.mu.lru, &s.mu.lru
		s.mu.size = 0
		s.mu.Unlock()
	}
}

func (s *cacheShard) unlinkLocked(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *cacheShard) pushFrontLocked(e *cacheEntry) {
	e.prev, e.next = &s.mu.lru, s.mu.lru.next
	e.next.prev, s.mu.lru.next = e, e
}

func (s *cacheShard) removeLocked(e *cacheEntry) {
	s.unlinkLocked(e)
	delete(s.mu.m, e.key)
	s.mu.size -= e.charge
	e.value, e.prev, e.next = nil, nil, nil
}

// CacheMetrics is a snapshot of a Cache's counters.
type CacheMetrics struct {
	// Capacity is the cache's capacity in bytes.
	Capacity int64
	// Size is the bytes charged for the cached blocks (their lengths plus
	// a per-block overhead).
	Size int64
	// Count is the number of cached blocks.
	Count int64
	// Hits and Misses count lookups that found, or did not find, their
	// block.
	Hits, Misses uint64
}

// Metrics returns the cache's counters; a nil Cache has none. It may be
// called concurrently; the shards are read one after the other, so the
// totals are not one instant's.
func (c *Cache) Metrics() CacheMetrics {
	if c == nil {
		return CacheMetrics{}
	}
	m := CacheMetrics{Capacity: c.capacity}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		m.Size += s.mu.size
		m.Count += int64(len(s.mu.m))
		m.Hits += s.mu.hits
		m.Misses += s.mu.misses
		s.mu.Unlock()
	}
	return m
}
