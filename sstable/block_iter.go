package sstable

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/base"
)

// blockIter walks the entries of one block that checkBlock accepted. Keys are
// rebuilt from their prefix compression into key; values alias the block.
// Backward steps decode a restart interval forward once and keep its
// entries in cache, so that Prev costs O(1) amortized.
//
// Every decode is still bounds-checked: should a block that was never
// checked reach it, the iterator stops with err set, never panics.
type blockIter struct {
	data   []byte
	layout blockLayout
	offset int // start of the current entry; layout.end when invalid
	next   int // start of the entry after it
	key    []byte
	ikey   base.InternalKey
	val    []byte
	valid  bool
	err    error

	cache     []cachedEntry // entries of one restart interval, in order
	cacheKeys []byte        // their keys, back to back
	cacheIdx  int           // index of the current entry in cache, -1 if none
}

// cachedEntry is an entry decoded by a backward step.
type cachedEntry struct {
	offset, next     int // the entry's start and the next entry's
	keyStart, keyEnd int // the key is cacheKeys[keyStart:keyEnd]
	valStart, vEnd   int // the value is data[valStart:vEnd]
}

// init points the iterator at block data, unpositioned. It keeps its
// buffers.
func (i *blockIter) init(data []byte) error {
	l, err := layoutOf(data)
	*i = blockIter{key: i.key[:0], cache: i.cache[:0], cacheKeys: i.cacheKeys[:0], cacheIdx: -1}
	if err != nil {
		i.err = err
		return err
	}
	i.data, i.layout, i.offset = data, l, l.end
	return nil
}

// invalidate leaves the iterator unpositioned.
func (i *blockIter) invalidate() bool {
	i.valid = false
	i.offset = i.layout.end
	i.cacheIdx = -1
	return false
}

// corrupt records damage found at off and leaves the iterator unpositioned.
func (i *blockIter) corrupt(off int) bool {
	if i.err == nil {
		i.err = fmt.Errorf("bad entry at %d", off)
	}
	return i.invalidate()
}

// decodeAt positions the iterator on the entry at off, whose shared prefix
// comes from the current i.key.
func (i *blockIter) decodeAt(off int) bool {
	h, ok := decodeEntry(i.data, off, i.layout.end)
	if !ok || h.shared > len(i.key) {
		return i.corrupt(off)
	}
	i.key = append(i.key[:h.shared], i.data[h.p:h.p+h.unshared]...)
	if i.ikey, ok = decodeKey(i.key); !ok {
		return i.corrupt(off)
	}
	v := h.p + h.unshared
	i.val = i.data[v : v+h.valueLen : v+h.valueLen]
	i.offset, i.next, i.valid = off, h.next(), true
	return true
}

// restartKey decodes the key of restart r in place (restart keys are whole).
func (i *blockIter) restartKey(r int) (base.InternalKey, bool) {
	off := restart(i.data, i.layout, r)
	h, ok := decodeEntry(i.data, off, i.layout.end)
	if !ok || h.shared != 0 {
		return base.InternalKey{}, false
	}
	return decodeKey(i.data[h.p : h.p+h.unshared])
}

