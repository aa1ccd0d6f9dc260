// Package compress holds the block compression codecs of strata's tables:
// no compression, Snappy and Zstandard, built on
// github.com/klauspost/compress.
//
// A table records, next to every block, the Codec that compressed it (one
// byte, see Codec). Encode compresses a block and Decode reverses it; Decode
// is bounded, so a damaged block can never make it allocate more than the
// caller allows, and it reports damage as an error wrapping
// base.ErrCorruption, never with a panic.
//
// Every function of the package may be called concurrently from any number of
// goroutines. The Zstandard encoder and decoder, which are expensive to
// build, are created on first use and shared by all callers for the life of
// the process; they are never closed.
package compress

import (
	"fmt"
	"strconv"
	"strings"
)

// Codec names a block compression algorithm. Its value is stored in tables
// as one byte next to each block (and may appear in options files), so:
//
//	0  None    the block's bytes, stored as they are
//	1  Snappy  a Snappy block (varint length + Snappy elements)
//	2  Zstd    one Zstandard frame with its content size
//
// These constants are part of the file format and should not be changed.
// New codecs take new values; a value is never reused. The exact byte layout
// of each codec's blocks is documented in encode.go.
type Codec uint8

const (
	// None stores blocks uncompressed.
	None Codec = 0
	// Snappy compresses blocks in the Snappy block format, written by
	// github.com/klauspost/compress/s2 in its Snappy-compatible mode.
	//
	// The Snappy format was chosen over S2's own extended format because
	// the codec's name is a promise: any Snappy decoder (the C++ reference,
	// golang/snappy, other engines' tools) can read these blocks. S2's
	// extensions buy nothing on blocks of a few KiB: on the 4 KiB key/value
	// block of BenchmarkEncode, S2 gives 1740 bytes in 3.6 µs against
	// Snappy's 1741 bytes in 2.9 µs. Their gains are on large and streamed
	// inputs.
	Snappy Codec = 1
	// Zstd compresses blocks with Zstandard (RFC 8878) at the
	// SpeedDefault level of github.com/klauspost/compress/zstd (close to
	// the reference level 3): slower than Snappy, smaller blocks.
	Zstd Codec = 2

	// numCodecs is one past the largest known Codec.
	numCodecs = 3
)

var codecNames = [numCodecs]string{
	None:   "none",
	Snappy: "snappy",
	Zstd:   "zstd",
}

// String returns the codec's name as ParseCodec accepts it ("none",
// "snappy", "zstd"), or "Codec(N)" for an unknown value.
func (c Codec) String() string {
	if c < numCodecs {
		return codecNames[c]
	}
	return "Codec(" + strconv.Itoa(int(c)) + ")"
}

// ParseCodec returns the codec named s, ignoring case: "none", "snappy" or
// "zstd". Any other name is an error.
func ParseCodec(s string) (Codec, error) {
	for c, name := range codecNames {
		if strings.EqualFold(s, name) {
			return Codec(c), nil
		}
	}
	return 0, fmt.Errorf("compress: unknown codec %q (want none, snappy or zstd)", s)
}
