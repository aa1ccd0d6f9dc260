package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/stratadb/strata/internal/base"
)

// Reader reads the records of one log file back, in order.
//
// A Reader is for one goroutine at a time. Damage ends the read: a checksum
// mismatch, an impossible header (type, length, a chunk of another log, a
// synced offset beyond the chunk's offset), an intact chunk at an offset
// other than its own, a broken FIRST .. LAST sequence, or a file that ends
// inside a chunk or a record. Say the reader finds it at offset X (the
// offset of the chunk, or of the end of the file). Then:
//
//   - in an older log (newest false), Next returns an error wrapping
//     base.ErrCorruption that names the file and X;
//   - in the newest log, the reader reads the rest of the file, looking for
//     proof that the damage is no torn tail. A crash loses or tears writes
//     but never moves an intact chunk (log files are never reused: TESTPLAN
//     F10), so a valid chunk of this log (a plausible header, a correct
//     checksum) found where a chunk starts but not at the offset it records
//     as its own proves the log damaged; and a valid chunk after X at its
//     own offset that records a synced offset above X proves the damaged
//     bytes synced. Either way Next returns the same corruption error.
//     Otherwise the damage is a torn tail, unsynced bytes that a crash left
//     partly written, written out of order or not at all: Next returns
//     io.EOF, and Offset tells where the valid prefix ends (the end of the
//     last complete record), so the caller can truncate the rest.
//
// Where a chunk starts is known only at X, at the start of every later
// block, and right after a valid chunk at its own offset that follows such
// a start: a moved chunk counts there only, never inside a payload, which
// may hold any bytes (a value holding a copy of a log is no damage). A
// chunk at its own offset counts anywhere, as a copy of one inside a
// payload lies at its own offset only by a coincidence of the value's
// placement.
//
// A record after the damage is never returned, even when its chunks are
// valid. Damage to the last synced bytes with no later chunk to prove them
// synced reads as a torn tail: the log holds no evidence either way.
//
// Memory is bounded by the data actually read: one 32 KiB block buffer and
// a record buffer that grows chunk by chunk, never from a length field.
// Telling a torn tail from damage reads the rest of the file once; the
// chunks of each later block pay for one checksum, and of the other
// offsets only those whose header looks like a chunk of this log at its
// own offset with a synced offset above X do, so the cost stays linear in
// the file size: at most one checksum of at most a block per byte offset,
// about 40 ms per MiB for the costliest layout known (BenchmarkHostileTail:
// headers back to back), far less for zeros, garbage or a real unsynced
// tail, whose chunks record no synced offset above X.
type Reader struct {
	r      io.Reader
	logNum uint32
	name   string
	newest bool

	buf      []byte // blockSize bytes, allocated at the first read
	block    []byte // the current block: the prefix of buf read
	blockOff int64  // file offset of block[0]
	pos      int    // offset in block of the next chunk
	eof      bool   // the source is exhausted: block is the last one

	rec []byte // the record being assembled from chunks
	off int64  // end offset of the last complete record returned
	err error  // sticky: io.EOF, damage, or a read error
}

// NewReader returns a Reader of the log in r, whose file number is logNum.
// name is the file's name, for errors. newest says whether this is the
// newest log, whose torn tail counts as its clean end; in any other log,
// every damage or incomplete end is corruption.
func NewReader(r io.Reader, logNum uint64, name string, newest bool) *Reader {
	return &Reader{r: r, logNum: uint32(logNum), name: name, newest: newest}
}

// Next returns the next complete record. The slice is valid until the next
// call to Next; the caller copies what it keeps. At the end of the log (or
// of the newest log's valid prefix) Next returns io.EOF. On damage it
// returns an error wrapping base.ErrCorruption; a read error of the source
// is returned wrapped as it is. Once Next has returned an error, it returns
// the same error for ever.
func (r *Reader) Next() (rec []byte, err error) {
	if r.err != nil {
		return nil, r.err
	}
	inRecord := false
	var recStart int64
	for {
		c, err := r.nextChunk()
		if err != nil {
			r.err = err
			return nil, err
		}
		switch {
		case c.moved:
			r.err = base.CorruptionErrorf("wal: %s: %s at offset %d", r.name, c.bad, c.off)
			return nil, r.err
		case c.bad != "":
			return nil, r.damage(c.off, c.bad)
		case c.typ == 0 && inRecord:
			return nil, r.damage(c.off, fmt.Sprintf(
				"record from offset %d cut short by the end of the file", recStart))
		case c.typ == 0:
			r.err = io.EOF
			return nil, io.EOF
		case (c.typ == fullChunk || c.typ == firstChunk) && inRecord:
			return nil, r.damage(c.off, fmt.Sprintf(
				"record from offset %d interrupted by a chunk of type %d", recStart, c.typ))
		case (c.typ == middleChunk || c.typ == lastChunk) && !inRecord:
			return nil, r.damage(c.off, fmt.Sprintf(
				"chunk of type %d without a first chunk", c.typ))
		case c.typ == fullChunk:
			r.off = r.blockOff + int64(r.pos)
			return c.payload, nil
		case c.typ == firstChunk:
			inRecord, recStart = true, c.off
			r.rec = append(r.rec[:0], c.payload...)
		case c.typ == middleChunk:
			r.rec = append(r.rec, c.payload...)
		default: // lastChunk
			r.rec = append(r.rec, c.payload...)
			r.off = r.blockOff + int64(r.pos)
			return r.rec, nil
		}
	}
}

