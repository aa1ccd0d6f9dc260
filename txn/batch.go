// The batch representation: a transaction's write buffer, and unchanged the
// payload of the single WAL record its commit writes.
//
// A representation is a 12-byte header followed by the entries in write
// order:
//
//	+---------------------------+--------------------------+---------+---------+-----+
//	| base seq (8 B, uint64 LE) | count (4 B, uint32 LE)   | entry 0 | entry 1 | ... |
//	+---------------------------+--------------------------+---------+---------+-----+
//	  bytes 0..7                  bytes 8..11                byte 12 on
//
// Each entry is one of:
//
//	KindSet (1):    | kind (1 B) | uvarint len(key) | key | uvarint len(value) | value |
//	KindDelete (0): | kind (1 B) | uvarint len(key) | key |
//
// kind is a base.Kind. A uvarint is the unsigned LEB128 encoding of
// encoding/binary.AppendUvarint (7 bits a byte, low group first, high bit set
// on every byte but the last) in its shortest form: decoders reject a longer
// encoding of the same number, so that every valid representation has exactly
// one encoding. Key lengths are at most MaxKeySize and value lengths at most
// MaxValueSize; a whole representation is at most MaxReprSize bytes (so
// that every offset into it fits a uint32).
//
// Entry i (0-based) of a committed batch carries sequence number base+i. The
// header's sequence number is zero until the engine stamps it with SetSeq
// just before it writes the record. count is the number of entries, exactly:
// a representation with fewer or more entries than its count is corrupt.
//
// Worked example: a batch of Set("k", "vv") then Delete("a"), stamped with
// sequence number 7, is 22 bytes:
//
//	07 00 00 00 00 00 00 00  02 00 00 00   header: seq 7, 2 entries
//	01 01 6b 02 76 76                      SET, len 1, "k", len 2, "vv"
//	00 01 61                               DEL, len 1, "a"
//
// These constants are part of the file format and should not be changed.

package txn

import (
	"encoding/binary"
	"errors"

	"github.com/stratadb/strata/internal/base"
)

const (
	// HeaderSize is the length of a representation's header: the base
	// sequence number (8 bytes) and the entry count (4 bytes).
	HeaderSize = 12
	// MaxKeySize is the largest key, in bytes, a batch or an overlay
	// accepts (64 KiB - 1). Keys here include the engine's namespace
	// prefix, so the engine's public limit is smaller by the prefix length.
	MaxKeySize = 1<<16 - 1
	// MaxValueSize is the largest value, in bytes, a batch or an overlay
	// accepts (256 MiB).
	MaxValueSize = 1 << 28
	// MaxReprSize is the largest representation, in bytes (4 GiB - 1), so
	// that every offset into it fits a uint32.
	MaxReprSize = 1<<32 - 1
)

// These constants are part of the file format and should not be changed.
const (
	seqOffset   = 0
	countOffset = 8
)

var (
	// ErrKeyTooLarge is returned by writes of a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("txn: key too large")
	// ErrValueTooLarge is returned by writes of a value longer than
	// MaxValueSize.
	ErrValueTooLarge = errors.New("txn: value too large")
	// ErrBatchTooLarge is returned by a write that would make the
	// representation longer than MaxReprSize.
	ErrBatchTooLarge = errors.New("txn: batch too large")
)

// Batch is a plain, unindexed batch: writes are appended to its
// representation and nothing can be read back but Repr. Restoring a store
// from a changelog uses it, since no read needs the writes before they
// commit.
//
// The zero value is an empty batch ready to use. A Batch is not safe for
// concurrent use.
type Batch struct {
	data    []byte
	count   uint32
	capHint int
}

// Set appends a write of value under key. It returns ErrKeyTooLarge,
// ErrValueTooLarge or ErrBatchTooLarge, and changes nothing, when a limit
// would be passed. key and value are copied; the caller may reuse them.
func (b *Batch) Set(key, value []byte) error {
	return b.add(base.KindSet, key, value)
}

// Delete appends a tombstone for key, with the same errors as Set.
func (b *Batch) Delete(key []byte) error {
	return b.add(base.KindDelete, key, nil)
}

func (b *Batch) add(kind base.Kind, key, value []byte) error {
	b.init()
	size, err := checkEntry(len(b.data), kind, key, value)
	if err != nil {
		return err
	}
	if cap(b.data)-len(b.data) < size {
		b.data = growBuf(b.data, size)
	}
	b.data, _, _ = appendEntry(b.data, kind, key, value)
	b.count++
	binary.LittleEndian.PutUint32(b.data[countOffset:], b.count)
	return nil
}

