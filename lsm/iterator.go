package lsm

import (
	"bytes"
	"fmt"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/invariants"
	"github.com/stratadb/strata/memtable"
)

// overlaySeqBase is the sequence number given to the writes of open
// transactions when they are merged with committed data: above every
// committed sequence number, and ordered among themselves by write stamp so
// that the latest write wins.
const overlaySeqBase base.SeqNum = 1 << 55

// Iterator walks a point-in-time view of a keyspace in key order, within the
// bounds of its IterOptions. Positioning methods (First, Last, SeekGE,
// SeekLT, Next, Prev) return whether the iterator is at an entry.
//
// An Iterator is for one goroutine at a time. Key and Value return slices
// that stay valid until the next positioning call or Close; copy them to
// keep them. Close it when done; Close is idempotent. An Iterator made by a
// transaction keeps seeing the transaction as it was when the iterator was
// made, however the transaction is written afterwards.
type Iterator struct {
	db        *DB
	merge     mergingIter
	memIters  []memtable.Iter
	ovIters   []overlayIter
	srcs      []internalIterator
	tables    tableSources
	rs        *readState
	ns        base.NamespaceID
	snap      base.SeqNum
	lower     []byte // prefixed, inclusive
	upper     []byte // prefixed, exclusive
	prefixLen int
	seekBuf   []byte
	key       []byte // prefixed; a copy in keyBuf (sources may reuse theirs)
	keyBuf    []byte
	skipBuf   []byte
	value     []byte
	valid     bool
	reverse   bool
	err       error
	closed    bool
}

// visible reports whether a version with this sequence number belongs to the
// iterator's view: committed at or before the snapshot, or an open
// transaction's write merged into this view.
func (it *Iterator) visible(seq base.SeqNum) bool {
	return seq <= it.snap || seq >= overlaySeqBase
}

// usable reports whether the iterator may move; it records why not. Every
// positioning call checks it, so an iterator stops with ErrClosed at its
// first move after the DB closed.
func (it *Iterator) usable() bool {
	if !it.closed && it.err == nil && it.db.closed.Load() {
		it.err = ErrClosed
	}
	if it.closed || it.err != nil {
		it.valid = false
		return false
	}
	return true
}

// setErr records err, from a source, as the iterator's error (see
// DB.readErr).
func (it *Iterator) setErr(err error) { it.err = it.db.readErr(err) }

// First moves to the first key of the view.
func (it *Iterator) First() bool {
	if !it.usable() {
		return false
	}
	it.merge.SeekGE(it.lower)
	return it.findNext()
}

// Last moves to the last key of the view.
func (it *Iterator) Last() bool {
	if !it.usable() {
		return false
	}
	if it.upper == nil {
		it.merge.Last()
	} else {
		it.merge.SeekLT(it.upper)
	}
	return it.findPrev()
}

// SeekGE moves to the first key >= key.
func (it *Iterator) SeekGE(key []byte) bool {
	if !it.usable() {
		return false
	}
	it.merge.SeekGE(it.clampLower(key))
	return it.findNext()
}

// SeekLT moves to the last key < key.
func (it *Iterator) SeekLT(key []byte) bool {
	if !it.usable() {
		return false
	}
	it.merge.SeekLT(it.clampUpper(key))
	return it.findPrev()
}

// Next moves to the next key.
func (it *Iterator) Next() bool {
	if !it.valid || !it.usable() {
		return false
	}
	if it.reverse {
		it.merge.SeekGE(it.key)
	}
	it.skipVersions(it.key)
	if invariants.Enabled {
		return it.checkedNext()
	}
	return it.findNext()
}

// checkedNext is findNext checking that the key moved forward (invariants
// build tag only).
func (it *Iterator) checkedNext() bool {
	prev := append([]byte(nil), it.key...)
	ok := it.findNext()
	if ok && bytes.Compare(it.key, prev) <= 0 {
		panic(fmt.Sprintf("lsm: invariant: iterator went from %q to %q going forward", prev, it.key))
	}
	return ok
}

