package txn

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/google/btree"
	"github.com/stratadb/strata/internal/base"
)

const (
	// ItemOverhead is the approximate memory, in bytes, that the index of an
	// overlay spends on each distinct key: the Item itself (72 bytes on
	// 64-bit platforms) held in partly filled btree nodes, plus the nodes'
	// own headers. It was measured with runtime.MemStats on random inserts
	// (see TestItemOverheadMeasured).
	ItemOverhead = 112

	// btreeDegree is the degree of the index's btree: nodes hold up to
	// 2*btreeDegree-1 items.
	btreeDegree = 16

	initialBufSize = 512
)

// compactFloor is the least number of dead bytes that triggers a rewrite of
// the batch; below it the rewrite is not worth its cost. Tests lower it.
var compactFloor int64 = 64 << 10

// Item is the index's view of the one visible write of a key in an
// overlay. Key and Value alias the overlay's batch bytes, which are never
// modified once written, so they stay valid (and unchanged) forever, even
// after the overlay is reset or its batch is rewritten. They are capped, so
// appending to them never writes into the batch. Callers must not modify
// their bytes.
type Item struct {
	// Key and Value alias the batch bytes; Value is nil for deletes.
	Key, Value []byte
	// Stamp is the caller-supplied stamp of the write (the engine's global
	// write counter), for "latest write wins" across overlays.
	Stamp uint64
	// KeyOff and ValOff are the offsets of Key and Value within the batch
	// bytes the item was written to (ValOff is 0 for deletes). They index
	// Repr() as long as the batch has not been rewritten since.
	KeyOff, ValOff uint32
	// Index is the entry's position in that batch.
	Index uint32
	// Kind is base.KindSet or base.KindDelete.
	Kind base.Kind
}

func itemLess(a, b Item) bool { return bytes.Compare(a.Key, b.Key) < 0 }

// encodedSize is the size of the batch entry the item points at.
func (it *Item) encodedSize() int { return entrySize(it.Kind, len(it.Key), len(it.Value)) }

// Overlay is a transaction's own writes: the batch representation that its
// commit writes as one WAL record, plus an ordered index (a copy-on-write
// btree) that points at the one visible entry of each key.
//
// Concurrency: one goroutine, the owner, calls the writing methods (Set,
// Delete, Reset) and the owner-only readers (Get, Live, Repr, Count,
// Entries, Len, ApproximateBytes, EstimateWrite, DeadBytes). Any goroutine
// may call SharedGet and Snapshot, and use the snapshots, concurrently with
// the owner's writes. Value slices returned by any method stay valid and
// unchanged forever: the overlay never modifies bytes it has written; it
// appends to spare capacity, or writes a new buffer.
//
// After Repr has been handed to the engine for commit, the overlay must not
// be written again (Reset starts a fresh batch and leaves the old one
// intact, so it is allowed).
type Overlay struct {
	// Owner-only state.
	buf   []byte // the representation; header count written by Repr
	count uint32 // entries in buf, dead ones included
	dead  int64  // bytes of entries no longer in the index

	// mu guards the index against the owner's writes. The owner writes the
	// fields only with mu held and may read them without it.
	mu struct {
		sync.Mutex
		tree *btree.BTreeG[Item]
		snap *Snapshot // Clone of tree taken after the last write; nil if stale
	}
}

// NewOverlay returns an empty overlay.
func NewOverlay() *Overlay {
	o := &Overlay{}
	o.buf = make([]byte, HeaderSize, initialBufSize)
	o.mu.tree = btree.NewG(btreeDegree, itemLess)
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
	size, err := checkEntry(len(o.buf), kind, key, value)
	if err != nil {
		return err
	}
	if cap(o.buf)-len(o.buf) < size {
		// The old buffer stays untouched: items and snapshots alias it.
		o.buf = growBuf(o.buf, size)
	}
	it := o.appendItem(kind, key, value, stamp)
	o.mu.Lock()
	old, replaced := o.mu.tree.ReplaceOrInsert(it)
	o.mu.snap = nil
	o.mu.Unlock()
	if replaced {
		o.dead += int64(old.encodedSize())
		if o.dead > compactFloor && o.dead > o.liveBytes() {
			o.compact()
		}
	}
	return nil
}

