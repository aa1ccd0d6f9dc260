package txn

import (
	"encoding/binary"
	"sync"

	"github.com/google/btree"
	"github.com/stratadb/strata/internal/base"
)

const (
	// ItemOverhead is the approximate memory, in bytes, that the index of an
	// overlay spends on each distinct key, on 64-bit platforms: a 32-byte
	// btree element in partly filled nodes (with the nodes' own headers) and
	// a 48-byte out-of-line entry. TestItemOverhead measures it with
	// runtime.MemStats: about 99 bytes for random inserts and 122 for
	// ascending ones (whose splits leave nodes half full).
	ItemOverhead = 112

	// btreeDegree is the degree of the index's btree: nodes hold up to
	// 2*btreeDegree-1 items.
	btreeDegree = 16
)

// compactFloor is the least number of dead bytes that triggers a rewrite of
// the batch; below it the rewrite is not worth its cost. Tests lower it.
var compactFloor int64 = 64 << 10

// Overlay is a transaction's own writes: the batch representation that its
// commit writes as one WAL record, plus an ordered index (a copy-on-write
// btree) that points at the one visible entry of each key.
//
// Concurrency: one goroutine, the owner, calls the writing methods (Set,
// Delete, Reset) and the owner-only readers (Get, Live, Parts, Repr, Count,
// Entries, Len, ApproximateBytes, EstimateWrite, DeadBytes). Any goroutine
// may call SharedGet and Snapshot, and use the snapshots, concurrently with
// the owner's writes. Value slices returned by any method stay valid and
// unchanged forever: the overlay never modifies bytes it has written; it
// appends to spare capacity, or writes a new buffer.
//
// After Parts (or Repr) has been handed to the engine for commit, the
// overlay must not be written again (Reset starts a fresh batch and leaves
// the old one intact, so it is allowed). An overlay needs no closing: drop
// it, or Reset it for the next transaction.
type Overlay struct {
	// Owner-only state.
	buf         chunkBuf // the representation; header count written by Parts and Repr
	count       uint32   // entries in buf, dead ones included
	deadBytes   int64    // bytes of buf's entries no longer in the index
	deadEntries int64    // entries no longer in the index
	slab        slab

	// mu guards the index against the owner's writes. The owner writes the
	// fields only with mu held and may read them without it.
	mu struct {
		sync.Mutex
		tree *btree.BTreeG[elem]
		snap *Snapshot // Clone of tree taken after the last write; nil if stale
	}
}

// NewOverlay returns an empty overlay.
func NewOverlay() *Overlay {
	o := &Overlay{}
	o.buf = newChunkBuf()
	o.mu.tree = btree.NewG(btreeDegree, elemLess)
	return o
}

// Set records a write of value under key with the caller's stamp. key and
// value are copied once, into the batch. It returns ErrKeyTooLarge,
// ErrValueTooLarge or ErrBatchTooLarge, and changes nothing, when a limit
// would be passed. Owner only.
func (o *Overlay) Set(key, value []byte, stamp uint64) error {
	return o.write(base.KindSet, key, value, stamp)
}

// Delete records a tombstone for key (whether or not the overlay holds
// key: the store may). Errors as for Set. Owner only.
func (o *Overlay) Delete(key []byte, stamp uint64) error {
	return o.write(base.KindDelete, key, nil, stamp)
}

func (o *Overlay) write(kind base.Kind, key, value []byte, stamp uint64) error {
	size, err := checkEntry(o.buf.len(), kind, key, value)
	if err != nil {
		return err
	}
	el := o.appendElem(kind, key, value, stamp, size)
	o.mu.Lock()
	old, replaced := o.mu.tree.ReplaceOrInsert(el)
	o.mu.snap = nil
	o.mu.Unlock()
	if replaced {
		o.deadBytes += int64(old.encodedSize())
		o.deadEntries++
		if o.shouldCompact() {
			o.compact()
		}
	}
	return nil
}

// appendElem appends an entry of size bytes to the batch and returns the
// element pointing at it. Bytes already written are never moved or
// modified: items and snapshots alias them.
func (o *Overlay) appendElem(kind base.Kind, key, value []byte, stamp uint64, size int) elem {
	o.buf.reserve(size)
	k, v, keyOff, valOff := o.buf.appendEntry(kind, key, value)
	e := o.slab.alloc()
	*e = entry{value: v, stamp: stamp, keyOff: uint32(keyOff), valOff: uint32(valOff), index: o.count, kind: kind}
	o.count++
	return elem{key: k, e: e}
}

