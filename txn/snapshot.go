package txn

import (
	"bytes"

	"github.com/google/btree"
	"github.com/stratadb/strata/internal/base"
)

// Snapshot is a point-in-time view of an overlay's index, from
// Overlay.Snapshot. It never changes: later writes to the overlay (and
// rewrites of its batch) copy the index's nodes on write instead of
// modifying them. It holds no lock and needs no closing; it keeps the
// memory it references alive until it is unreachable.
//
// A Snapshot is safe for concurrent use by any number of goroutines; each
// iterator over it belongs to one goroutine.
type Snapshot struct {
	tree *btree.BTreeG[elem]
}

// Len returns the number of distinct keys in the snapshot.
func (s *Snapshot) Len() int { return s.tree.Len() }

// Get returns the snapshot's visible write of key, as Overlay.SharedGet
// does. It allocates nothing. The value stays valid forever.
func (s *Snapshot) Get(key []byte) (value []byte, kind base.Kind, stamp uint64, found bool) {
	el, ok := s.tree.Get(elem{key: key})
	if !ok {
		return nil, 0, 0, false
	}
	return el.e.value, el.e.kind, el.e.stamp, true
}

// NewIter returns an unpositioned iterator over the snapshot.
func (s *Snapshot) NewIter() *Iter {
	it := &Iter{}
	it.Init(s)
	return it
}

// iterBufSize is the number of items an iterator copies out of the btree
// at a time.
const iterBufSize = 64

// seekFill is the number of items a seek copies: a seek is often followed
// by a step or two (or by another seek), so it does not pay for a full
// buffer; refills double the number up to iterBufSize.
const seekFill = 8

// Iter walks a Snapshot in key order, in both directions. google/btree has
// no cursor, so the iterator copies up to iterBufSize consecutive items at a
// time into a buffer of its own, and refills it from the item at its edge
// (exclusive) when it moves past one: Next and Prev are amortized O(1) and
// allocate nothing after the iterator's first positioning.
//
// An iterator is unpositioned (not Valid) until First, Last, SeekGE or
// SeekLT. Next past the last item, or Prev before the first, leaves it not
// Valid, and a move in the other direction then returns to the edge item,
// as a cursor that stepped off the end would. Key, Value, Kind, Stamp and
// Item may be called only when Valid; the slices they return stay valid
// forever.
//
// An Iter comes from Snapshot.NewIter, or is a zero Iter given a snapshot
// with Init; Init also moves a used iterator to another snapshot, reusing
// its memory (2 KiB of buffer). It is not safe for concurrent use, must not
// be copied once used, and needs no closing. Keys given to the seeks escape
// to the heap (google/btree calls its less function dynamically): pass a
// reused buffer rather than a fresh stack array.
type Iter struct {
	tree *btree.BTreeG[elem]
	n    int // buf[:n] holds consecutive items, ascending
	pos  int // -1 (before buf), 0..n-1 (valid), or n (after buf)
	// first and last tell that buf[0] is the tree's first item and buf[n-1]
	// its last, so no refill is needed beyond them.
	first, last bool

	fill    func(elem) bool // it.add, bound once to avoid an allocation per fill
	boundTo *Iter
	fillN   int
	limit   int    // of the current fill; grows as the iterator keeps moving
	skip    bool   // the fill skips an item equal to skipKey (an exclusive refill)
	skipKey []byte // a key of buf, never a caller's
	buf     [iterBufSize]elem
}

// Init makes it an unpositioned iterator over s, reusing its memory. It
// drops the references to the previous snapshot's items, so a pooled
// iterator does not keep an old batch alive.
func (it *Iter) Init(s *Snapshot) {
	if it.tree != nil {
		clear(it.buf[:])
	}
	it.tree = s.tree
	it.n, it.pos = 0, 0
	it.first, it.last = false, false
}

// Valid reports whether the iterator is positioned at an item.
func (it *Iter) Valid() bool { return it.pos >= 0 && it.pos < it.n }

// Item returns the current item.
func (it *Iter) Item() Item { return it.buf[it.pos].item() }

// Key returns the current key.
func (it *Iter) Key() []byte { return it.buf[it.pos].key }

// Value returns the current value (nil for a tombstone).
func (it *Iter) Value() []byte { return it.buf[it.pos].e.value }

// Kind returns the current entry's kind.
func (it *Iter) Kind() base.Kind { return it.buf[it.pos].e.kind }

// Stamp returns the current entry's stamp.
func (it *Iter) Stamp() uint64 { return it.buf[it.pos].e.stamp }

// First moves to the smallest key and reports whether there is one.
func (it *Iter) First() bool {
	n, exhausted := it.fillAsc(nil, false, iterBufSize)
	it.n, it.pos = n, 0 // with no item: after the end, Prev retries Last
	it.first, it.last = true, exhausted
	return n > 0
}

// Last moves to the largest key and reports whether there is one.
func (it *Iter) Last() bool {
	n, exhausted := it.fillDesc(nil, false, iterBufSize)
	it.n, it.pos = n, n-1
	if n == 0 {
		it.pos = 0 // after the (empty) buffer: Prev retries Last
	}
	it.first, it.last = exhausted, true
	return n > 0
}

