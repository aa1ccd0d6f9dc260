package txn

import (
	"github.com/stratadb/strata/internal/base"
)

// Entry is one decoded entry of a representation.
type Entry struct {
	// Key and Value alias the representation; Value is nil for deletes.
	// They are capped, so appending to them never writes into it.
	Key, Value []byte
	// KeyOff and ValOff are the offsets of Key and Value within the
	// representation (ValOff is 0 for deletes).
	KeyOff, ValOff uint32
	// Index is the entry's 0-based position; a committed entry's sequence
	// number is the header's base plus Index.
	Index uint32
	// Kind is base.KindSet or base.KindDelete.
	Kind base.Kind
}

// Reader decodes the entries of a representation in order. Every length is
// checked against the bytes that remain before anything is sliced, so a
// damaged representation yields an error wrapping base.ErrCorruption (with
// the offset of the damage), never a panic or a large allocation.
//
// A Reader is not safe for concurrent use. Its errors are sticky.
type Reader struct {
	repr  []byte
	off   int
	index uint32
	count uint32
	seq   uint64
	err   error
}

// NewReader returns a reader of repr's entries. It fails when the header is
// missing or when the count cannot fit the bytes that follow (each entry
// takes at least 2 bytes). The entries alias repr, which the caller must not
// modify while it uses them.
func NewReader(repr []byte) (Reader, error) {
	seq, count, err := DecodeHeader(repr)
	if err != nil {
		return Reader{}, err
	}
	if rest := uint64(len(repr) - HeaderSize); uint64(count) > rest/2 {
		return Reader{}, base.CorruptionErrorf("txn: batch count %d cannot fit its %d bytes of entries", count, rest)
	}
	return Reader{repr: repr, off: HeaderSize, count: count, seq: seq}, nil
}

// Seq returns the header's base sequence number.
func (r *Reader) Seq() uint64 { return r.seq }

// Count returns the header's entry count.
func (r *Reader) Count() uint32 { return r.count }

// Next decodes the next entry. ok is false, with a nil error, after the
// last entry when the representation ends exactly there; err is non-nil
// (and stays so) when the representation is damaged: truncated, longer than
// its count, a length past its end or over the limits, a non-minimal
// length, or an unknown kind.
func (r *Reader) Next() (e Entry, ok bool, err error) {
	if r.err != nil {
		return Entry{}, false, r.err
	}
	if r.index == r.count {
		if r.off != len(r.repr) {
			r.err = base.CorruptionErrorf("txn: batch has %d trailing bytes at offset %d after its %d entries", len(r.repr)-r.off, r.off, r.count)
			return Entry{}, false, r.err
		}
		return Entry{}, false, nil
	}
	e, r.err = r.decode()
	if r.err != nil {
		return Entry{}, false, r.err
	}
	r.index++
	return e, true, nil
}

func (r *Reader) decode() (Entry, error) {
	start := r.off
	if start >= len(r.repr) {
		return Entry{}, r.corrupt(start, "truncated: %d of %d entries", r.index, r.count)
	}
	e := Entry{Kind: base.Kind(r.repr[start]), Index: r.index}
	if e.Kind > base.KindMax {
		return Entry{}, r.corrupt(start, "unknown kind %d", e.Kind)
	}
	off := start + 1
	var err error
	if e.Key, e.KeyOff, off, err = r.slice(off, MaxKeySize, "key"); err != nil {
		return Entry{}, err
	}
	if e.Kind == base.KindSet {
		if e.Value, e.ValOff, off, err = r.slice(off, MaxValueSize, "value"); err != nil {
			return Entry{}, err
		}
	}
	r.off = off
	return e, nil
}

// slice decodes a length-prefixed byte string at off.
func (r *Reader) slice(off int, limit uint64, what string) (b []byte, at uint32, next int, err error) {
	n, w := minimalUvarint(r.repr[off:])
	switch {
	case w == 0:
		return nil, 0, 0, r.corrupt(off, "bad %s length", what)
	case n > limit:
		return nil, 0, 0, r.corrupt(off, "%s length %d over the limit %d", what, n, limit)
	}
	off += w
	if n > uint64(len(r.repr)-off) {
		return nil, 0, 0, r.corrupt(off, "%s length %d past the end (%d bytes left)", what, n, len(r.repr)-off)
	}
	end := off + int(n)
	return r.repr[off:end:end], uint32(off), end, nil
}

func (r *Reader) corrupt(off int, format string, args ...any) error {
	args = append([]any{r.index, off}, args...)
	return base.CorruptionErrorf("txn: batch entry %d at offset %d: "+format, args...)
}

// minimalUvarint decodes a uvarint of at most 5 bytes (values below 1<<35)
// in its shortest form. w is 0 when buf is truncated, the encoding is longer
// than 5 bytes, or it is not the shortest one.
func minimalUvarint(buf []byte) (x uint64, w int) {
	for i := 0; i < len(buf) && i < 5; i++ {
		b := buf[i]
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, 0 // a zero final byte: a longer form than needed
			}
			return x, i + 1
		}
	}
	return 0, 0
}