// searchRestarts returns the index of the first restart whose key is >=
// target (numRestarts if none), or -1 on damage.
func (i *blockIter) searchRestarts(target base.InternalKey) int {
	lo, hi := 0, i.layout.numRestarts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		k, ok := i.restartKey(mid)
		if !ok {
			i.corrupt(restart(i.data, i.layout, mid))
			return -1
		}
		if base.CompareInternal(k, target) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// First moves to the first entry.
func (i *blockIter) First() bool {
	if i.err != nil || i.layout.end == 0 {
		return i.invalidate()
	}
	i.cacheIdx = -1
	i.key = i.key[:0]
	return i.decodeAt(0)
}

// Next moves to the next entry.
func (i *blockIter) Next() bool {
	if !i.valid || i.next >= i.layout.end {
		return i.invalidate()
	}
	i.cacheIdx = -1
	return i.decodeAt(i.next)
}

// SeekGE moves to the first entry >= target.
func (i *blockIter) SeekGE(target base.InternalKey) bool {
	if i.err != nil || i.layout.numRestarts == 0 {
		return i.invalidate()
	}
	r := i.searchRestarts(target)
	if r < 0 {
		return false
	}
	start := 0
	if r > 0 {
		start = restart(i.data, i.layout, r-1)
	}
	i.cacheIdx = -1
	i.key = i.key[:0]
	ok := i.decodeAt(start)
	for ok && base.CompareInternal(i.ikey, target) < 0 {
		ok = i.Next()
	}
	return ok
}

// SeekLT moves to the last entry < target.
func (i *blockIter) SeekLT(target base.InternalKey) bool {
	if i.err != nil || i.layout.numRestarts == 0 {
		return i.invalidate()
	}
	r := i.searchRestarts(target)
	if r <= 0 {
		return i.invalidate()
	}
	return i.fillCache(restart(i.data, i.layout, r-1), i.layout.end, &target)
}

// Last moves to the last entry.
func (i *blockIter) Last() bool {
	if i.err != nil || i.layout.numRestarts == 0 {
		return i.invalidate()
	}
	return i.fillCache(restart(i.data, i.layout, i.layout.numRestarts-1), i.layout.end, nil)
}

// Prev moves to the previous entry.
func (i *blockIter) Prev() bool {
	if !i.valid {
		return false
	}
	if i.cacheIdx > 0 {
		i.cacheIdx--
		return i.loadCached()
	}
	target := i.offset
	if target == 0 {
		return i.invalidate()
	}
	lo, hi := 0, i.layout.numRestarts // first restart >= target
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if restart(i.data, i.layout, mid) < target {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return i.corrupt(target)
	}
	return i.fillCache(restart(i.data, i.layout, lo-1), target, nil)
}

// fillCache decodes the entries from the restart at start while they begin
// before stop and (if target is set) are below target, caches them and
// moves to the last one.
func (i *blockIter) fillCache(start, stop int, target *base.InternalKey) bool {
	i.cache, i.cacheKeys = i.cache[:0], i.cacheKeys[:0]
	i.key = i.key[:0]
	for off := start; off < stop; off = i.next {
		if !i.decodeAt(off) {
			return false
		}
		if target != nil && base.CompareInternal(i.ikey, *target) >= 0 {
			break
		}
		v := i.next - len(i.val)
		i.cache = append(i.cache, cachedEntry{
			offset: off, next: i.next,
			keyStart: len(i.cacheKeys), keyEnd: len(i.cacheKeys) + len(i.key),
			valStart: v, vEnd: i.next,
		})
		i.cacheKeys = append(i.cacheKeys, i.key...)
	}
	if len(i.cache) == 0 {
		return i.invalidate()
	}
	i.cacheIdx = len(i.cache) - 1
	return i.loadCached()
}

// loadCached positions the iterator on cache[cacheIdx].
func (i *blockIter) loadCached() bool {
	e := i.cache[i.cacheIdx]
	i.key = append(i.key[:0], i.cacheKeys[e.keyStart:e.keyEnd]...)
	n := len(i.key) - 8
	i.ikey = base.InternalKey{UserKey: i.key[:n:n], Trailer: binary.LittleEndian.Uint64(i.key[n:])}
	i.val = i.data[e.valStart:e.vEnd:e.vEnd]
	i.offset, i.next, i.valid = e.offset, e.next, true
	return true
}

// blockGet finds the first entry >= target in a checked block, for Get: the
// same search as SeekGE, without an iterator, so that the key being rebuilt
// lives on the stack. It returns the entry's value and kind when its user
// key is target's (match), and next when every entry is below target (the
// answer, if any, starts the next block).
func blockGet(b []byte, target base.InternalKey) (val []byte, kind base.Kind, match, next bool, err error) {
	it := blockIter{data: b}
	if it.layout, err = layoutOf(b); err != nil || it.layout.numRestarts == 0 {
		return nil, 0, false, err == nil, err
	}
	r := it.searchRestarts(target)
	if r < 0 {
		return nil, 0, false, false, it.err
	}
	off := 0
	if r > 0 {
		off = restart(b, it.layout, r-1)
	}
	var buf [128]byte
	key := buf[:0]
	for off < it.layout.end {
		h, ok := decodeEntry(b, off, it.layout.end)
		if !ok || h.shared > len(key) {
			return nil, 0, false, false, fmt.Errorf("bad entry at %d", off)
		}
		key = append(key[:h.shared], b[h.p:h.p+h.unshared]...)
		k, ok := decodeKey(key)
		if !ok {
			return nil, 0, false, false, fmt.Errorf("bad key at %d", off)
		}
		if base.CompareInternal(k, target) >= 0 {
			if string(k.UserKey) != string(target.UserKey) {
				return nil, 0, false, false, nil
			}
			v := h.p + h.unshared
			return b[v : v+h.valueLen : v+h.valueLen], k.Kind(), true, false, nil
		}
		off = h.next()
	}
	return nil, 0, false, true, nil
}
