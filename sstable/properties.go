package sstable

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/compress"
)

// Properties describe a table; they are stored in its properties block
// (layout in writer.go). A Properties value is immutable once returned: its
// slices must not be modified.
type Properties struct {
	// Smallest and Largest are the first and last keys of the table; zero
	// when it has no entries.
	Smallest, Largest base.InternalKey
	// SmallestSeq and LargestSeq bound the sequence numbers of its keys.
	SmallestSeq, LargestSeq uint64
	// NumEntries counts its keys, NumDeletions those of kind KindDelete.
	NumEntries, NumDeletions uint64
	// RawKeyBytes and RawValueBytes sum the lengths of the encoded keys and
	// of the values, before prefix compression and block compression.
	RawKeyBytes, RawValueBytes uint64
	// NumDataBlocks counts the data blocks.
	NumDataBlocks uint64
	// Codec is the codec the writer was asked to use; blocks that did not
	// compress well enough are stored with compress.None.
	Codec compress.Codec
	// FilterBitsPerKey is the filter's size per key, 0 if there is none.
	FilterBitsPerKey uint64
	// Namespaces lists, ascending, the namespace ids of the table's keys
	// (base.SplitNamespace prefixes).
	Namespaces []base.NamespaceID
}

// encode appends the properties block to dst.
func (p *Properties) encode(dst []byte) []byte {
	dst = appendKey(dst, p.Smallest, p.NumEntries > 0)
	dst = appendKey(dst, p.Largest, p.NumEntries > 0)
	for _, v := range [...]uint64{p.SmallestSeq, p.LargestSeq, p.NumEntries, p.NumDeletions,
		p.RawKeyBytes, p.RawValueBytes, p.NumDataBlocks} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = append(dst, byte(p.Codec))
	dst = binary.AppendUvarint(dst, p.FilterBitsPerKey)
	dst = binary.AppendUvarint(dst, uint64(len(p.Namespaces)))
	prev := base.NamespaceID(0)
	for i, id := range p.Namespaces {
		d := id
		if i > 0 {
			d = id - prev
		}
		dst = binary.AppendUvarint(dst, uint64(d))
		prev = id
	}
	return dst
}

// appendKey appends a length-prefixed encoded key, or length 0 if !present.
func appendKey(dst []byte, k base.InternalKey, present bool) []byte {
	if !present {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(k.EncodedLen()))
	return k.Encode(dst)
}

// propsDecoder reads the fields of a properties block.
type propsDecoder struct {
	b   []byte
	err error
}

func (d *propsDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("properties block: bad %s", what)
	}
}

func (d *propsDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *propsDecoder) key(what string) base.InternalKey {
	n := d.uvarint(what)
	if d.err != nil || n == 0 {
		return base.InternalKey{}
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return base.InternalKey{}
	}
	k, ok := decodeKey(d.b[:n:n])
	if !ok {
		d.fail(what)
	}
	d.b = d.b[n:]
	return k
}

// decodeProperties parses a properties block. The keys returned alias b.
func decodeProperties(b []byte) (Properties, error) {
	d := propsDecoder{b: b}
	var p Properties
	// A key of length 0 is absent (UserKey nil); check matches presence
	// with the entry count.
	sk := d.key("smallest key")
	lk := d.key("largest key")
	fields := [...]*uint64{&p.SmallestSeq, &p.LargestSeq, &p.NumEntries, &p.NumDeletions,
		&p.RawKeyBytes, &p.RawValueBytes, &p.NumDataBlocks}
	for _, f := range fields {
		*f = d.uvarint("counter")
	}
	if d.err == nil && len(d.b) == 0 {
		d.fail("codec")
	}
	if d.err == nil {
		p.Codec, d.b = compress.Codec(d.b[0]), d.b[1:]
	}
	p.FilterBitsPerKey = d.uvarint("filter bits per key")
	p.Namespaces = d.namespaces()
	if d.err == nil && len(d.b) != 0 {
		d.fail("end (trailing bytes)")
	}
	if d.err != nil {
		return Properties{}, d.err
	}
	p.Smallest, p.Largest = sk, lk
	return p, p.check()
}

// namespaces reads the namespace list.
func (d *propsDecoder) namespaces() []base.NamespaceID {
	n := d.uvarint("namespace count")
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.b)) { // each id takes at least one byte
		d.fail("namespace count")
		return nil
	}
	ids := make([]base.NamespaceID, 0, n)
	var prev uint64
	for i := range n {
		v := d.uvarint("namespace id")
		if i > 0 {
			v += prev
			if v == prev {
				d.fail("namespace list (not increasing)")
			}
		}
		if v > uint64(base.MaxNamespaceID) {
			d.fail("namespace id")
		}
		if d.err != nil {
			return nil
		}
		ids = append(ids, base.NamespaceID(v))
		prev = v
	}
	return ids
}

// check verifies the properties' internal consistency.
func (p *Properties) check() error {
	empty := p.NumEntries == 0
	switch {
	case empty && (p.Smallest.UserKey != nil || p.Largest.UserKey != nil || p.NumDataBlocks != 0):
		return fmt.Errorf("properties block: an empty table has keys or blocks")
	case p.Codec > compress.Zstd:
		return fmt.Errorf("properties block: unknown codec %s", p.Codec)
	case empty:
		return nil
	case p.Smallest.UserKey == nil || p.Largest.UserKey == nil:
		return fmt.Errorf("properties block: a table of %d entries has no key range", p.NumEntries)
	case base.CompareInternal(p.Smallest, p.Largest) > 0:
		return fmt.Errorf("properties block: smallest key %s is above largest %s", p.Smallest, p.Largest)
	case p.SmallestSeq > p.LargestSeq:
		return fmt.Errorf("properties block: smallest seq %d is above largest %d", p.SmallestSeq, p.LargestSeq)
	case p.NumDeletions > p.NumEntries || p.NumDataBlocks == 0 || p.NumDataBlocks > p.NumEntries:
		return fmt.Errorf("properties block: inconsistent counts (%d entries, %d deletions, %d blocks)",
			p.NumEntries, p.NumDeletions, p.NumDataBlocks)
	}
	return nil
}
