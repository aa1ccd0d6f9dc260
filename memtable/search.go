package memtable

import (
	"bytes"
	"math"
)

// cmpTrailer orders trailers of one user key: newest (largest) first.
func cmpTrailer(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// bufOf returns the retained buffer of nd. *d is the caller's copy of the
// directory; it is reloaded when it predates nd's buffer. Any directory long
// enough to index a buffer holds it (see MemTable.dir).
func (m *MemTable) bufOf(d *[][]byte, nd *node) []byte {
	if int(nd.bufRef) >= len(*d) {
		*d = *m.dir.Load()
	}
	return (*d)[nd.bufRef]
}

// userKey returns the user key of nd, a node that is not a sentinel.
func (m *MemTable) userKey(d *[][]byte, nd *node) []byte {
	end := nd.keyOff + nd.keyLen
	return m.bufOf(d, nd)[nd.keyOff:end:end]
}

// value returns the value of nd, a node that is not a sentinel.
func (m *MemTable) value(d *[][]byte, nd *node) []byte {
	end := nd.valOff + nd.valLen
	return m.bufOf(d, nd)[nd.valOff:end:end]
}

// target is a position being searched for, with the reader's directory.
type target struct {
	d       *[][]byte
	key     []byte
	trailer uint64
}

// cmp compares node off (not a sentinel) with the target as
// base.CompareInternal does: user key ascending, then trailer descending.
func (m *MemTable) cmp(t *target, off uint32) int {
	nd := m.arena.node(off)
	if c := bytes.Compare(m.userKey(t.d, nd), t.key); c != 0 {
		return c
	}
	return cmpTrailer(nd.trailer, t.trailer)
}

// seekLevel walks level from prev, which is before the target, to the
// first node at or after it, returning that node's predecessor, the node
// and its comparison with the target (1 for tail). bound is a node known to
// be at or after the target with comparison bcmp (the answer of the level
// above), so reaching it needs no comparison. Safe for readers.
func (m *MemTable) seekLevel(t *target, level int, prev, bound uint32, bcmp int) (uint32, uint32, int) {
	for {
		next := m.arena.node(prev).loadNext(level)
		if next == bound {
			return prev, next, bcmp
		}
		if next == tailNode {
			return prev, next, 1
		}
		if c := m.cmp(t, next); c >= 0 {
			return prev, next, c
		}
		prev = next
	}
}

// seek returns the level-0 neighbours of the target: the last node before it
// (or head), the first node at or after it (or tail), and that node's
// comparison with the target. Safe for readers.
func (m *MemTable) seek(t *target) (prev, next uint32, c int) {
	prev, next, c = headNode, tailNode, 1
	for l := int(m.height.Load()) - 1; l >= 0; l-- {
		prev, next, c = m.seekLevel(t, l, prev, next, c)
	}
	return prev, next, c
}

// findSplice sets the writer's splice to the position of (key, trailer) and
// reports whether that internal key is present. It starts from the previous
// splice (pebble's Inserter idea): when the key follows the previous one it
// climbs while the splice's successor is still before the key, then searches
// down from the last successor passed, so ascending inserts cost O(1)
// comparisons and nearby ones O(log distance). A key at or before the
// previous splice's predecessor is searched from the top.
func (m *MemTable) findSplice(key []byte, trailer uint64) bool {
	w := &m.w
	t := target{d: &w.dir, key: key, trailer: trailer}
	top := int(m.height.Load())
	lvl, c := 0, 1
	prev, next := headNode, tailNode
	// Splice levels nest (prev[l+1] <= prev[l] and next[l] <= next[l+1]), so
	// one check of prev[0] covers every level.
	if p := w.splPrev[0]; p != headNode && m.cmp(&t, p) >= 0 {
		lvl = top
	} else {
		// Climb while the splice's next is still before the key.
		for ; lvl < top; lvl++ {
			if next = w.splNext[lvl]; next == tailNode {
				c = 1
				break
			}
			if c = m.cmp(&t, next); c >= 0 {
				break
			}
		}
		if lvl == top {
			next, c = tailNode, 1
		}
		if lvl > 0 {
			// Known to be before the key and at least lvl levels tall.
			prev = w.splNext[lvl-1]
		} else {
			prev = w.splPrev[0]
		}
	}
	for l := lvl - 1; l >= 0; l-- {
		prev, next, c = m.seekLevel(&t, l, prev, next, c)
		w.splPrev[l], w.splNext[l] = prev, next
	}
	return c == 0
}

// link publishes node off of height h at the writer's splice, bottom level
// first, so a reader that finds it at some level finds it at every level
// below. It leaves the splice just after the new node.
func (m *MemTable) link(off uint32, nd *node, h int) {
	w := &m.w
	for i := range h {
		nd.next[i] = w.splNext[i]
	}
	nd.prev = w.splPrev[0]
	if uint32(h) > m.height.Load() {
		m.height.Store(uint32(h))
	}
	for i := range h {
		m.arena.node(w.splPrev[i]).storeNext(i, off)
		w.splPrev[i] = off
	}
	m.arena.node(w.splNext[0]).storePrev(off)
}

// heightThresholds[h] is (1/e)^h scaled to a uint32: a node grows past
// height h while a uniform uint32 is at or below it. p = 1/e minimizes the
// expected comparisons of a search.
var heightThresholds = func() (t [maxHeight]uint32) {
	p := 1.0
	for i := range t {
		t[i] = uint32(p * math.MaxUint32)
		p /= math.E
	}
	return t
}()

// randomHeight draws a node height: 1 + k with probability (1-p)p^k, p = 1/e,
// capped at maxHeight, from the memtable's own xorshift generator (the
// single writer needs no lock).
func (w *writer) randomHeight() int {
	x := w.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	w.rng = x
	r := uint32(x >> 32)
	h := 1
	for h < maxHeight && r <= heightThresholds[h] {
		h++
	}
	return h
}
