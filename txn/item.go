package txn

import (
	"bytes"
	"unsafe"

	"github.com/stratadb/strata/internal/base"
)

// Item is one visible write of a key in an overlay, as Live and iterators
// give it. Key and Value alias the overlay's batch bytes, which are never
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
	// Part, KeyOff and ValOff locate Key and Value in the batch bytes the
	// item was written to (ValOff is 0 for deletes), as long as the batch
	// has not been rewritten since.
	//
	// In items from Overlay.Live, Part is the index, in Overlay.Parts(), of
	// the part holding the whole entry (an entry never spans two parts),
	// and KeyOff and ValOff are offsets within that part: Key is
	// Parts()[Part][KeyOff:KeyOff+len(Key)]. Once Repr has joined the
	// parts, Parts() is that one buffer, so Part is 0 and the offsets index
	// Repr().
	//
	// In items from snapshot iterators (Iter.Item), Part is 0 and KeyOff
	// and ValOff are offsets within the whole representation, the
	// concatenation of the parts (what Repr returns).
	KeyOff, ValOff uint32
	// Part is the index of the part holding the entry; see KeyOff.
	Part uint32
	// Index is the entry's position in that batch.
	Index uint32
	// Kind is base.KindSet or base.KindDelete.
	Kind base.Kind
}

// elem is what the btree holds: the key, inline so that comparisons need
// no indirection, and the rest of the write out of line. At 4 machine words
// two elems fit the registers of a call to the less function (a 72-byte
// Item would go through memory, which made lookups twice as slow).
type elem struct {
	key []byte
	e   *entry
}

// entry is the out-of-line part of an elem. Entries are allocated from
// slabs owned by the overlay and never modified once the elem is indexed.
type entry struct {
	value  []byte
	stamp  uint64
	keyOff uint32
	valOff uint32
	index  uint32
	kind   base.Kind
}

// entryMemSize is the memory of one entry.
const entryMemSize = int64(unsafe.Sizeof(entry{}))

func elemLess(a, b elem) bool { return bytes.Compare(a.key, b.key) < 0 }

func (el elem) item() Item {
	e := el.e
	return Item{
		Key: el.key, Value: e.value, Stamp: e.stamp,
		KeyOff: e.keyOff, ValOff: e.valOff, Index: e.index, Kind: e.kind,
	}
}

// encodedSize is the size of the batch entry el points at.
func (el elem) encodedSize() int { return entrySize(el.e.kind, len(el.key), len(el.e.value)) }

// slab hands out entries from chunks that grow geometrically (so a small
// transaction allocates little) and are never reused: old entries stay
// valid for the snapshots that reference them.
type slab struct {
	chunk []entry
}

const (
	minSlabChunk = 8
	maxSlabChunk = 1024
)

func (s *slab) alloc() *entry {
	if len(s.chunk) == cap(s.chunk) {
		s.chunk = make([]entry, 0, min(max(2*cap(s.chunk), minSlabChunk), maxSlabChunk))
	}
	s.chunk = s.chunk[:len(s.chunk)+1]
	return &s.chunk[len(s.chunk)-1]
}