// Offset returns the end offset of the last complete record Next returned
// (0 before the first): the length of the log's valid prefix once Next has
// returned io.EOF.
func (r *Reader) Offset() int64 { return r.off }

// chunk is one chunk read by nextChunk.
type chunk struct {
	typ     byte   // 0 at the clean end of the file
	payload []byte // valid until the next block is read
	off     int64  // file offset of the chunk (or of the end of file)
	bad     string // what is wrong with the chunk, if anything
	moved   bool   // the chunk is intact but not at its own offset
}

// nextChunk reads the chunk at the current position, skipping block
// trailers. The returned error is a read error of the source only.
func (r *Reader) nextChunk() (chunk, error) {
	for !r.eof && (r.pos == len(r.block) || r.pos > blockSize-headerSize) {
		if err := r.readBlock(); err != nil {
			return chunk{}, err
		}
	}
	c := chunk{off: r.blockOff + int64(r.pos)}
	if r.pos == len(r.block) {
		return c, nil // clean end
	}
	if c.bad = chunkProblem(r.block, r.pos, r.logNum); c.bad != "" {
		return c, nil
	}
	h := r.block[r.pos:]
	if own := binary.LittleEndian.Uint64(h[11:]); own != uint64(c.off) {
		c.bad, c.moved = fmt.Sprintf("intact chunk of offset %d misplaced", own), true
		return c, nil
	}
	end := r.pos + headerSize + int(binary.LittleEndian.Uint16(h[4:]))
	c.typ, c.payload, r.pos = h[6], r.block[r.pos+headerSize:end], end
	return c, nil
}

// zeroHeader is a chunk header of zero bytes, as a zero-filled tail holds.
var zeroHeader [headerSize]byte

// chunkProblem returns what is wrong with the chunk of log logNum that
// starts at p in block (a block of the log, p not in its trailer), or "" if
// it is whole and valid, its checksum included. Where it lies does not
// matter here.
func chunkProblem(block []byte, p int, logNum uint32) string {
	if p+headerSize > len(block) {
		return "file ends inside a chunk header"
	}
	h := block[p:]
	typ := h[6]
	num := binary.LittleEndian.Uint32(h[7:])
	own := binary.LittleEndian.Uint64(h[11:])
	synced := binary.LittleEndian.Uint64(h[19:])
	length := int(binary.LittleEndian.Uint16(h[4:]))
	end := p + headerSize + length
	switch {
	case bytes.Equal(h[:headerSize], zeroHeader[:]):
		return "zeroed chunk header"
	case typ < fullChunk || typ > lastChunk:
		return fmt.Sprintf("invalid chunk type %d", typ)
	case num != logNum:
		return fmt.Sprintf("chunk of log %d in log %d", num, logNum)
	case synced > own:
		return fmt.Sprintf("synced offset %d beyond the chunk's offset %d", synced, own)
	case end > blockSize:
		return fmt.Sprintf("chunk length %d overflows its block", length)
	case end > len(block):
		return "file ends inside a chunk"
	case chunkCRC(block[p+6:end]) != binary.LittleEndian.Uint32(h):
		return "chunk checksum mismatch"
	}
	return ""
}

// readBlock reads the next block of the source into r.block.
func (r *Reader) readBlock() error {
	if r.buf == nil {
		r.buf = make([]byte, blockSize)
	}
	r.blockOff += int64(len(r.block))
	n, err := io.ReadFull(r.r, r.buf)
	r.block, r.pos = r.buf[:n], 0
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		r.eof = true
	case err != nil:
		return fmt.Errorf("wal: %s: read at offset %d: %w", r.name, r.blockOff+int64(n), err)
	}
	return nil
}

