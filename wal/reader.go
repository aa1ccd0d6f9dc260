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
// A Reader is for one goroutine at a time. Damage (a checksum mismatch, an
// impossible length or type, a chunk of another log, a broken FIRST ..
// LAST sequence, a file that ends inside a chunk or a record) ends the
// read in one of two ways:
//
//   - if the log is the newest one and no valid chunk of this log appears
//     anywhere after the damage, it is a torn tail (a crash mid-write, or a
//     zero-filled or garbage tail): Next returns io.EOF, and Offset tells
//     where the valid prefix ends, so the caller can truncate the rest;
//   - otherwise Next returns an error wrapping base.ErrCorruption that
//     names the file and the offset of the damage.
//
// Memory is bounded by the data actually read: one 32 KiB block buffer and
// a record buffer that grows chunk by chunk, never from a length field.
// Telling a torn tail from damage reads the rest of the file once; only
// offsets whose header looks like a chunk of this log pay for a checksum,
// so the cost stays linear in the file size (about 100 ms per MiB of a
// hostile file made of such headers, far less for zeros or garbage).
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
		case c.bad != "":
			return nil, r.damage(c.off, c.off+1, c.bad)
		case c.typ == 0 && inRecord:
			return nil, r.damage(recStart, c.off, fmt.Sprintf(
				"file ends at offset %d inside the record", c.off))
		case c.typ == 0:
			r.err = io.EOF
			return nil, io.EOF
		case (c.typ == fullChunk || c.typ == firstChunk) && inRecord:
			return nil, r.damage(recStart, c.off, fmt.Sprintf(
				"record lacks its last chunk (chunk of type %d at offset %d)", c.typ, c.off))
		case (c.typ == middleChunk || c.typ == lastChunk) && !inRecord:
			return nil, r.damage(c.off, c.off, fmt.Sprintf(
				"chunk of type %d does not follow a first chunk", c.typ))
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
	if r.pos+headerSize > len(r.block) {
		c.bad = "file ends inside a chunk header"
		return c, nil
	}
	h := r.block[r.pos:]
	length := int(binary.LittleEndian.Uint16(h[4:]))
	c.typ = h[6]
	end := r.pos + headerSize + length
	c.bad = r.checkHeader(h, end)
	if c.bad == "" && chunkCRC(r.block[r.pos+6:end]) != binary.LittleEndian.Uint32(h) {
		c.bad = "chunk checksum mismatch"
	}
	if c.bad == "" {
		c.payload = r.block[r.pos+headerSize : end]
		r.pos = end
	}
	return c, nil
}

// checkHeader returns what is wrong with the chunk header h, which ends at
// end in the block, short of its checksum, or "" if nothing is.
func (r *Reader) checkHeader(h []byte, end int) string {
	typ := h[6]
	logNum := binary.LittleEndian.Uint32(h[7:])
	switch {
	case typ == 0 && logNum == 0 && binary.LittleEndian.Uint64(h) == 0:
		return "zeroed chunk header"
	case typ < fullChunk || typ > lastChunk:
		return fmt.Sprintf("invalid chunk type %d", typ)
	case logNum != r.logNum:
		return fmt.Sprintf("chunk of log %d in log %d", logNum, r.logNum)
	case end > blockSize:
		return fmt.Sprintf("chunk length %d overflows its block", end-r.pos-headerSize)
	case end > len(r.block):
		return "file ends inside a chunk"
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

// damage ends the read at damage found at offset off: torn tail (io.EOF)
// or corruption, by the rule in the Reader's doc. scanFrom is the first
// offset where a later valid chunk would prove damage.
func (r *Reader) damage(off, scanFrom int64, what string) error {
	if r.newest {
		found, err := r.validChunkAfter(scanFrom)
		if err != nil {
			r.err = err
			return err
		}
		if !found {
			r.err = io.EOF
			return io.EOF
		}
	}
	r.err = base.CorruptionErrorf("wal: %s: %s at offset %d", r.name, what, off)
	return r.err
}

// validChunkAfter reports whether a valid chunk of this log starts at or
// after file offset from (which lies in the current block or at its end),
// reading the rest of the source.
func (r *Reader) validChunkAfter(from int64) (bool, error) {
	start := int(from - r.blockOff)
	for {
		if hasValidChunk(r.block, start, r.logNum) {
			return true, nil
		}
		if r.eof {
			return false, nil
		}
		if err := r.readBlock(); err != nil {
			return false, err
		}
		start = 0
	}
}

// hasValidChunk reports whether a whole, valid chunk of log logNum starts at
// some offset >= start of block. Candidates are found by searching for the
// log number field; those with a known type and a length that fits pay for
// a checksum.
func hasValidChunk(block []byte, start int, logNum uint32) bool {
	var pattern [4]byte
	binary.LittleEndian.PutUint32(pattern[:], logNum)
	for p := start; p+headerSize <= len(block); p++ {
		i := bytes.Index(block[p+7:], pattern[:])
		if i < 0 {
			return false
		}
		p += i
		if p+headerSize > len(block) {
			return false
		}
		h := block[p:]
		if typ := h[6]; typ < fullChunk || typ > lastChunk {
			continue
		}
		end := p + headerSize + int(binary.LittleEndian.Uint16(h[4:]))
		if end <= len(block) && chunkCRC(block[p+6:end]) == binary.LittleEndian.Uint32(h) {
			return true
		}
	}
	return false
}
