// Package memtable holds recent writes in memory: an arena-backed skiplist of
// internal keys (user key ascending, trailer descending) with one writer at a
// time and lock-free readers that never wait on the writer.
//
// Keys and values are never copied. The writer hands the memtable committed
// batch buffers with Retain and then adds entries that name a buffer and the
// offsets of a key and a value inside it; a node in the arena stores only
// those offsets (see node.go for the layout). Retained buffers stay
// referenced, and every key and value returned by Get or an Iter aliases them,
// for as long as the MemTable itself is reachable.
//
// Concurrency: Retain, Add, Set and Fits form the writer side and must not be
// called concurrently with each other. Get, NewIter, InitIter, Iter methods,
// Size, Capacity, Count and Empty may be called from any number of goroutines
// at any time, including while the writer runs; they see every entry whose
// Add returned before they started and possibly some added concurrently.
// A MemTable has no Close: it is released by dropping every reference to it
// (including iterators).
package memtable

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
)

var (
	// ErrFull is returned by Add when the node would not fit in the
	// memtable's capacity. The memtable is left unchanged.
	ErrFull = errors.New("memtable: full")
	// ErrRecordExists is returned by Add when an entry with the same user key
	// and trailer is already present. The memtable is left unchanged.
	ErrRecordExists = errors.New("memtable: record exists")
	// ErrInvalidRef is returned by Add when the buffer reference or the key
	// or value range does not name retained bytes.
	ErrInvalidRef = errors.New("memtable: reference outside retained buffers")
)

// BufRef names a buffer retained by MemTable.Retain.
type BufRef uint32

// MemTable is a sorted in-memory set of internal keys and their values.
// See the package documentation for which methods may run concurrently.
type MemTable struct {
	// Read by every reader, written rarely: kept apart from the fields
	// the writer updates on every Add so that readers' cache lines stay
	// valid.
	arena    arena
	capacity int64
	// dir points at the buffer directory: a slice whose every element below
	// the retained count is set. The writer replaces it (never resizes it in
	// place) when it is full; a node naming buffer i is published only
	// after a directory holding i is.
	dir    atomic.Pointer[[][]byte]
	height atomic.Uint32 // levels in use, 1..maxHeight

	_ [64]byte

	used     atomic.Int64 // arena bytes in use
	retained atomic.Int64 // bytes of retained buffers
	count    atomic.Int64 // entries

	w writer
}

// writer is the state only the writer touches.
type writer struct {
	dir      [][]byte // the current directory; len(dir) is its capacity
	nbufs    int      // buffers retained
	used     uint32   // arena bytes handed out, a multiple of nodeAlign
	retained int64
	count    int64
	rng      uint64
	// spl is the splice (predecessor and successor at every level) of the
	// last insert or search; it always describes the current list, and
	// levels at or above the list height hold head and tail.
	splPrev [maxHeight]uint32
	splNext [maxHeight]uint32
}

// New returns an empty memtable whose node arena plus retained buffers may
// take up to capacity bytes. The arena is allocated once, up front, with
// min(capacity, about 4 GiB) bytes. Pages fresh from the OS are supplied
// lazily, but memory the Go heap reuses (a flushed memtable's) is zeroed,
// and so resident, in full; the retained buffers live outside the arena,
// so a full memtable of large values can hold up to about twice capacity.
// A capacity too small to hold the skiplist's two sentinel nodes is raised to
// that minimum (248 bytes).
func New(capacity int64) *MemTable {
	if capacity < arenaStart {
		capacity = arenaStart
	}
	limit := uint32(maxArena)
	if capacity < maxArena {
		limit = uint32(capacity) &^ (nodeAlign - 1)
	}
	m := &MemTable{arena: newArena(limit), capacity: capacity}
	m.w.rng = 0x9e3779b97f4a7c15
	m.height.Store(1)
	m.w.used = arenaStart
	m.used.Store(arenaStart)
	head, tail := m.arena.node(headNode), m.arena.node(tailNode)
	head.height, tail.height = maxHeight, maxHeight
	tail.prev = headNode
	for i := range maxHeight {
		head.next[i] = tailNode
		m.w.splPrev[i], m.w.splNext[i] = headNode, tailNode
	}
	d := make([][]byte, 16)
	m.w.dir = d
	m.dir.Store(&d)
	return m
}

// Retain keeps a reference to data and returns its name for Add. data is not
// copied: the caller must never modify it afterwards. Its capacity (the
// whole array it keeps alive, not just its length) counts against the
// memtable's capacity even if no entry refers to it. Writer side: not
// concurrent with Add, Set or another Retain.
func (m *MemTable) Retain(data []byte) BufRef {
	w := &m.w
	if w.nbufs == len(w.dir) {
		d := make([][]byte, 2*len(w.dir))
		copy(d, w.dir)
		w.dir = d
		m.dir.Store(&d)
	}
	w.dir[w.nbufs] = data
	w.nbufs++
	w.retained += int64(cap(data))
	m.retained.Store(w.retained)
	return BufRef(w.nbufs - 1)
}

