package vfs

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// memNode is a file or a directory of a MemFS.
//
// A directory's entries live in children (the current state) and
// syncedChildren (the state as of the last Sync of the directory); both
// are guarded by MemFS.mu. A file's bytes live in mu.data (current) and
// mu.synced (as of the last File.Sync), guarded by mu. Lock order:
// MemFS.mu before memNode.mu.
type memNode struct {
	isDir          bool
	children       map[string]*memNode
	syncedChildren map[string]*memNode

	mu struct {
		sync.RWMutex
		data   []byte
		synced []byte
		// shared reports that synced aliases the start of data's array,
		// so bytes below len(synced) must be copied before they change.
		shared  bool
		modTime time.Time
	}
}

func newMemDir() *memNode {
	n := &memNode{
		isDir:          true,
		children:       make(map[string]*memNode),
		syncedChildren: make(map[string]*memNode),
	}
	n.mu.modTime = time.Now()
	return n
}

func newMemFile() *memNode {
	n := &memNode{}
	n.mu.modTime = time.Now()
	return n
}

// readAt copies the file's bytes at off into p, with io.ReaderAt's
// contract.
func (n *memNode) readAt(p []byte, off int64) (int, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if off >= int64(len(n.mu.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	c := copy(p, n.mu.data[off:])
	if c < len(p) {
		return c, io.EOF
	}
	return c, nil
}

// writeAt writes p at off, extending the file (with zeros before off if
// off is past the end) as needed.
func (n *memNode) writeAt(p []byte, off int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(n.mu.data)) {
		n.resizeLocked(end)
	}
	n.unshareLocked(off)
	copy(n.mu.data[off:], p)
	n.mu.modTime = time.Now()
}

// truncate sets the file's size, zero-filling when it grows.
func (n *memNode) truncate(size int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resizeLocked(size)
	n.mu.modTime = time.Now()
}

// sync makes the current bytes the synced bytes. It copies nothing: synced
// aliases data until data's bytes below len(synced) change.
func (n *memNode) sync() {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.mu.data
	n.mu.synced = d[:len(d):len(d)]
	n.mu.shared = true
}

func (n *memNode) size() int64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return int64(len(n.mu.data))
}

func (n *memNode) modTime() time.Time {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.mu.modTime
}

// unshareLocked gives synced its own copy if the bytes of data from off
// on are about to change and synced aliases some of them.
func (n *memNode) unshareLocked(off int64) {
	if n.mu.shared && off < int64(len(n.mu.synced)) {
		n.mu.synced = bytes.Clone(n.mu.synced)
		n.mu.shared = false
	}
}

// resizeLocked sets len(data) to size; new bytes are zero.
func (n *memNode) resizeLocked(size int64) {
	d := n.mu.data
	old := int64(len(d))
	switch {
	case size <= old:
		n.mu.data = d[:size]
	case size <= int64(cap(d)):
		n.unshareLocked(old)
		d = d[:size]
		clear(d[old:])
		n.mu.data = d
	default:
		nd := make([]byte, size, max(size, 2*int64(cap(d))))
		copy(nd, d)
		n.mu.data = nd
		n.mu.shared = false
	}
}
