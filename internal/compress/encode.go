package compress

import (
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"
)

// The bytes of a compressed block, by codec. Encode writes them, Decode
// reads them; the table around a block records its Codec, its length and a
// checksum, so none of the layouts below carries a checksum of its own.
//
// None: the block's n bytes, unchanged.
//
//	+----------------+
//	| data (n bytes) |
//	+----------------+
//
// Snappy: one block of the Snappy block format
// (https://github.com/google/snappy/blob/main/format_description.txt),
// never S2's extended format and never the Snappy framing (stream) format.
//
//	+--------------------+--------------------------------------+
//	| n: uvarint, 1-5 B  | elements: literals and copies ...    |
//	+--------------------+--------------------------------------+
//
// n is the decoded length, little-endian base 128 (encoding/binary Uvarint),
// at most 2^32-1. Each element starts with a tag byte; its low two bits say
// what follows:
//
//	00 literal  length-1 in the tag's high 6 bits when below 60; values
//	            60..63 mean the length-1 follows in 1..4 little-endian
//	            bytes. Then the literal bytes.
//	01 copy     length-4 (0..7) in tag bits 2-4, offset bits 8-10 in tag
//	            bits 5-7, offset bits 0-7 in the next byte.
//	10 copy     length-1 in the tag's high 6 bits, 2-byte little-endian
//	            offset.
//	11 copy     length-1 in the tag's high 6 bits, 4-byte little-endian
//	            offset.
//
// A copy repeats length bytes starting offset bytes back in the output
// (1 <= offset <= bytes decoded so far; the ranges may overlap). The elements
// must produce exactly n bytes.
//
// Zstd: exactly one Zstandard frame (RFC 8878, section 3.1.1), as written by
// klauspost/compress/zstd's EncodeAll.
//
//	+-----------------------+--------------+-------------------------+
//	| magic 28 B5 2F FD     | frame header | blocks, the last marked |
//	+-----------------------+--------------+-------------------------+
//
// The frame header always has Single_Segment_Flag set, and therefore always
// carries Frame_Content_Size (1, 2, 4 or 8 bytes, little-endian; the 2-byte
// form stores n-256), which equals the decoded length: Decode reads it to
// bound the allocation before it decodes anything. No dictionary id, and
// Content_Checksum_Flag is clear. An empty input is encoded as a frame with
// one empty last block, never as zero bytes.
//
// These layouts are part of the file format and should not be changed.

// MaxLen is the largest block, in decoded bytes, that Encode accepts and that
// Decode will ever produce, whatever maxLen it is given.
const MaxLen = 1 << 30

// Encode compresses src with codec c and appends the result to dst, returning
// the extended slice (as append does): the encoded block is
// out[len(dst):]. When dst has enough spare capacity nothing is allocated;
// otherwise dst is grown once, by the codec's worst-case encoded size. dst's
// spare capacity must not overlap src.
//
// The result is only ever smaller than src when the data compresses; callers
// that want to skip incompressible blocks compare the lengths and store the
// block with None instead.
//
// Encode fails when c is not a known codec or src is longer than MaxLen; dst
// is then returned unchanged. It may be called concurrently.
func Encode(c Codec, dst, src []byte) ([]byte, error) {
	if len(src) > MaxLen {
		return dst, fmt.Errorf("compress: %s: block of %d bytes is larger than MaxLen (%d)", c, len(src), MaxLen)
	}
	switch c {
	case None:
		return append(dst, src...), nil
	case Snappy:
		return encodeSnappy(dst, src), nil
	case Zstd:
		return encodeZstd(dst, src)
	}
	return dst, fmt.Errorf("compress: cannot encode with unknown codec %s", c)
}

// encodeSnappy appends the Snappy block of src to dst.
func encodeSnappy(dst, src []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(src)))
	// EncodeSnappy writes from the start of the slice it is given when that
	// slice's capacity suffices, which the Grow above guarantees.
	out := s2.EncodeSnappy(dst[n:cap(dst)], src)
	return dst[:n+len(out)]
}

// encodeZstd appends the Zstandard frame of src to dst.
func encodeZstd(dst, src []byte) ([]byte, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, enc.MaxEncodedSize(len(src)))
	return enc.EncodeAll(src, dst), nil
}
