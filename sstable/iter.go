package sstable

import (
	"github.com/stratadb/strata/internal/base"
)

// Iter walks a table's entries in internal-key order (user key ascending,
// trailer descending), every version of every key, with no sequence-number
// filtering. It has the method set of the engine's internal iterator plus
// Error and Close. An Iter is used by one goroutine at a time; many may run
// over one Reader concurrently. Its Reader must stay open until it is
// closed.
//
// Positioning methods report whether the iterator is on an entry. Any damage
// found stops it: they return false and Error returns an error wrapping
// base.ErrCorruption, for good (the error is sticky). After Close every
// positioning method returns false.
//
// Key's UserKey is valid until the next positioning call (keys are rebuilt
// from prefix compression into a buffer the Iter reuses). Value is never
// modified nor reused: it may be kept after the Iter moves, but must not be
// modified. Moving within a cached block allocates nothing.
type Iter struct {
	r      *Reader
	data   blockIter
	block  int // index of the data block in data, -1 if none
	err    error
	closed bool
	noFill bool // blocks read are not added to the cache
}

// NewIter returns an unpositioned iterator over the table. Safe to call
// concurrently.
func (r *Reader) NewIter() *Iter {
	it := &Iter{}
	it.Init(r)
	return it
}

// Init makes it an unpositioned iterator over r, reusing its buffers, so
// that an Iter held by value costs no allocation. It may be called on a
// closed Iter or a zero one.
func (it *Iter) Init(r *Reader) {
	d := &it.data
	*it = Iter{r: r, block: -1, data: blockIter{key: d.key[:0], cache: d.cache[:0], cacheKeys: d.cacheKeys[:0], cacheIdx: -1}}
}

// SetCacheFill tells whether the blocks the iterator reads are added to the
// block cache (the default after Init) or only used: a compaction reads
// each block once, and filling the cache with them would evict the blocks
// readers need. Blocks already cached are used either way.
func (it *Iter) SetCacheFill(fill bool) { it.noFill = !fill }

// load makes data block i the current one, unpositioned.
func (it *Iter) load(i int) bool {
	if it.err != nil || it.closed {
		return false
	}
	if it.r.closed.Load() {
		it.err = ErrClosed
		return false
	}
	if i == it.block {
		return true
	}
	it.block = -1
	b, err := it.r.dataBlock(i, !it.noFill)
	if err != nil {
		it.err = err
		return false
	}
	if err := it.data.init(b); err != nil {
		it.err = it.r.blockErr("data", it.r.index[i].h.offset, err)
		return false
	}
	it.block = i
	return true
}

// settle turns a block iterator's failure into the Iter's error.
func (it *Iter) settle(ok bool) bool {
	if !ok && it.data.err != nil && it.err == nil {
		it.err = it.r.blockErr("data", it.r.index[it.block].h.offset, it.data.err)
	}
	return ok
}

// forward moves to the first entry of the blocks after the current one,
// when the current block has no more entries.
func (it *Iter) forward(ok bool) bool {
	for !it.settle(ok) && it.err == nil && it.block+1 < len(it.r.index) {
		if !it.load(it.block + 1) {
			return false
		}
		ok = it.data.First()
	}
	return ok && it.err == nil
}

// backward moves to the last entry of the blocks before the current one,
// when the current block has no entries before the position.
func (it *Iter) backward(ok bool) bool {
	for !it.settle(ok) && it.err == nil && it.block > 0 {
		if !it.load(it.block - 1) {
			return false
		}
		ok = it.data.Last()
	}
	return ok && it.err == nil
}

// First moves to the first entry.
func (it *Iter) First() bool {
	if len(it.r.index) == 0 || !it.load(0) {
		return it.invalidate()
	}
	return it.forward(it.data.First())
}

// Last moves to the last entry.
func (it *Iter) Last() bool {
	if len(it.r.index) == 0 || !it.load(len(it.r.index)-1) {
		return it.invalidate()
	}
	return it.backward(it.data.Last())
}

// SeekGE moves to the first entry whose user key is >= key (its newest
// version).
func (it *Iter) SeekGE(key []byte) bool {
	return it.seekGE(base.InternalKey{UserKey: key, Trailer: maxTrailer})
}

// seekGE moves to the first entry >= target.
func (it *Iter) seekGE(target base.InternalKey) bool {
	i := it.r.searchIndex(target)
	if i == len(it.r.index) || !it.load(i) {
		return it.invalidate()
	}
	return it.forward(it.data.SeekGE(target))
}

// SeekLT moves to the last entry whose user key is < key (its oldest
// version).
func (it *Iter) SeekLT(key []byte) bool {
	target := base.InternalKey{UserKey: key, Trailer: maxTrailer}
	i := min(it.r.searchIndex(target), len(it.r.index)-1)
	if i < 0 || !it.load(i) {
		return it.invalidate()
	}
	return it.backward(it.data.SeekLT(target))
}

// Next moves to the next entry. After the last entry, or on an unpositioned
// Iter, it returns false.
func (it *Iter) Next() bool {
	if it.block < 0 || !it.data.valid {
		return false
	}
	return it.forward(it.data.Next())
}

// Prev moves to the previous entry. Before the first entry, or on an
// unpositioned Iter, it returns false.
func (it *Iter) Prev() bool {
	if it.block < 0 || !it.data.valid {
		return false
	}
	return it.backward(it.data.Prev())
}

// invalidate leaves the iterator unpositioned.
func (it *Iter) invalidate() bool {
	it.data.valid = false
	return false
}

// Key returns the current entry's key. Only meaningful after a positioning
// method returned true; its UserKey is valid until the next one.
func (it *Iter) Key() base.InternalKey { return it.data.ikey }

// Value returns the current entry's value (empty for a deletion). Only
// meaningful after a positioning method returned true. The bytes are never
// modified: they may be kept, but must not be modified.
func (it *Iter) Value() []byte { return it.data.val }

// Error returns the damage or I/O error that stopped the iterator, if any.
func (it *Iter) Error() error { return it.err }

// Close releases the iterator and returns Error(). A second Close returns
// the same.
func (it *Iter) Close() error {
	if !it.closed {
		it.closed = true
		it.data.valid = false
		it.data.data = nil
		it.block = -1
	}
	return it.err
}
