package sstable

import (
	"fmt"
	"sync"

	"github.com/stratadb/strata/internal/vfs"
)

// TableCache keeps up to a fixed number of tables open, least recently used
// first out, and hands out reference-counted Readers. A Reader evicted while
// in use is closed when its last user releases it. All methods may be called
// concurrently. Opening a table happens outside the cache's lock; concurrent
// Gets of the same table wait for one Open. A failed Open is not cached: the
// next Get retries.
type TableCache struct {
	fs      vfs.FS
	dirname string
	nameOf  func(fileNum uint64) string
	size    int
	opts    ReaderOptions // Cache, CacheID and Stats shared by its Readers

	mu struct {
		sync.Mutex
		tables map[uint64]*tableNode
		lru    tableNode // sentinel: lru.next is the most recently used
		closed bool
		hits   uint64
		misses uint64
	}
}

// tableNode is one table of the cache.
type tableNode struct {
	fileNum    uint64
	refs       int           // users plus one while in the cache; under mu
	ready      chan struct{} // closed once reader or err is set
	reader     *Reader
	err        error
	release    func() // drops one reference; made once per node
	prev, next *tableNode
}

// NewTableCache returns a cache of at most size open tables (at least 1)
// of directory dirname in fs; nameOf gives a table's file name (a base name,
// joined to dirname). Its Readers share cache (nil: none) under one new
// cache id, and one Stats (see Stats).
func NewTableCache(fs vfs.FS, dirname string, size int, cache *Cache, nameOf func(fileNum uint64) string) *TableCache {
	c := &TableCache{fs: fs, dirname: dirname, nameOf: nameOf, size: max(size, 1)}
	c.opts = ReaderOptions{Cache: cache, CacheID: cache.NewID(), Stats: &Stats{}}
	c.mu.tables = make(map[uint64]*tableNode)
	c.mu.lru.prev, c.mu.lru.next = &c.mu.lru, &c.mu.lru
	return c
}

// Stats returns the counters shared by the cache's Readers.
func (c *TableCache) Stats() *Stats { return c.opts.Stats }

// Get returns the open Reader of table fileNum, opening it if needed, and a
// release function that the caller must call exactly once when done with
// the Reader (and with every Iter of it). The Reader must not be closed by
// the caller. Get allocates nothing when the table is open.
func (c *TableCache) Get(fileNum uint64) (*Reader, func(), error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, nil, ErrClosed
	}
	n := c.mu.tables[fileNum]
	if n != nil {
		c.mu.hits++
		n.refs++
		c.unlinkLocked(n)
		c.pushFrontLocked(n)
		c.mu.Unlock()
		<-n.ready
	} else {
		c.mu.misses++
		var evicted []*tableNode
		n, evicted = c.insertLocked(fileNum)
		c.mu.Unlock()
		for _, e := range evicted {
			e.release()
		}
		c.load(n)
	}
	if n.err != nil {
		err := n.err
		n.release()
		return nil, nil, err
	}
	return n.reader, n.release, nil
}

// insertLocked adds a node for fileNum, referenced by the cache and the
// caller, and removes the least recently used tables beyond the size,
// returning them for the caller to release.
func (c *TableCache) insertLocked(fileNum uint64) (*tableNode, []*tableNode) {
	n := &tableNode{fileNum: fileNum, refs: 2, ready: make(chan struct{})}
	n.release = func() { c.unref(n) }
	c.mu.tables[fileNum] = n
	c.pushFrontLocked(n)
	var evicted []*tableNode
	for len(c.mu.tables) > c.size {
		e := c.mu.lru.prev
		c.removeLocked(e)
		evicted = append(evicted, e)
	}
	return n, evicted
}

// load opens n's table and wakes its waiters. On failure it removes n.
func (c *TableCache) load(n *tableNode) {
	name := c.fs.PathJoin(c.dirname, c.nameOf(n.fileNum))
	f, err := c.fs.Open(name)
	if err != nil {
		n.err = fmt.Errorf("sstable: opening table %d: %w", n.fileNum, err)
	} else {
		o := c.opts
		o.FileName = name
		if n.reader, n.err = Open(f, n.fileNum, o); n.err != nil {
			f.Close()
		}
	}
	close(n.ready)
	if n.err != nil {
		c.mu.Lock()
		removed := c.mu.tables[n.fileNum] == n
		if removed {
			c.removeLocked(n)
		}
		c.mu.Unlock()
		if removed {
			n.release()
		}
	}
}

// unref drops a reference to n and closes its Reader after the last one.
func (c *TableCache) unref(n *tableNode) {
	c.mu.Lock()
	n.refs--
	last := n.refs == 0
	c.mu.Unlock()
	if last && n.reader != nil {
		n.reader.Close()
	}
}

// Evict drops table fileNum from the cache (call it when the file is
// deleted); its Reader closes once its users release it. The table's blocks
// stay in the block cache until newer blocks push them out: a store never
// reuses a file number, so nothing reads them again.
func (c *TableCache) Evict(fileNum uint64) {
	c.mu.Lock()
	n := c.mu.tables[fileNum]
	if n != nil {
		c.removeLocked(n)
	}
	c.mu.Unlock()
	if n != nil {
		n.release()
	}
}

// removeLocked takes n out of the map and list. The caller then drops the
// cache's reference with n.release(), after unlocking (closing a Reader is
// I/O, never done under the lock).
func (c *TableCache) removeLocked(n *tableNode) {
	delete(c.mu.tables, n.fileNum)
	c.unlinkLocked(n)
	n.prev, n.next = nil, nil
}

func (c *TableCache) unlinkLocked(n *tableNode) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *TableCache) pushFrontLocked(n *tableNode) {
	n.prev, n.next = &c.mu.lru, c.mu.lru.next
	n.next.prev, c.mu.lru.next = n, n
}

// TableCacheMetrics is a snapshot of a TableCache's counters.
type TableCacheMetrics struct {
	// Open is the number of tables in the cache.
	Open int
	// Hits and Misses count Gets that found, or had to open, their table.
	Hits, Misses uint64
}

// Metrics returns the cache's counters.
func (c *TableCache) Metrics() TableCacheMetrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	return TableCacheMetrics{Open: len(c.mu.tables), Hits: c.mu.hits, Misses: c.mu.misses}
}

// Close evicts every table; tables in use close when released. Later Gets
// return ErrClosed. A second Close does nothing.
func (c *TableCache) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	var all []*tableNode
	for c.mu.lru.next != &c.mu.lru {
		n := c.mu.lru.next
		c.removeLocked(n)
		all = append(all, n)
	}
	c.mu.Unlock()
	for _, n := range all {
		n.release()
	}
	return nil
}