// Grow makes room for n more bytes of entries, so that writing them
// allocates nothing more; a new batch gets exactly that room (the engine
// keeps a committed batch's whole buffer, spare capacity included).
func (b *Batch) Grow(n int) {
	if b.data == nil {
		b.data = make([]byte, HeaderSize, HeaderSize+n)
		return
	}
	if cap(b.data)-len(b.data) < n {
		b.data = growBuf(b.data, n)
	}
}

// MaxEntryOverhead bounds the bytes a batch entry takes besides its key and
// value (kind and two length varints), for sizing with Grow.
const MaxEntryOverhead = 1 + 2*binary.MaxVarintLen32

func (b *Batch) init() {
	if b.data == nil {
		b.data = make([]byte, HeaderSize, max(b.capHint, 256))
	}
}

// Count returns the number of entries.
func (b *Batch) Count() uint32 { return b.count }

// Len returns the length of the representation in bytes, header included.
func (b *Batch) Len() int {
	if b.data == nil {
		return HeaderSize
	}
	return len(b.data)
}

// Empty reports whether the batch has no entries.
func (b *Batch) Empty() bool { return b.count == 0 }

// Repr returns the representation: header (with the entry count up to date
// and the sequence number zero unless set with SetSeq) and entries. It stays
// valid until the next Set or Delete, which rewrite the header's count; the
// bytes of the entries themselves are never modified, even by Reset.
func (b *Batch) Repr() []byte {
	b.init()
	return b.data
}

// Reset empties the batch. It does not reuse the previous representation's
// memory, so a Repr handed to the engine (which may keep referencing it)
// stays intact; the next write allocates a buffer as large as the previous
// one.
func (b *Batch) Reset() {
	if b.data != nil {
		b.capHint = cap(b.data)
	}
	b.data = nil
	b.count = 0
}

// SetSeq writes seq as the base sequence number of the representation repr,
// in place. repr must be at least HeaderSize bytes long (it panics
// otherwise: that is a programming error, not bad input).
func SetSeq(repr []byte, seq uint64) {
	binary.LittleEndian.PutUint64(repr[seqOffset:], seq)
}

// SetSeqParts writes seq as the base sequence number of the representation
// held in parts (as Overlay.Parts returns it), in place. The header lies
// wholly in parts[0], so this is SetSeq(parts[0], seq); parts[0] must be at
// least HeaderSize bytes long (it panics otherwise: a programming error).
func SetSeqParts(parts [][]byte, seq uint64) {
	SetSeq(parts[0], seq)
}

// DecodeHeader returns the base sequence number and the entry count of
// repr. It fails, wrapping base.ErrCorruption, when repr is shorter than a
// header. It does not check the entries; Reader does.
func DecodeHeader(repr []byte) (seq uint64, count uint32, err error) {
	if len(repr) < HeaderSize {
		return 0, 0, base.CorruptionErrorf("txn: batch of %d bytes is shorter than its %d-byte header", len(repr), HeaderSize)
	}
	seq = binary.LittleEndian.Uint64(repr[seqOffset:])
	count = binary.LittleEndian.Uint32(repr[countOffset:])
	return seq, count, nil
}

// checkEntry checks the limits for an entry appended to a representation of
// curLen bytes and returns the entry's encoded size.
func checkEntry(curLen int, kind base.Kind, key, value []byte) (int, error) {
	if len(key) > MaxKeySize {
		return 0, ErrKeyTooLarge
	}
	if len(value) > MaxValueSize {
		return 0, ErrValueTooLarge
	}
	size := entrySize(kind, len(key), len(value))
	if int64(curLen)+int64(size) > MaxReprSize {
		return 0, ErrBatchTooLarge
	}
	return size, nil
}

// entrySize is the encoded size of an entry. value is ignored for deletes.
func entrySize(kind base.Kind, keyLen, valLen int) int {
	n := 1 + uvarintLen(uint64(keyLen)) + keyLen
	if kind == base.KindSet {
		n += uvarintLen(uint64(valLen)) + valLen
	}
	return n
}

// appendEntry appends an entry to dst and returns the new slice and the
// offsets of the key and the value within it (valOff is 0 for deletes).
func appendEntry(dst []byte, kind base.Kind, key, value []byte) (out []byte, keyOff, valOff int) {
	dst = append(dst, byte(kind))
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	keyOff = len(dst)
	dst = append(dst, key...)
	if kind != base.KindSet {
		return dst, keyOff, 0
	}
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	valOff = len(dst)
	return append(dst, value...), keyOff, valOff
}

// growBuf returns a copy of buf with room for at least need more bytes,
// doubling the capacity. buf itself is left untouched: readers may still
// reference its bytes.
func growBuf(buf []byte, need int) []byte {
	c := max(2*cap(buf), len(buf)+need, 256)
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