func (o *Overlay) liveBytes() int64 { return int64(o.buf.len()-HeaderSize) - o.deadBytes }

// shouldCompact reports whether dead entries (their batch bytes and their
// out-of-line entries) dominate the live ones and pass compactFloor.
func (o *Overlay) shouldCompact() bool {
	dead := o.deadBytes + o.deadEntries*entryMemSize
	live := o.liveBytes() + int64(o.mu.tree.Len())*entryMemSize
	return dead > compactFloor && dead > live
}

// compact rewrites the batch with the live entries only, in key order, into
// a new buffer, and rebuilds the index over it. The old buffer, entries and
// index are left as they are for the snapshots that still use them.
func (o *Overlay) compact() {
	old, live := o.mu.tree, o.liveBytes()
	header := o.buf.header()
	o.buf = chunkBufWithCap(HeaderSize + int(live))
	copy(o.buf.header(), header)
	o.count, o.deadBytes, o.deadEntries = 0, 0, 0
	o.slab = slab{chunk: make([]entry, 0, old.Len())}
	tree := btree.NewG(btreeDegree, elemLess)
	old.Ascend(func(el elem) bool {
		tree.ReplaceOrInsert(o.appendElem(el.e.kind, el.key, el.e.value, el.e.stamp, el.encodedSize()))
		return true
	})
	o.mu.Lock()
	o.mu.tree = tree
	o.mu.snap = nil
	o.mu.Unlock()
}

// Get returns the overlay's visible write of key: found is false when the
// overlay has none; otherwise kind tells a value (KindSet) from a
// tombstone (KindDelete, with a nil value). Owner only: it takes no lock and
// allocates nothing (key escapes, as google/btree calls its less function
// dynamically: pass a reused buffer rather than a fresh stack array). The
// value stays valid forever.
func (o *Overlay) Get(key []byte) (value []byte, kind base.Kind, found bool) {
	el, ok := o.mu.tree.Get(elem{key: key})
	if !ok {
		return nil, 0, false
	}
	return el.e.value, el.e.kind, true
}

// SharedGet is Get for any goroutine (a read-uncommitted reader): it takes
// the overlay's lock for the lookup, and also returns the write's stamp.
// The value stays valid forever.
func (o *Overlay) SharedGet(key []byte) (value []byte, kind base.Kind, stamp uint64, found bool) {
	o.mu.Lock()
	el, ok := o.mu.tree.Get(elem{key: key})
	o.mu.Unlock()
	if !ok {
		return nil, 0, 0, false
	}
	return el.e.value, el.e.kind, el.e.stamp, true
}

// Snapshot returns a point-in-time view of the overlay's index, which later
// writes never change. It is O(1) (a lazy copy-on-write Clone of the btree,
// taken under the overlay's lock) and copies no key or value; a second call
// with no write in between returns the same snapshot, without allocating.
// Any goroutine may call it, concurrently with the owner's writes.
func (o *Overlay) Snapshot() *Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.snap == nil {
		o.mu.snap = &Snapshot{tree: o.mu.tree.Clone()}
	}
	return o.mu.snap
}

// Live calls fn for each live entry (the visible write of each key) in key
// order, until fn returns false. Each item's Part, KeyOff and ValOff locate
// its key and value in Parts(): Key is Parts()[Part][KeyOff:][:len(Key)],
// so the engine can apply exactly these entries, in sorted order, by
// slicing the parts it wrote to the WAL, without copying. (After Repr has
// joined the parts, Parts() is that one buffer and every Part is 0: the
// offsets then index Repr(). So a caller that applies the items to parts it
// took earlier must not call Repr in between.) The items' own Key and Value
// hold the same bytes, in the part or chunk they were written to. Owner
// only; fn must not write to the overlay. Live allocates nothing.
func (o *Overlay) Live(fn func(it Item) bool) {
	o.mu.tree.Ascend(func(el elem) bool {
		it := el.item()
		part, start := o.buf.locate(it.KeyOff)
		it.Part, it.KeyOff = uint32(part), it.KeyOff-uint32(start)
		if it.Kind == base.KindSet {
			it.ValOff -= uint32(start)
		}
		return fn(it)
	})
}