// SeekGE moves to the smallest key >= key and reports whether there is one.
// When there is none, Prev then moves to the largest key.
func (it *Iter) SeekGE(key []byte) bool {
	if it.n > 0 && bytes.Compare(it.buf[0].key, key) <= 0 && bytes.Compare(key, it.buf[it.n-1].key) <= 0 {
		it.pos = it.search(key)
		return true
	}
	n, exhausted := it.fillAsc(key, true, seekFill)
	if n == 0 {
		it.n, it.pos = 0, 0 // after the end: Prev moves to Last
		return false
	}
	it.n, it.pos = n, 0
	it.first, it.last = false, exhausted
	return true
}

// SeekLT moves to the largest key < key and reports whether there is one.
// When there is none, Next then moves to the smallest key.
func (it *Iter) SeekLT(key []byte) bool {
	if it.n > 0 && bytes.Compare(it.buf[0].key, key) < 0 && bytes.Compare(key, it.buf[it.n-1].key) <= 0 {
		it.pos = it.search(key) - 1
		return true
	}
	n, exhausted := it.fillDesc(key, true, seekFill)
	if n > 0 && bytes.Equal(it.buf[n-1].key, key) { // the fill is inclusive
		n--
	}
	if n == 0 {
		it.n, it.pos = 0, -1 // before the start: Next moves to First
		return false
	}
	it.n, it.pos = n, n-1
	it.first, it.last = exhausted, false
	return true
}

// Next moves to the next key and reports whether there is one.
func (it *Iter) Next() bool {
	switch {
	case it.pos+1 < it.n:
		it.pos++
		return true
	case it.n == 0:
		return it.pos < 0 && it.First()
	case it.pos >= it.n:
		return false
	case it.last:
		it.pos = it.n
		return false
	}
	// At the buffer's last item: refill with the items after it.
	it.skip, it.skipKey = true, it.buf[it.n-1].key
	n, exhausted := it.fillAsc(it.skipKey, true, min(2*it.limit, iterBufSize))
	if n == 0 {
		it.last, it.pos = true, it.n
		return false
	}
	it.n, it.pos = n, 0
	it.first, it.last = false, exhausted
	return true
}

// Prev moves to the previous key and reports whether there is one.
func (it *Iter) Prev() bool {
	switch {
	case it.pos > 0 && it.pos <= it.n:
		it.pos--
		return true
	case it.n == 0:
		return it.pos >= 0 && it.Last()
	case it.pos < 0:
		return false
	case it.first:
		it.pos = -1
		return false
	}
	// At the buffer's first item: refill with the items before it.
	it.skip, it.skipKey = true, it.buf[0].key
	n, exhausted := it.fillDesc(it.skipKey, true, min(2*it.limit, iterBufSize))
	if n == 0 {
		it.first, it.pos = true, -1
		return false
	}
	it.n, it.pos = n, n-1
	it.first, it.last = exhausted, false
	return true
}

// search returns the index of the first buffered item >= key.
func (it *Iter) search(key []byte) int {
	lo, hi := 0, it.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(it.buf[m].key, key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// fillAsc copies up to limit (at most iterBufSize) items in ascending order into buf,
// starting at the first item >= pivot, or at the tree's first item without a
// pivot, and skipping an item equal to skipKey if it.skip is set. It returns
// their number, and whether the tree has no more items in that direction.
// buf is left untouched when there are none. pivot is never stored, so
// callers' keys do not escape.
func (it *Iter) fillAsc(pivot []byte, hasPivot bool, limit int) (n int, exhausted bool) {
	it.fillN, it.limit = 0, limit
	if hasPivot {
		it.tree.AscendGreaterOrEqual(elem{key: pivot}, it.adder())
	} else {
		it.tree.Ascend(it.adder())
	}
	it.skip, it.skipKey = false, nil
	return it.fillN, it.fillN < limit
}

// fillDesc is fillAsc downwards from the last item <= pivot; it leaves buf
// in ascending order all the same.
func (it *Iter) fillDesc(pivot []byte, hasPivot bool, limit int) (n int, exhausted bool) {
	it.fillN, it.limit = 0, limit
	if hasPivot {
		it.tree.DescendLessOrEqual(elem{key: pivot}, it.adder())
	} else {
		it.tree.Descend(it.adder())
	}
	it.skip, it.skipKey = false, nil
	n = it.fillN
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		it.buf[i], it.buf[j] = it.buf[j], it.buf[i]
	}
	return n, n < limit
}

// adder returns it.add as a func value, bound once per iterator.
func (it *Iter) adder() func(elem) bool {
	if it.boundTo != it {
		it.fill, it.boundTo = it.add, it
	}
	return it.fill
}

// add collects one item of a fill into buf; it skips an item equal to
// skipKey when it.skip is set (only the first item of a fill can be).
func (it *Iter) add(item elem) bool {
	if it.skip {
		it.skip = false
		if bytes.Equal(item.key, it.skipKey) {
			return true
		}
	}
	it.buf[it.fillN] = item
	it.fillN++
	return it.fillN < it.limit
}
