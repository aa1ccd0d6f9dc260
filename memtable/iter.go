package memtable

import "github.com/stratadb/strata/internal/base"

// Iter walks every entry of a memtable in internal-key order (user key
// ascending, trailer descending), with no sequence-number filtering. It sees
// every entry added before it was positioned and may see entries added while
// it runs; it never blocks the writer. An Iter is used by one goroutine at a
// time; many Iters may run concurrently. The zero Iter is unusable: get one
// from NewIter or InitIter. No method allocates. An Iter needs no Close: it
// is released by dropping it.
type Iter struct {
	m   *MemTable
	dir [][]byte
	nd  uint32 // current node, nilNode when invalid
	key base.InternalKey
	val []byte
}

// NewIter returns an unpositioned iterator over m. Safe to call concurrently
// with anything.
func (m *MemTable) NewIter() *Iter {
	it := &Iter{}
	m.InitIter(it)
	return it
}

// InitIter makes *it an unpositioned iterator over m, reusing its storage so
// that an Iter held by value costs no allocation. Safe to call concurrently
// with anything (but not with other uses of the same Iter).
func (m *MemTable) InitIter(it *Iter) {
	*it = Iter{m: m, dir: *m.dir.Load()}
}

// set positions the iterator at off, which may be a sentinel (invalid).
func (it *Iter) set(off uint32) bool {
	if off == headNode || off == tailNode {
		*it = Iter{m: it.m, dir: it.dir}
		return false
	}
	it.nd = off
	nd := it.m.arena.node(off)
	it.key = base.InternalKey{UserKey: it.m.userKey(&it.dir, nd), Trailer: nd.trailer}
	it.val = it.m.value(&it.dir, nd)
	return true
}

// First moves to the first entry and reports whether there is one.
func (it *Iter) First() bool {
	return it.set(it.m.arena.node(headNode).loadNext(0))
}

// Last moves to the last entry and reports whether there is one.
func (it *Iter) Last() bool {
	return it.set(it.m.arena.node(tailNode).loadPrev())
}

// SeekGE moves to the first entry whose user key is >= userKey (that key's
// newest version) and reports whether there is one.
func (it *Iter) SeekGE(userKey []byte) bool {
	t := target{d: &it.dir, key: userKey, trailer: seekUser}
	_, next, _ := it.m.seek(&t)
	return it.set(next)
}

// SeekLT moves to the last entry whose user key is < userKey and reports
// whether there is one.
func (it *Iter) SeekLT(userKey []byte) bool {
	t := target{d: &it.dir, key: userKey, trailer: seekUser}
	prev, _, _ := it.m.seek(&t)
	return it.set(prev)
}

// Next moves to the following entry and reports whether there is one. On an
// invalid iterator it returns false and stays invalid.
func (it *Iter) Next() bool {
	if it.nd == nilNode {
		return false
	}
	return it.set(it.m.arena.node(it.nd).loadNext(0))
}

// Prev moves to the preceding entry and reports whether there is one. On an
// invalid iterator it returns false and stays invalid. An entry added
// concurrently just before the current one may be skipped.
func (it *Iter) Prev() bool {
	if it.nd == nilNode {
		return false
	}
	return it.set(it.m.arena.node(it.nd).loadPrev())
}

// Valid reports whether the iterator is at an entry.
func (it *Iter) Valid() bool { return it.nd != nilNode }

// Key returns the current entry's internal key; the zero InternalKey when
// invalid. UserKey aliases a retained buffer: it stays valid while the
// memtable is reachable and must not be modified.
func (it *Iter) Key() base.InternalKey { return it.key }

// Value returns the current entry's value (nil when invalid), aliasing a
// retained buffer like Key's UserKey.
func (it *Iter) Value() []byte { return it.val }
