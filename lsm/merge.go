package lsm

import (
	"github.com/stratadb/strata/internal/base"
)

// internalIterator walks internal keys (user key ascending, trailer
// descending) of one source: a memtable, a transaction overlay or, later, a
// table. Positioning methods report whether the iterator is valid. A key is
// valid only until the iterator moves (a table rebuilds keys in a reused
// buffer); values alias immutable memory that stays valid while the source
// is referenced.
type internalIterator interface {
	First() bool
	Last() bool
	// SeekGE moves to the first entry whose user key is >= key.
	SeekGE(key []byte) bool
	// SeekLT moves to the last entry whose user key is < key.
	SeekLT(key []byte) bool
	Next() bool
	Prev() bool
	Key() base.InternalKey
	Value() []byte
}

// mergingIter merges several internalIterators through a binary heap. It
// moves in one direction at a time: Next is valid after First or SeekGE,
// Prev after Last or SeekLT. The user-facing Iterator turns a change of
// direction into a seek, which keeps this type small.
//
// A source that stops with an error (a table that cannot be read) stops
// the merge: going on without it would return the older versions it
// hides. The merge is then exhausted and Error returns the error.
type mergingIter struct {
	iters   []internalIterator
	keys    []base.InternalKey // current key of each iterator
	heap    []int              // indexes of valid iterators
	reverse bool
	err     error
}

func (m *mergingIter) init(iters []internalIterator) {
	m.iters = iters
	if cap(m.keys) < len(iters) {
		m.keys = make([]base.InternalKey, len(iters))
		m.heap = make([]int, 0, len(iters))
	}
	m.keys = m.keys[:len(iters)]
}

func (m *mergingIter) First() bool {
	return m.position(false, func(it internalIterator) bool { return it.First() })
}

func (m *mergingIter) Last() bool {
	return m.position(true, func(it internalIterator) bool { return it.Last() })
}

func (m *mergingIter) SeekGE(key []byte) bool {
	return m.position(false, func(it internalIterator) bool { return it.SeekGE(key) })
}

func (m *mergingIter) SeekLT(key []byte) bool {
	return m.position(true, func(it internalIterator) bool { return it.SeekLT(key) })
}

func (m *mergingIter) position(reverse bool, move func(internalIterator) bool) bool {
	m.reverse = reverse
	m.heap = m.heap[:0]
	m.err = nil
	for i, it := range m.iters {
		if move(it) {
			m.push(i, it)
		} else if m.failed(it) {
			return false
		}
	}
	m.heapify()
	return len(m.heap) > 0
}

// failed reports whether it stopped with an error, which then stops the
// merge.
func (m *mergingIter) failed(it internalIterator) bool {
	if e, ok := it.(interface{ Error() error }); ok {
		if err := e.Error(); err != nil {
			m.err = err
			m.heap = m.heap[:0]
			return true
		}
	}
	return false
}

func (m *mergingIter) push(i int, it internalIterator) {
	m.keys[i] = it.Key()
	m.heap = append(m.heap, i)
}

// Next advances the smallest source. Only valid when moving forward.
func (m *mergingIter) Next() bool { return m.step(true) }

// Prev moves back the largest source. Only valid when moving backward.
func (m *mergingIter) Prev() bool { return m.step(false) }

// step moves the top source forward or backward and restores the heap. A
// flag rather than a function value keeps the per-key cost to the source's
// own call.
func (m *mergingIter) step(forward bool) bool {
	if len(m.heap) == 0 {
		return false
	}
	top := m.heap[0]
	it := m.iters[top]
	var ok bool
	if forward {
		ok = it.Next()
	} else {
		ok = it.Prev()
	}
	if ok {
		m.keys[top] = it.Key()
	} else {
		if m.failed(it) {
			return false
		}
		m.pop()
	}
	if len(m.heap) > 1 {
		m.down(0)
	}
	return len(m.heap) > 0
}

// pop removes the top of the heap, leaving the last entry in its place.
func (m *mergingIter) pop() {
	last := len(m.heap) - 1
	m.heap[0] = m.heap[last]
	m.heap = m.heap[:last]
}

func (m *mergingIter) Valid() bool { return len(m.heap) > 0 }

func (m *mergingIter) Key() base.InternalKey { return m.keys[m.heap[0]] }

func (m *mergingIter) Value() []byte { return m.iters[m.heap[0]].Value() }

// less orders heap entries: smallest internal key first going forward,
// largest first going backward.
func (m *mergingIter) less(a, b int) bool {
	c := base.CompareInternal(m.keys[m.heap[a]], m.keys[m.heap[b]])
	if m.reverse {
		return c > 0
	}
	return c < 0
}

func (m *mergingIter) heapify() {
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
}

func (m *mergingIter) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			return
		}
		m.heap[i], m.heap[j] = m.heap[j], m.heap[i]
		i = j
	}
}

// Error returns the error of the source that stopped the merge, if any.
// Callers check it whenever the merge ends: an exhausted merge with an
// error is damage, not the end of the data.
func (m *mergingIter) Error() error { return m.err }
