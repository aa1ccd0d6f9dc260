package sstable

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/base"
)

// This file decodes the block layout of writer.go: entry headers, restart
// arrays and the whole-block check that every block passes once, when it is
// read from the file, before any iterator walks it.

// readUvarint decodes a uvarint at b[p:end] that must not exceed end (no
// length inside a block can). It returns the value and the offset after it.
func readUvarint(b []byte, p, end int) (int, int, bool) {
	if p < end && b[p] < 0x80 {
		return int(b[p]), p + 1, true
	}
	if p >= end {
		return 0, p, false
	}
	x, n := binary.Uvarint(b[p:end])
	if n <= 0 || x > uint64(end) {
		return 0, p, false
	}
	return int(x), p + n, true
}

// entryHeader is the decoded header of a block entry.
type entryHeader struct {
	shared, unshared, valueLen int
	p                          int // offset of the key bytes
}

// next returns the offset of the entry after this one.
func (h entryHeader) next() int { return h.p + h.unshared + h.valueLen }

// decodeEntry decodes the header of the entry at off, checking that the
// entry lies within b[:end].
func decodeEntry(b []byte, off, end int) (entryHeader, bool) {
	var h entryHeader
	var ok bool
	p := off
	if h.shared, p, ok = readUvarint(b, p, end); !ok {
		return h, false
	}
	if h.unshared, p, ok = readUvarint(b, p, end); !ok {
		return h, false
	}
	if h.valueLen, p, ok = readUvarint(b, p, end); !ok {
		return h, false
	}
	h.p = p
	return h, h.unshared <= end-p && h.valueLen <= end-p-h.unshared
}

// blockLayout locates the restart array of block b.
type blockLayout struct {
	end         int // offset of the restart array: the entries are b[:end]
	numRestarts int
}

// layoutOf reads the restart count of b and checks that the restart array
// fits.
func layoutOf(b []byte) (blockLayout, error) {
	if len(b) < 4 {
		return blockLayout{}, fmt.Errorf("block of %d bytes is too short for a restart count", len(b))
	}
	n := binary.LittleEndian.Uint32(b[len(b)-4:])
	if uint64(n) > uint64(len(b)-4)/4 {
		return blockLayout{}, fmt.Errorf("block of %d bytes cannot hold %d restarts", len(b), n)
	}
	return blockLayout{end: len(b) - 4 - 4*int(n), numRestarts: int(n)}, nil
}

// restart returns the offset of restart i.
func restart(b []byte, l blockLayout, i int) int {
	return int(binary.LittleEndian.Uint32(b[l.end+4*i:]))
}

// decodeKey splits an encoded internal key, checking its length and kind.
func decodeKey(k []byte) (base.InternalKey, bool) {
	if len(k) < 8 {
		return base.InternalKey{}, false
	}
	n := len(k) - 8
	t := binary.LittleEndian.Uint64(k[n:])
	return base.InternalKey{UserKey: k[:n:n], Trailer: t}, base.TrailerKind(t) <= base.KindMax
}

// blockCheck says what checkBlock requires of a block besides its structure.
type blockCheck struct {
	// lo, when not nil, is a key every key of the block must exceed.
	lo *base.InternalKey
	// hi, when not nil, is a key no key of the block may exceed.
	hi *base.InternalKey
	// everyRestart requires every entry to be a restart (index blocks).
	everyRestart bool
	// nonEmpty requires at least one entry (data blocks).
	nonEmpty bool
}

var errNoEntries = errors.New("block has no entries")

// checkBlock verifies everything an iterator relies on: the restart array
// fits and points, in increasing order, at entries whose shared length is 0;
// restart 0 is the first entry; the entries tile b[:end] exactly; every
// shared length fits in the previous key; every key is a valid internal key;
// keys strictly increase and respect c. It returns the number of entries.
// It never panics and allocates only for keys longer than 256 bytes.
func checkBlock(b []byte, c blockCheck) (int, error) {
	l, err := layoutOf(b)
	if err != nil {
		return 0, err
	}
	if l.numRestarts == 0 {
		if l.end != 0 {
			return 0, fmt.Errorf("block has %d bytes of entries and no restarts", l.end)
		}
		if c.nonEmpty {
			return 0, errNoEntries
		}
		return 0, nil
	}
	var bufs [2][256]byte
	prev, cur := bufs[0][:0], bufs[1][:0]
	n, r := 0, 0
	for off := 0; off < l.end; n++ {
		isRestart := r < l.numRestarts && restart(b, l, r) == off
		if isRestart {
			r++
		} else if off == 0 || c.everyRestart {
			return n, fmt.Errorf("entry %d at %d is not a restart", n, off)
		}
		if r < l.numRestarts && restart(b, l, r) <= off {
			return n, fmt.Errorf("restart %d (%d) is not at an entry", r, restart(b, l, r))
		}
		h, ok := decodeEntry(b, off, l.end)
		if !ok || h.shared > len(prev) || (isRestart && h.shared != 0) {
			return n, fmt.Errorf("bad entry %d at %d", n, off)
		}
		cur = append(append(cur[:0], prev[:h.shared]...), b[h.p:h.p+h.unshared]...)
		if err := checkOrder(prev, cur, n, c.lo); err != nil {
			return n, err
		}
		prev, cur = cur, prev
		off = h.next()
	}
	if r != l.numRestarts {
		return n, fmt.Errorf("restart %d (%d) is not at an entry", r, restart(b, l, r))
	}
	if last, _ := decodeKey(prev); c.hi != nil && base.CompareInternal(last, *c.hi) > 0 {
		return n, fmt.Errorf("last key %s is above the block's bound %s", last, *c.hi)
	}
	return n, nil
}

// checkOrder checks that cur, the key of entry n, is a valid internal key
// above prev (or, for the first entry, above lo).
func checkOrder(prev, cur []byte, n int, lo *base.InternalKey) error {
	k, ok := decodeKey(cur)
	if !ok {
		return fmt.Errorf("entry %d has an invalid internal key %q", n, cur)
	}
	if n == 0 {
		if lo != nil && base.CompareInternal(k, *lo) <= 0 {
			return fmt.Errorf("first key %s is not above the block's bound %s", k, *lo)
		}
		return nil
	}
	if p, _ := decodeKey(prev); base.CompareInternal(p, k) >= 0 {
		return fmt.Errorf("entry %d: key %s is not above %s", n, k, p)
	}
	return nil
}