// damage ends the read at damage found at file offset x (in the current
// block, or at its end at the end of the file): torn tail (io.EOF) or
// corruption, by the rule in the Reader's doc.
func (r *Reader) damage(x int64, what string) error {
	if !r.newest {
		r.err = base.CorruptionErrorf("wal: %s: %s at offset %d", r.name, what, x)
		return r.err
	}
	p, err := r.proofAfter(x)
	switch {
	case err != nil:
		r.err = err
	case !p.found:
		r.err = io.EOF
	case p.own != uint64(p.off):
		r.err = base.CorruptionErrorf(
			"wal: %s: %s at offset %d (not a torn write: the intact chunk at offset %d belongs at offset %d)",
			r.name, what, x, p.off, p.own)
	default:
		r.err = base.CorruptionErrorf(
			"wal: %s: %s at offset %d (synced: the chunk at offset %d records the log synced up to offset %d)",
			r.name, what, x, p.off, p.synced)
	}
	return r.err
}

// proof is a valid chunk that proves some damage is no torn tail: it
// records a synced offset above the damage, or it lies at an offset other
// than its own.
type proof struct {
	found  bool
	off    int64  // file offset of the chunk
	own    uint64 // the offset it records as its own
	synced uint64 // its synced offset
}

// proofAfter returns the first valid chunk of this log that starts after
// file offset x (which lies in the current block or at its end) and proves
// the damage at x no torn tail, reading the rest of the source. Blocks
// after the current one are followed chunk by chunk from their start.
func (r *Reader) proofAfter(x int64) (proof, error) {
	start := int(x + 1 - r.blockOff)
	for {
		if p := findProof(r.block, r.blockOff, start, r.logNum, x); p.found {
			return p, nil
		}
		if r.eof {
			return proof{}, nil
		}
		if err := r.readBlock(); err != nil {
			return proof{}, err
		}
		start = 0
	}
}

// findProof returns the first whole, valid chunk of log logNum that starts
// at some offset >= start of block (whose first byte is at file offset
// blockOff) and proves damage at x no torn tail: one where a chunk starts
// (when start is 0, the block's first chunk and those that follow it at
// their own offsets) but not at its own offset, or one at its own offset
// that records a synced offset above x.
func findProof(block []byte, blockOff int64, start int, logNum uint32, x int64) proof {
	if start == 0 {
		if p, ok := chainProof(block, blockOff, logNum, x); ok {
			return p
		}
	}
	return scanProof(block, blockOff, start, logNum, x)
}

// chainProof follows the chunks of block from its start while they are
// valid and at their own offsets, and returns the first that proves damage
// at x (a moved chunk, or one that records a synced offset above x).
func chainProof(block []byte, blockOff int64, logNum uint32, x int64) (proof, bool) {
	for p := 0; p+headerSize <= len(block); {
		c, ok := validChunk(block, p, logNum)
		if !ok {
			return proof{}, false
		}
		c.off = blockOff + int64(p)
		if c.own != uint64(c.off) || c.synced > uint64(x) {
			c.found = true
			return c, true
		}
		p += headerSize + int(binary.LittleEndian.Uint16(block[p+4:]))
	}
	return proof{}, false
}

// scanProof returns the first whole, valid chunk of log logNum that starts
// at some offset >= start of block, lies at its own offset and records a
// synced offset above x. Candidates are found by searching for the log
// number field; only those with a known type, such offsets and a length
// that fits pay for a checksum.
func scanProof(block []byte, blockOff int64, start int, logNum uint32, x int64) proof {
	var pattern [4]byte
	binary.LittleEndian.PutUint32(pattern[:], logNum)
	for p := start; p+headerSize <= len(block); p++ {
		i := bytes.Index(block[p+7:], pattern[:])
		if i < 0 {
			return proof{}
		}
		p += i
		if p+headerSize > len(block) {
			return proof{}
		}
		h := block[p:]
		off := blockOff + int64(p)
		if synced := binary.LittleEndian.Uint64(h[19:]); synced <= uint64(x) || binary.LittleEndian.Uint64(h[11:]) != uint64(off) {
			continue
		}
		if c, ok := validChunk(block, p, logNum); ok {
			c.found, c.off = true, off
			return c
		}
	}
	return proof{}
}

// validChunk reports whether a whole, valid chunk of log logNum starts at
// p in block (see chunkProblem), and returns the offsets it records (not
// its position).
func validChunk(block []byte, p int, logNum uint32) (proof, bool) {
	if chunkProblem(block, p, logNum) != "" {
		return proof{}, false
	}
	h := block[p:]
	return proof{own: binary.LittleEndian.Uint64(h[11:]), synced: binary.LittleEndian.Uint64(h[19:])}, true
}
