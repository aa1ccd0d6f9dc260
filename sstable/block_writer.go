package sstable

import "encoding/binary"

// blockWriter builds a data or index block (layout in writer.go). Its
// buffers are reused from block to block, so that adding allocates nothing
// in steady state.
type blockWriter struct {
	buf      []byte
	restarts []uint32
	interval int // entries per restart
	counter  int // entries since the last restart
	entries  int
	lastKey  []byte
}

// init prepares an empty block with a restart every interval entries.
func (w *blockWriter) init(interval int) {
	w.interval = interval
	w.reset()
}

// reset empties the block, keeping its buffers.
func (w *blockWriter) reset() {
	w.buf = w.buf[:0]
	w.restarts = w.restarts[:0]
	w.counter = w.interval
	w.entries = 0
	w.lastKey = w.lastKey[:0]
}

// add appends an entry; key must sort after the previous one.
func (w *blockWriter) add(key, value []byte) {
	shared := 0
	if w.counter < w.interval {
		shared = commonPrefix(w.lastKey, key)
	} else {
		w.restarts = append(w.restarts, uint32(len(w.buf)))
		w.counter = 0
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(key)-shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
	w.buf = append(w.buf, key[shared:]...)
	w.buf = append(w.buf, value...)
	w.lastKey = append(w.lastKey[:0], key...)
	w.counter++
	w.entries++
}

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// estimatedSize is the size the block would have if finished now.
func (w *blockWriter) estimatedSize() int {
	return len(w.buf) + 4*len(w.restarts) + 4
}

// finish appends the restart array and returns the block's raw bytes, valid
// until the next reset.
func (w *blockWriter) finish() []byte {
	for _, r := range w.restarts {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, r)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.restarts)))
	return w.buf
}