// Prev moves to the previous key.
func (it *Iterator) Prev() bool {
	if !it.valid || !it.usable() {
		return false
	}
	if !it.reverse {
		it.merge.SeekLT(it.key)
	}
	return it.findPrev()
}

// Valid reports whether the iterator is at an entry.
func (it *Iterator) Valid() bool { return it.valid }

// Key returns the current key. It is valid until the next positioning call.
func (it *Iterator) Key() []byte {
	if !it.valid {
		return nil
	}
	return it.key[it.prefixLen:]
}

// Value returns the current value. It is valid until the next positioning
// call.
func (it *Iterator) Value() []byte {
	if !it.valid {
		return nil
	}
	return it.value
}

// Error returns the error that stopped the iterator, if any.
func (it *Iterator) Error() error { return it.err }

// Close releases the iterator and returns its error, if any. Closing twice
// is harmless.
func (it *Iterator) Close() error {
	if it.closed {
		return it.err
	}
	it.closed = true
	it.valid = false
	it.tables.close()
	it.rs.unref()
	it.merge = mergingIter{}
	it.memIters, it.ovIters, it.srcs, it.rs = nil, nil, nil, nil
	return it.err
}

// skipVersions advances the merged sources past every version of ukey.
func (it *Iterator) skipVersions(ukey []byte) {
	m := &it.merge
	for m.Valid() && bytes.Equal(m.Key().UserKey, ukey) {
		m.Next()
	}
}

// findNext settles forward on the next live key at or after the merged
// position: the newest visible version of each key wins, tombstones hide it.
func (it *Iterator) findNext() bool {
	m := &it.merge
	for m.Valid() {
		k := m.Key()
		if it.upper != nil && bytes.Compare(k.UserKey, it.upper) >= 0 {
			break
		}
		if !it.visible(k.Seq()) {
			m.Next()
			continue
		}
		if k.Kind() == base.KindDelete {
			it.skipBuf = append(it.skipBuf[:0], k.UserKey...)
			it.skipVersions(it.skipBuf)
			continue
		}
		it.keyBuf = append(it.keyBuf[:0], k.UserKey...)
		it.key, it.value, it.valid, it.reverse = it.keyBuf, m.Value(), true, false
		return true
	}
	it.valid = false
	it.setErr(m.Error())
	return false
}

// findPrev settles backward on the previous live key. Going backward the
// versions of a key come oldest first, so the last visible one seen before
// the key changes is the newest.
func (it *Iterator) findPrev() bool {
	m := &it.merge
	var value []byte
	kind, have := base.KindDelete, false
	for m.Valid() {
		k := m.Key()
		if bytes.Compare(k.UserKey, it.lower) < 0 {
			break
		}
		if it.visible(k.Seq()) {
			if have && kind == base.KindSet && !bytes.Equal(k.UserKey, it.keyBuf) {
				break
			}
			it.keyBuf = append(it.keyBuf[:0], k.UserKey...)
			value, kind, have = m.Value(), k.Kind(), true
		}
		m.Prev()
	}
	if err := m.Error(); err != nil {
		it.setErr(err)
		it.valid = false
		return false
	}
	if !have || kind != base.KindSet {
		it.valid = false
		return false
	}
	it.key, it.value, it.valid, it.reverse = it.keyBuf, value, true, true
	return true
}

// clampLower returns the prefixed form of key, raised to the lower bound.
func (it *Iterator) clampLower(key []byte) []byte {
	it.seekBuf = append(it.seekBuf[:it.prefixLen], key...)
	if bytes.Compare(it.seekBuf, it.lower) < 0 {
		return it.lower
	}
	return it.seekBuf
}

// clampUpper returns the prefixed form of key, lowered to the upper bound.
func (it *Iterator) clampUpper(key []byte) []byte {
	it.seekBuf = append(it.seekBuf[:it.prefixLen], key...)
	if it.upper != nil && bytes.Compare(it.seekBuf, it.upper) > 0 {
		return it.upper
	}
	return it.seekBuf
}
