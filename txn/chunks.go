package txn

import "github.com/stratadb/strata/internal/base"

const (
	// initialBufSize is the capacity of a new overlay's first chunk.
	initialBufSize = 128
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
// length).
//
// Invariants, which Overlay.Parts documents to the engine:
//   - chunks[0] starts with the whole header: the first chunk is created
//     with it, and is never sealed before it holds it.
//   - An entry never straddles chunks: reserve makes room for a whole
//     entry in the last chunk (sealing it and starting a new one when it
//     does not fit) before appendEntry writes it.
//   - No chunk is empty: chunk 0 holds the header, and a chunk is added
//     only for the entry about to be written into it.
//
// Offsets are global: the offset of a byte of chunk i is starts[i] plus its
// index in chunk i, which is its offset in the representation once the
// chunks are joined. Since joining keeps every global offset, an offset
// taken before a join still locates its byte afterwards (locate).
type chunkBuf struct {
	chunks [][]byte // chunks[0] starts with the header; appends go to the last
	starts []int    // starts[i] is the global offset of chunks[i][0]
}

func newChunkBuf() chunkBuf { return chunkBufWithCap(initialBufSize) }

// chunkBufWithCap returns a buffer holding a zero header, with room for
// capacity bytes in all.
func chunkBufWithCap(capacity int) chunkBuf {
	return chunkBuf{chunks: [][]byte{make([]byte, HeaderSize, capacity)}, starts: []int{0}}
}

// len returns the length of the representation.
func (c *chunkBuf) len() int {
	i := len(c.chunks) - 1
	return c.starts[i] + len(c.chunks[i])
}

// reserve makes room for size bytes (one whole entry) in the last chunk.
func (c *chunkBuf) reserve(size int) {
	i := len(c.chunks) - 1
	last := c.chunks[i]
	if cap(last)-len(last) >= size {
		return
	}
	if i == 0 && len(last)+size <= copyGrowLimit {
		c.chunks[0] = growBuf(last, size)
		return
	}
	c.starts = append(c.starts, c.starts[i]+len(last))
	c.chunks = append(c.chunks, make([]byte, 0, max(size, min(2*cap(last), maxChunk))))
}

// appendEntry appends an entry for which reserve made room, and returns its
// key and value (capped, aliasing the chunk) and their global offsets.
func (c *chunkBuf) appendEntry(kind base.Kind, key, value []byte) (k, v []byte, keyOff, valOff int) {
	i := len(c.chunks) - 1
	var ko, vo int
	c.chunks[i], ko, vo = appendEntry(c.chunks[i], kind, key, value)
	b, start := c.chunks[i], c.starts[i]
	k = b[ko : ko+len(key) : ko+len(key)]
	if kind == base.KindSet {
		v = b[vo : vo+len(value) : vo+len(value)]
		valOff = start + vo
	}
	return k, v, start + ko, valOff
}

// locate returns the index of the chunk holding the entry whose key starts
// at global offset keyOff, and the global offset at which that chunk
// starts. It searches by keyOff-1, the last byte of the key's length, which
// (unlike keyOff itself, for an empty key at the end of a chunk) is always
// inside the entry.
func (c *chunkBuf) locate(keyOff uint32) (part int, start int) {
	if len(c.starts) == 1 {
		return 0, 0
	}
	at := int(keyOff) - 1
	lo, hi := 0, len(c.starts)-1 // the answer is in [lo, hi]
	for lo < hi {
		mid := int(uint(lo+hi+1) >> 1)
		if c.starts[mid] <= at {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, c.starts[lo]
}

// parts returns the chunks, capped so that appending to the outer slice
// never writes into the buffer's own.
func (c *chunkBuf) parts() [][]byte { return c.chunks[:len(c.chunks):len(c.chunks)] }

// bytes returns the representation as one slice. When it is held in
// several chunks, it copies them into one buffer, which becomes the only
// chunk (the old ones stay intact for the items and parts that reference
// them).
func (c *chunkBuf) bytes() []byte {
	if len(c.chunks) > 1 {
		joined := make([]byte, 0, c.len())
		for _, b := range c.chunks {
			joined = append(joined, b...)
		}
		c.chunks = [][]byte{joined}
		c.starts = []int{0}
	}
	return c.chunks[0]
}

// header returns the header bytes, in place.
func (c *chunkBuf) header() []byte { return c.chunks[0][:HeaderSize] }