// unretain drops the last retained buffer, which no node may name.
func (m *MemTable) unretain() {
	w := &m.w
	w.nbufs--
	w.retained -= int64(cap(w.dir[w.nbufs]))
	w.dir[w.nbufs] = nil
	m.retained.Store(w.retained)
}

// Add inserts the entry whose key is data[keyOff:keyOff+keyLen] and whose
// value is data[valOff:valOff+valLen], data being the buffer ref names, with
// the given trailer (base.MakeTrailer). It returns an error wrapping ErrFull
// if the node does not fit, ErrRecordExists if the same user key and trailer
// are present, ErrInvalidRef if a range falls outside the buffer; in each
// case the memtable is unchanged. Writer side: not concurrent with Retain,
// Set or another Add; readers may run concurrently and see the entry once
// Add returns. It allocates nothing when it succeeds.
func (m *MemTable) Add(ref BufRef, keyOff, keyLen, valOff, valLen uint32, trailer uint64) error {
	w := &m.w
	if int64(ref) >= int64(w.nbufs) {
		return fmt.Errorf("%w: buffer %d of %d", ErrInvalidRef, ref, w.nbufs)
	}
	// Both ends must fit the buffer and a uint32, so readers may add them.
	n := min(uint64(len(w.dir[ref])), 1<<32-1)
	if uint64(keyOff)+uint64(keyLen) > n || uint64(valOff)+uint64(valLen) > n {
		return fmt.Errorf("%w: key [%d,+%d) or value [%d,+%d) outside buffer %d of %d bytes",
			ErrInvalidRef, keyOff, keyLen, valOff, valLen, ref, len(w.dir[ref]))
	}
	key := w.dir[ref][keyOff : keyOff+keyLen]
	if m.findSplice(key, trailer) {
		return fmt.Errorf("%w: %s", ErrRecordExists, base.InternalKey{UserKey: key, Trailer: trailer})
	}
	h := w.randomHeight()
	sz := nodeSize(h)
	used := uint64(w.used) + uint64(sz)
	if used > uint64(m.arena.limit) || int64(used)+w.retained > m.capacity {
		return fmt.Errorf("%w: node of %d bytes, %d of %d bytes used", ErrFull, sz, m.Size(), m.capacity)
	}
	off := w.used
	w.used = uint32(used)
	nd := m.arena.node(off)
	nd.bufRef, nd.keyOff, nd.keyLen, nd.valOff, nd.valLen = uint32(ref), keyOff, keyLen, valOff, valLen
	nd.height, nd.trailer = uint32(h), trailer
	m.link(off, nd, h)
	w.count++
	m.count.Store(w.count)
	m.used.Store(int64(w.used))
	return nil
}

// Set copies key and value into a fresh buffer, retains it and adds the
// entry. It is a convenience for tests and tools; errors are Add's, and on
// error the buffer is not retained. Writer side, like Add.
func (m *MemTable) Set(key, value []byte, trailer uint64) error {
	if n := uint64(len(key)) + uint64(len(value)); n > math.MaxUint32 {
		return fmt.Errorf("%w: entry of %d bytes is beyond 32-bit offsets", ErrInvalidRef, n)
	}
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	kl, vl := uint32(len(key)), uint32(len(value))
	ref := m.Retain(buf)
	if err := m.Add(ref, 0, kl, kl, vl, trailer); err != nil {
		m.unretain()
		return err
	}
	return nil
}

// Fits reports whether a batch of the given buffer bytes and entries is
// certain to fit: it assumes every node takes the largest size, so Add never
// returns ErrFull for such a batch. Safe to call concurrently with anything,
// but only the writer's answer is stable.
func (m *MemTable) Fits(bytes int64, entries int) bool {
	if bytes < 0 || entries < 0 || bytes > m.capacity || int64(entries) > m.capacity/maxNodeSize {
		return false
	}
	nodes := int64(entries) * maxNodeSize
	used := m.used.Load()
	return used+m.retained.Load()+bytes+nodes <= m.capacity && used+nodes <= int64(m.arena.limit)
}

// Size returns the arena bytes in use (including the sentinels) plus the
// bytes of every retained buffer. It may exceed Capacity if Retain was given
// more than fits. Safe to call concurrently with anything.
func (m *MemTable) Size() int64 { return m.used.Load() + m.retained.Load() }

// Capacity returns the capacity the memtable was created with (raised to
// the minimum). Safe to call concurrently with anything.
func (m *MemTable) Capacity() int64 { return m.capacity }

// Count returns the number of entries. Safe to call concurrently with
// anything.
func (m *MemTable) Count() int { return int(m.count.Load()) }

// Empty reports whether the memtable has no entries. Safe to call
// concurrently with anything.
func (m *MemTable) Empty() bool { return m.count.Load() == 0 }