// Parts returns the batch bytes as the chunks they are held in, in order,
// without copying: concatenated, they are Repr() (header, with the entry
// count brought up to date, and entries, dead ones included). A batch of up
// to 64 KiB is one part; a larger one may be several: chunks of up to 1 MiB
// (or one entry, when larger), unless Repr or a rewrite of the batch made
// it one buffer. The engine stamps parts[0] with SetSeqParts (or
// SetSeq(parts[0], seq)) and writes the parts as the commit's one WAL
// record, then applies the Live items, which index these parts.
//
// Guarantees: there is at least one part; parts[0] starts with the whole
// header; no part is empty; an entry never spans two parts.
//
// The parts stay valid and unchanged forever (the overlay never modifies
// bytes it has written), except for the header's count, which the next call
// of Parts or Repr rewrites, and the sequence number, which only SetSeq
// writes. The overlay must not be written after the parts have been handed
// to the engine for commit. The caller must not modify the slice or the
// parts (apart from SetSeq). Owner only; it allocates nothing.
func (o *Overlay) Parts() [][]byte {
	binary.LittleEndian.PutUint32(o.buf.header()[countOffset:], o.count)
	return o.buf.parts()
}

// Repr returns the batch bytes as one slice: the concatenation of Parts().
// For a batch that outgrew 64 KiB, held in several parts, Repr copies them
// once into one buffer, which becomes the overlay's only part (later calls
// of Repr and Parts return it without copying; earlier parts stay valid and
// unchanged); a smaller batch is returned as it is. The engine uses Parts,
// which never copies; Repr serves callers that need contiguous bytes. The
// bytes stay valid forever; the header's count changes at the next call of
// Repr or Parts after a write. Owner only.
func (o *Overlay) Repr() []byte {
	b := o.buf.bytes()
	binary.LittleEndian.PutUint32(b[countOffset:], o.count)
	return b
}

// Count returns the number of entries in Repr, dead ones included. Owner
// only.
func (o *Overlay) Count() uint32 { return o.count }

// Entries returns the number of distinct keys (live entries). Owner only.
func (o *Overlay) Entries() int { return o.mu.tree.Len() }

// Len returns the length of Repr in bytes. Owner only.
func (o *Overlay) Len() int { return o.buf.len() }

// DeadBytes returns the bytes of Repr taken by overwritten entries. Owner
// only.
func (o *Overlay) DeadBytes() int64 { return o.deadBytes }

// ApproximateBytes returns the memory the overlay holds, approximately: the
// length of its batch bytes, ItemOverhead per distinct key, and the
// out-of-line index entry of each overwritten write. It leaves out the
// spare capacity of the batch's last chunk (at most 1 MiB, or one entry),
// the unused tails of the chunks sealed when an entry did not fit (each
// smaller than that entry: negligible with small values, at worst the
// length again with values near a MiB), the arrays that a small batch left
// behind as it grew (at most 64 KiB in all), and whatever only snapshots
// still reference after a Reset or a rewrite of the batch. Owner only.
//
// It also counts OverlayOverhead, the fixed cost of an overlay (its first
// chunk, index root and slab), so that many small open transactions are
// not undercounted.
func (o *Overlay) ApproximateBytes() int64 {
	return OverlayOverhead + int64(o.buf.len()) + int64(o.mu.tree.Len())*ItemOverhead + o.deadEntries*entryMemSize
}

// OverlayOverhead is the memory an overlay holds before and besides its
// entries: the first chunk of its batch, the root node of its index and its
// first slab of index entries.
const OverlayOverhead = initialBufSize + 1024 + 8*entryMemSize

// EstimateWrite returns an upper bound of the growth of ApproximateBytes
// that Set(key, value) would cause (Delete(key) causes no more than
// EstimateWrite(key, nil)), so a caller can check a memory limit before it
// writes. It depends on nothing but its arguments, so any goroutine may call
// it.
func (o *Overlay) EstimateWrite(key, value []byte) int64 {
	return int64(entrySize(base.KindSet, len(key), len(value))) + ItemOverhead
}

// Reset empties the overlay, for a new transaction. It starts a new batch
// buffer and index: the previous Parts and Repr, the items and the
// snapshots keep referencing the old ones, unchanged. Owner only.
func (o *Overlay) Reset() {
	o.buf = newChunkBuf()
	o.count, o.deadBytes, o.deadEntries = 0, 0, 0
	o.slab = slab{}
	tree := btree.NewG(btreeDegree, elemLess)
	o.mu.Lock()
	o.mu.tree = tree
	o.mu.snap = nil
	o.mu.Unlock()
}
