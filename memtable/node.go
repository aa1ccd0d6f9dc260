package memtable

// The node arena.
//
// Every skiplist node lives in one []byte allocated by New and never moved or
// freed while the memtable lives; a node is named by its uint32 byte offset in
// that arena. Offset 0 is never a node (it is nilNode). A node starts at an
// offset that is a multiple of 8 and is laid out as follows, all fields in
// native byte order (the arena is never persisted, so this layout is private
// and may change freely):
//
//	offset  size  field
//	     0     4  bufRef   index of the retained buffer holding key and value
//	     4     4  keyOff   key   = buf[keyOff : keyOff+keyLen]
//	     8     4  keyLen
//	    12     4  valOff   value = buf[valOff : valOff+valLen]
//	    16     4  valLen
//	    20     4  height   number of levels the node is linked in (1..maxHeight)
//	    24     8  trailer  seq<<8 | kind (see base.MakeTrailer)
//	    32     4  prev     level-0 predecessor
//	    36   4*h  next[h]  successor at each level 0..h-1
//
// A node of height h takes 36+4h bytes rounded up to 8: 40 bytes at height 1,
// 120 bytes at maxHeight.
//
// The first eight fields are written by the writer before the node is
// published and never change afterwards, so readers read them plainly: the
// atomic load that led a reader to the node orders those writes before its
// reads. prev and next are read and (once published) written atomically. The
// arena starts with 8 zero bytes (nilNode), then the head sentinel (smaller
// than every key, full height), then the tail sentinel (larger than every
// key, full height); every level of head initially points at tail.
//
// The arena carries maxNodeSize bytes of slack past its usable limit so that
// viewing any node as a full *node never points past the allocation (which
// checkptr, enabled by -race, would reject).

import (
	"sync/atomic"
	"unsafe"
)

const (
	// maxHeight is the number of levels of the skiplist. With p = 1/e it
	// serves e^20 (about 5*10^8) nodes without degrading, more than a full
	// 4 GiB arena holds.
	maxHeight = 20
	nodeAlign = 8
	// towerOff is the offset of next[0] in a node.
	towerOff = 36
	// maxNodeSize is the arena footprint of a node of maxHeight levels.
	maxNodeSize = (towerOff + 4*maxHeight + nodeAlign - 1) &^ (nodeAlign - 1)

	nilNode  uint32 = 0
	headNode uint32 = nodeAlign
	tailNode uint32 = headNode + maxNodeSize
	// arenaStart is the arena bytes taken by the nil pad and both sentinels.
	arenaStart = nodeAlign + 2*maxNodeSize
	// maxArena bounds the usable arena so that every offset fits a uint32.
	maxArena = (1<<32 - 1 - maxNodeSize) &^ (nodeAlign - 1)
)

// node is the view of a node in the arena. Only the first height entries of
// next exist in the arena; the others belong to the following node.
type node struct {
	bufRef  uint32
	keyOff  uint32
	keyLen  uint32
	valOff  uint32
	valLen  uint32
	height  uint32
	trailer uint64
	prev    uint32
	next    [maxHeight]uint32
}

// Compile-time checks that node matches the documented layout.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(node{}.trailer)-24]
	_ = [1]struct{}{}[unsafe.Offsetof(node{}.prev)-32]
	_ = [1]struct{}{}[unsafe.Offsetof(node{}.next)-towerOff]
	_ = [1]struct{}{}[unsafe.Sizeof(node{})-maxNodeSize]
)

// nodeSize returns the arena footprint of a node of height h.
func nodeSize(h int) uint32 {
	return uint32(towerOff+4*h+nodeAlign-1) &^ (nodeAlign - 1)
}

// arena is the node store. It never changes after newArena: the writer
// tracks the bytes handed out (writer.used).
type arena struct {
	buf   []byte
	base  unsafe.Pointer
	limit uint32 // usable bytes; len(buf) = limit + maxNodeSize
}

func newArena(limit uint32) arena {
	buf := make([]byte, int(limit)+maxNodeSize)
	return arena{buf: buf, base: unsafe.Pointer(unsafe.SliceData(buf)), limit: limit}
}

// node returns the node at offset off. off must be a node offset.
func (a *arena) node(off uint32) *node {
	return (*node)(unsafe.Add(a.base, off))
}

func (n *node) loadNext(level int) uint32 { return atomic.LoadUint32(&n.next[level]) }

func (n *node) storeNext(level int, off uint32) { atomic.StoreUint32(&n.next[level], off) }

func (n *node) loadPrev() uint32 { return atomic.LoadUint32(&n.prev) }

func (n *node) storePrev(off uint32) { atomic.StoreUint32(&n.prev, off) }
