package txn

import "github.com/stratadb/strata/internal/base"

const (
	// initialBufSize is the capacity of a new overlay's first chunk.
	initialBufSize = 512
	// copyGrowLimit is the size up to which the first chunk grows by
	// copying (doubling), so that small batches stay contiguous. Items keep
	// referencing the old, smaller arrays, which at most add up to this.
	copyGrowLimit = 64 << 10
	// maxChunk caps the size of the chunks added past copyGrowLimit (an
	// entry larger than it gets a chunk of its own size).
	maxChunk = 1 << 20
)

// chunkBuf holds an overlay's batch representation as it grows, without
// ever moving bytes that items reference. It starts as one buffer (header
// included) that doubles by copying up to copyGrowLimit; past that it adds
// chunks (doubling up to maxChunk) instead of copying, so the memory held
// stays close to the length: a copying growth would leave every older
// array alive under the items that point into it (up to 4 times the
// length). Entries never straddle chunks. Offsets are global: the offset of
// a byte of chunk i is the total length of chunks 0..i-1 plus its index in
// chunk i, which is its offset in the representation once the chunks are
// joined.
type chunkBuf struct {
	chunks [][]byte // chunks[0] starts with the header; appends go to the last
	sealed int      // total length of all chunks but the last
}

func newChunkBuf() chunkBuf {
	return chunkBuf{chunks: [][]byte{make([]byte, HeaderSize, initialBufSize)}}
}

// len returns the length of the representation.
func (c *chunkBuf) len() int { return c.sealed + len(c.chunks[len(c.chunks)-1]) }

// reserve makes room for size bytes in the last chunk.
func (c *chunkBuf) reserve(size int) {
	last := c.chunks[len(c.chunks)-1]
	if cap(last)-len(last) >= size {
		return
	}
	if len(c.chunks) == 1 && len(last)+size <= copyGrowLimit {
		c.chunks[0] = growBuf(last, size)
		return
	}
	c.sealed += len(last)
	c.chunks = append(c.chunks, make([]byte, 0, max(size, min(2*cap(last), maxChunk))))
}

// appendEntry appends an entry for which reserve made room, and returns its
// key and value (capped, aliasing the chunk) and their global offsets.
func (c *chunkBuf) appendEntry(kind base.Kind, key, value []byte) (k, v []byte, keyOff, valOff int) {
	i := len(c.chunks) - 1
	var ko, vo int
	c.chunks[i], ko, vo = appendEntry(c.chunks[i], kind, key, value)
	b := c.chunks[i]
	k = b[ko : ko+len(key) : ko+len(key)]
	if kind == base.KindSet {
		v = b[vo : vo+len(value) : vo+len(value)]
		valOff = c.sealed + vo
	}
	return k, v, c.sealed + ko, valOff
}

// bytes returns the representation as one slice. When it is held in
// several chunks, it copies them into one buffer, which becomes the only
// chunk (the old ones stay intact for the items that reference them).
func (c *chunkBuf) bytes() []byte {
	if len(c.chunks) > 1 {
		joined := make([]byte, 0, c.len())
		for _, b := range c.chunks {
			joined = append(joined, b...)
		}
		c.chunks = [][]byte{joined}
		c.sealed = 0
	}
	return c.chunks[0]
}

// header returns the header bytes, in place.
func (c *chunkBuf) header() []byte { return c.chunks[0][:HeaderSize] }