// appendItem appends an entry to o.buf, which has room for it, and returns
// the item pointing at it.
func (o *Overlay) appendItem(kind base.Kind, key, value []byte, stamp uint64) Item {
	var keyOff, valOff int
	o.buf, keyOff, valOff = appendEntry(o.buf, kind, key, value)
	it := Item{
		Key:    o.buf[keyOff : keyOff+len(key) : keyOff+len(key)],
		Stamp:  stamp,
		KeyOff: uint32(keyOff),
		Index:  o.count,
		Kind:   kind,
	}
	if kind == base.KindSet {
		it.Value = o.buf[valOff : valOff+len(value) : valOff+len(value)]
		it.ValOff = uint32(valOff)
	}
	o.count++
	return it
}

func (o *Overlay) liveBytes() int64 { return int64(len(o.buf)-HeaderSize) - o.dead }

// compact rewrites the batch with the live entries only, in key order, into
// a new buffer, and rebuilds the index over it. The old buffer and the old
// index are left as they are for the snapshots that still use them.
func (o *Overlay) compact() {
	old, live := o.mu.tree, o.liveBytes()
	header := o.buf[:HeaderSize]
	o.buf = make([]byte, HeaderSize, HeaderSize+live+live/4)
	copy(o.buf, header)
	o.count = 0
	o.dead = 0
	tree := btree.NewG(btreeDegree, itemLess)
	old.Ascend(func(it Item) bool {
		tree.ReplaceOrInsert(o.appendItem(it.Kind, it.Key, it.Value, it.Stamp))
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
// allocates nothing. The value stays valid forever.
func (o *Overlay) Get(key []byte) (value []byte, kind base.Kind, found bool) {
	it, ok := o.mu.tree.Get(Item{Key: key})
	return it.Value, it.Kind, ok
}

// SharedGet is Get for any goroutine (a read-uncommitted reader): it takes
// the overlay's lock for the lookup, and also returns the write's stamp.
// The value stays valid forever.
func (o *Overlay) SharedGet(key []byte) (value []byte, kind base.Kind, stamp uint64, found bool) {
	o.mu.Lock()
	it, ok := o.mu.tree.Get(Item{Key: key})
	o.mu.Unlock()
	return it.Value, it.Kind, it.Stamp, ok
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
// order, until fn returns false. The items' offsets index Repr(), so the
// engine can apply exactly these entries, in sorted order, by referencing
// Repr() without copying. Owner only; fn must not write to the overlay.
func (o *Overlay) Live(fn func(it Item) bool) {
	o.mu.tree.Ascend(fn)
}

// Repr returns the batch bytes: header (with the entry count up to date)
// and entries, dead ones included. The engine stamps it with SetSeq and
// writes it as the commit's WAL record; the overlay must not be written
// after that. The bytes stay valid forever; the header changes at the next
// write (Repr writes the count). Owner only.
func (o *Overlay) Repr() []byte {
	binary.LittleEndian.PutUint32(o.buf[countOffset:], o.count)
	return o.buf
}

// Count returns the number of entries in Repr, dead ones included. Owner
// only.
func (o *Overlay) Count() uint32 { return o.count }

// Entries returns the number of distinct keys (live entries). Owner only.
func (o *Overlay) Entries() int { return o.mu.tree.Len() }

// Len returns the length of Repr in bytes. Owner only.
func (o *Overlay) Len() int { return len(o.buf) }

// DeadBytes returns the bytes of Repr taken by overwritten entries. Owner
// only.
func (o *Overlay) DeadBytes() int64 { return o.dead }

// ApproximateBytes returns the memory the overlay holds, approximately: the
// length of its batch bytes plus ItemOverhead per distinct key. It does not
// count the spare capacity of the batch buffer, nor the buffers that older
// items or snapshots still reference after the batch grew or was rewritten.
// Owner only.
func (o *Overlay) ApproximateBytes() int64 {
	return int64(len(o.buf)) + int64(o.mu.tree.Len())*ItemOverhead
}

// EstimateWrite returns an upper bound of the growth of ApproximateBytes
// that Set(key, value) would cause (Delete(key) causes no more than
// EstimateWrite(key, nil)), so a caller can check a memory limit before it
// writes. Owner only (it depends on nothing but its arguments, so any
// goroutine may in fact call it).
func (o *Overlay) EstimateWrite(key, value []byte) int64 {
	return int64(entrySize(base.KindSet, len(key), len(value))) + ItemOverhead
}

// Reset empties the overlay, for a new transaction. It starts a new batch
// buffer and index: the previous Repr, the items and the snapshots keep
// referencing the old ones, unchanged. Owner only.
func (o *Overlay) Reset() {
	o.buf = make([]byte, HeaderSize, initialBufSize)
	o.count = 0
	o.dead = 0
	tree := btree.NewG(btreeDegree, itemLess)
	o.mu.Lock()
	o.mu.tree = tree
	o.mu.snap = nil
	o.mu.Unlock()
}
