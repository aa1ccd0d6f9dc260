package sstable

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// This file encodes the block handles, block trailers and footer described
// in writer.go.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockHandle locates a block's stored bytes (its trailer follows them).
type blockHandle struct {
	offset, length uint64
}

// end returns the offset just past the block's trailer.
func (h blockHandle) end() uint64 { return h.offset + h.length + blockTrailerLen }

// append appends the index-entry encoding of h (two uvarints).
func (h blockHandle) append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, h.offset)
	return binary.AppendUvarint(dst, h.length)
}

// decodeHandle parses an index-entry value, which must hold exactly a
// handle.
func decodeHandle(b []byte) (blockHandle, bool) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return blockHandle{}, false
	}
	length, m := binary.Uvarint(b[n:])
	if m <= 0 || n+m != len(b) {
		return blockHandle{}, false
	}
	return blockHandle{offset: off, length: length}, true
}

// blockChecksum is the CRC32C of a block's stored bytes, codec, the table's
// file number and the block's offset.
func blockChecksum(stored []byte, codec byte, fileNum, offset uint64) uint32 {
	var tail [17]byte
	tail[0] = codec
	binary.LittleEndian.PutUint64(tail[1:], fileNum)
	binary.LittleEndian.PutUint64(tail[9:], offset)
	return crc32.Update(crc32.Update(0, castagnoli, stored), castagnoli, tail[:])
}

// footer is the decoded footer.
type footer struct {
	index, filter, props blockHandle
	fileNum              uint64
}

// append appends the 72-byte footer of f.
func (f *footer) append(dst []byte) []byte {
	start := len(dst)
	for _, h := range [...]blockHandle{f.index, f.filter, f.props} {
		dst = binary.LittleEndian.AppendUint64(dst, h.offset)
		dst = binary.LittleEndian.AppendUint64(dst, h.length)
	}
	dst = binary.LittleEndian.AppendUint64(dst, f.fileNum)
	dst = binary.LittleEndian.AppendUint32(dst, FormatVersion)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return append(dst, footerMagic...)
}

// decodeFooter parses the last footerLen bytes of a table.
func decodeFooter(b []byte) (footer, error) {
	var f footer
	if len(b) != footerLen {
		return f, fmt.Errorf("footer of %d bytes", len(b))
	}
	if string(b[64:]) != footerMagic {
		return f, fmt.Errorf("bad magic number %x (not a table)", b[64:])
	}
	if want, got := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); want != got {
		return f, fmt.Errorf("footer checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if v := binary.LittleEndian.Uint32(b[56:]); v != FormatVersion {
		return f, fmt.Errorf("unsupported format version %d (this reader knows %d)", v, FormatVersion)
	}
	hs := [...]*blockHandle{&f.index, &f.filter, &f.props}
	for i, h := range hs {
		h.offset = binary.LittleEndian.Uint64(b[16*i:])
		h.length = binary.LittleEndian.Uint64(b[16*i+8:])
	}
	f.fileNum = binary.LittleEndian.Uint64(b[48:])
	return f, nil
}
