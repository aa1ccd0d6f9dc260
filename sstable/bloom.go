package sstable

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
)

// This file builds and probes the filter block (layout and hash in
// writer.go): a Bloom filter split into 512-bit lines, a key's k bits all in
// one line, so that a probe costs one cache miss.

const (
	bloomLineBytes = 64
	bloomLineBits  = bloomLineBytes * 8
	bloomMaxProbes = 30
	hashM1         = 0x9e3779b97f4a7c15
	hashM2         = 0xbf58476d1ce4e5b9
)

// hash64 is the filter's hash of a user key (see writer.go).
func hash64(key []byte) uint64 {
	h := uint64(len(key)) * hashM1
	for len(key) >= 8 {
		h = bits.RotateLeft64(h^(binary.LittleEndian.Uint64(key)*hashM2), 31) * hashM1
		key = key[8:]
	}
	if len(key) > 0 {
		var w uint64
		for i, c := range key {
			w |= uint64(c) << (8 * i)
		}
		h = bits.RotateLeft64(h^(w*hashM2), 31) * hashM1
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// bloomProbes returns k for bitsPerKey.
func bloomProbes(bitsPerKey int) int {
	return min(max(bitsPerKey*69/100, 1), bloomMaxProbes)
}

// bloomLine returns the line of hash h among n lines.
func bloomLine(h uint64, n uint32) uint32 {
	return uint32((uint64(uint32(h)) * uint64(n)) >> 32)
}

// bloomChunkLen is the number of hashes in one chunk of a bloomBuilder.
const bloomChunkLen = 8192

// bloomChunks recycles the hash chunks of finished builders, so that a
// process writing table after table allocates none in steady state.
var bloomChunks = sync.Pool{New: func() any { return new([bloomChunkLen]uint64) }}

// bloomBuilder collects the hashes of a table's distinct user keys in
// fixed-size chunks: adding never copies what was collected.
type bloomBuilder struct {
	chunks []*[bloomChunkLen]uint64
	n      int // hashes collected
}

// add records a user key; the caller skips repeats of the previous key.
func (b *bloomBuilder) add(userKey []byte) {
	i := b.n % bloomChunkLen
	if i == 0 {
		b.chunks = append(b.chunks, bloomChunks.Get().(*[bloomChunkLen]uint64))
	}
	b.chunks[len(b.chunks)-1][i] = hash64(userKey)
	b.n++
}

// finish returns the filter block for the keys added, and recycles the
// builder's chunks.
func (b *bloomBuilder) finish(bitsPerKey int) []byte {
	lines := uint32((uint64(b.n)*uint64(bitsPerKey) + bloomLineBits - 1) / bloomLineBits)
	k := bloomProbes(bitsPerKey)
	f := make([]byte, int(lines)*bloomLineBytes+1)
	f[len(f)-1] = byte(k)
	for i := range b.n {
		h := b.chunks[i/bloomChunkLen][i%bloomChunkLen]
		line := f[int(bloomLine(h, lines))*bloomLineBytes:]
		g := uint32(h >> 32)
		for range k {
			bit := g >> 23
			line[bit/8] |= 1 << (bit % 8)
			g *= 0x9e3779b9
		}
	}
	b.release()
	return f
}

// release returns the chunks to the pool; the builder is empty afterwards.
func (b *bloomBuilder) release() {
	for i, c := range b.chunks {
		bloomChunks.Put(c)
		b.chunks[i] = nil
	}
	b.chunks, b.n = b.chunks[:0], 0
}

// bloomFilter is a decoded filter block.
type bloomFilter struct {
	lines []byte
	n     uint32 // number of lines
	k     int
}

// decodeFilter checks and wraps a filter block.
func decodeFilter(b []byte) (bloomFilter, error) {
	if len(b) == 0 || (len(b)-1)%bloomLineBytes != 0 {
		return bloomFilter{}, fmt.Errorf("filter block of %d bytes is not whole lines and a probe count", len(b))
	}
	k := int(b[len(b)-1])
	if k < 1 || k > bloomMaxProbes {
		return bloomFilter{}, fmt.Errorf("filter block has %d probes, outside 1..%d", k, bloomMaxProbes)
	}
	n := (len(b) - 1) / bloomLineBytes
	if uint64(n) > 1<<32-1 {
		return bloomFilter{}, fmt.Errorf("filter block has %d lines", n)
	}
	return bloomFilter{lines: b[:len(b)-1], n: uint32(n), k: k}, nil
}

// mayContain reports whether userKey may be in the table; false is certain.
func (f *bloomFilter) mayContain(userKey []byte) bool {
	if f.n == 0 {
		return false
	}
	h := hash64(userKey)
	line := f.lines[int(bloomLine(h, f.n))*bloomLineBytes:]
	line = line[:bloomLineBytes]
	g := uint32(h >> 32)
	for range f.k {
		bit := g >> 23
		if line[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
		g *= 0x9e3779b9
	}
	return true
}
