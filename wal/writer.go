// Package wal is strata's record log: the write-ahead log of commits (and the
// framing the manifest reuses). It stores opaque records, one per commit,
// each protected by CRC32C, and knows nothing of keys.
//
// A Writer frames records into a pending buffer (Append, no I/O) and writes
// them with group commit (Flush): concurrent committers share one write and
// one sync. A Reader returns the records back, telling a torn tail of the
// newest log (lost or damaged unsynced bytes, treated as the clean end) from
// damage (an error wrapping base.ErrCorruption that names the file and
// offset): every chunk records its own offset, so a chunk moved by a
// misdirected write is known, and how much of the log was synced when it
// was framed, so damage to synced bytes is known.
//
// # File format
//
// This is format version 3. Versions 1 (an 11-byte chunk header) and 2 (no
// chunk offset: a block moved whole within a log read back as valid) were
// never released; no reader of them exists.
//
// A log file is a sequence of 32 KiB blocks. The last block may be partial.
// Every block starts with a chunk header; a chunk never crosses a block edge.
//
//	+-----------------+-----------------+----------+----------------------+
//	| block 0 (32768) | block 1 (32768) |   ...    | last block (partial) |
//	+-----------------+-----------------+----------+----------------------+
//
//	block := chunk* trailer?
//
//	chunk (27-byte header, then the payload):
//	+---------+-----------+---------+------------+------------+---------------+-----------------+
//	| CRC (4) | Length(2) | Type(1) | LogNum (4) | Offset (8) | SyncedOff (8) | Payload(Length) |
//	+---------+-----------+---------+------------+------------+---------------+-----------------+
//	 0         4           6         7            11           19              27
//
//	CRC       uint32 little-endian: CRC-32C (Castagnoli polynomial, not
//	          masked) of bytes 6 .. 27+Length of the chunk, that is the
//	          type byte, the log number, offset and synced offset bytes and
//	          the payload.
//	Length    uint16 little-endian: payload length. 27+Length never exceeds
//	          the room left in the block.
//	Type      1 FULL   the whole record is this chunk's payload
//	          2 FIRST  first piece of a record split across blocks
//	          3 MIDDLE a middle piece (zero or more per record)
//	          4 LAST   the last piece
//	          A record is FULL, or FIRST MIDDLE* LAST in consecutive chunks.
//	          Other values are invalid; a later format version would add new
//	          types (as LevelDB's recyclable chunks did) rather than change
//	          these.
//	LogNum    uint32 little-endian: the low 32 bits of the log's file number,
//	          so that stale chunks of another log are never taken for this
//	          one's.
//	Offset    uint64 little-endian: the file offset of the chunk itself, so
//	          that an intact chunk found anywhere else (a block swapped,
//	          copied or written to the wrong place) is known as damage: the
//	          pieces of a record can never be reordered undetected.
//	SyncedOff uint64 little-endian: the length of the log's durable prefix
//	          (bytes of this file written and synced) when the writer framed
//	          the chunk. It never exceeds the chunk's Offset, and it is
//	          always the end of a record (or 0). A reader uses it to tell
//	          lost unsynced bytes from damaged synced ones (see Reader).
//
//	trailer: when fewer than 27 bytes remain in a block, they are zero bytes
//	and the next chunk starts at the next block. When exactly 27 bytes
//	remain, the next chunk goes there (a FIRST chunk may carry 0 bytes).
//
// Records may be empty (a FULL chunk with Length 0). A record of n bytes
// that starts with r bytes of room left in its block (r >= 27) is a FULL
// chunk if n <= r-27, and otherwise FIRST (r-27 bytes), MIDDLE chunks of
// 32741 bytes, and a LAST chunk with the rest. Every chunk of a record
// carries the same synced offset.
//
// Worked example: in log 7, record "ab" is appended and synced, then
// record "" is appended; the two make 56 bytes:
//
//	cc cc cc cc 02 00 01 07 00 00 00 00 00 00 00 00 00 00 00
//	            00 00 00 00 00 00 00 00 61 62
//	    FULL "ab" at offset 0, synced offset 0; cc.. is the CRC of bytes 6 .. 28
//	cc cc cc cc 00 00 01 07 00 00 00 1d 00 00 00 00 00 00 00
//	            1d 00 00 00 00 00 00 00
//	    FULL "" at offset 29 (0x1d), synced offset 29; CRC of bytes 6 .. 26 of the chunk
//
// These constants are part of the file format and should not be changed.
package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/stratadb/strata/internal/vfs"
)

// These constants are part of the file format and should not be changed.
const (
	blockSize  = 32 << 10 // bytes per block
	headerSize = 27       // bytes of a chunk header

	fullChunk   byte = 1
	firstChunk  byte = 2
	middleChunk byte = 3
	lastChunk   byte = 4

	// maxPayload is the largest payload of one chunk: a whole block.
	maxPayload = blockSize - headerSize
)

// crcTable is the CRC-32C (Castagnoli) table.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// chunkCRC is the checksum stored in the chunk whose type byte starts b
// (b = type, log number, offset, synced offset, payload).
func chunkCRC(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: writer is closed")

// maxRetainedBuf is the largest pending buffer a Writer keeps for reuse after
// writing it; a larger one (left by a huge record) is dropped for the GC.
const maxRetainedBuf = 4 << 20

// Writer appends records to one log file, with group commit.
//
// All methods are safe for concurrent use. Append frames a record into a
// pending buffer and returns at once; Flush writes (and optionally syncs)
// the file up to an offset Append returned. Concurrent Flush calls form
// groups: one caller (the leader) writes everything appended so far with one
// Write and, if any caller of the group asked for it, one Sync, while the
// others wait. Appends go on while a group is being written (the pending
// buffer is double-buffered).
//
// A failed Write or Sync (a short write is a failure) poisons the Writer:
// every later Append and Flush returns an error wrapping the first failure.
// A sync is never retried (fsyncgate): the data it covered may be lost, so
// the caller must stop using this log.
//
// The Writer takes ownership of the file and closes it in Close.
type Writer struct {
	f      vfs.File
	logNum uint64

	mu struct {
		sync.Mutex
		// cond is signalled when a leader finishes its group.
		cond sync.Cond
		// buf holds the framed bytes not yet handed to a leader; buf[0]
		// goes at file offset start.
		buf   []byte
		start int64
		// spare is the other buffer, nil while a leader is writing it.
		spare []byte
		// written and synced are the file offsets up to which data has
		// been written to the file and made durable.
		written, synced int64
		// syncReq is the largest offset a waiting Flush wants synced.
		syncReq  int64
		flushing bool // a leader is writing or syncing
		closed   bool
		err      error // sticky: the first write or sync failure
	}

	closeOnce sync.Once
	closeErr  error
}

// NewWriter returns a Writer that appends records to f, an empty file opened
// for writing at offset 0. logNum is the log's file number; its low 32 bits
// go in every chunk. The Writer owns f from now on.
func NewWriter(f vfs.File, logNum uint64) *Writer {
	w := &Writer{f: f, logNum: logNum}
	w.mu.cond.L = &w.mu.Mutex
	return w
}

// Append frames rec (it is copied; the caller may reuse it at once) after
// the records appended before and returns the file offset at which the
// record ends, to pass to Flush. It does no I/O and does not allocate once
// the pending buffers have grown to the size of a commit group.
//
// Append is safe for concurrent use; records land in the order the calls
// take the Writer's lock, so callers that need an order across goroutines
// serialize their calls. After Close it returns ErrClosed; after a write or
// sync failure, an error wrapping that failure.
func (w *Writer) Append(rec []byte) (end int64, err error) {
	return w.AppendParts([][]byte{rec})
}

// AppendParts is Append of one record whose payload is the concatenation of
// parts, framed straight from the parts: each byte is copied once, into the
// pending buffer, and nothing is joined first. Parts may be empty, and a
// part may straddle chunk and block edges like any stretch of a record; the
// record and the file bytes are exactly those of Append of the joined
// parts. The parts are copied; the caller may reuse them (and the slice)
// once it returns. Concurrency, errors and allocations are as for Append.
func (w *Writer) AppendParts(parts [][]byte) (end int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.closed {
		return 0, ErrClosed
	}
	if w.mu.err != nil {
		return 0, w.mu.err
	}
	w.mu.buf = appendRecord(w.mu.buf, w.mu.start, uint32(w.logNum), uint64(w.mu.synced), parts)
	return w.mu.start + int64(len(w.mu.buf)), nil
}

// Size returns the logical size of the log: every byte appended so far,
// whether written to the file yet or not. It is safe for concurrent use and
// keeps working after Close.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.start + int64(len(w.mu.buf))
}

// SyncedOffset returns the offset up to which the log is durable (written
// and synced). It is safe for concurrent use and keeps working after Close.
func (w *Writer) SyncedOffset() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.synced
}

// appendRecord frames the record whose payload is the concatenation of
// parts at the end of buf, whose first byte is at file offset start, with
// synced as every chunk's synced offset, and returns the extended buffer.
// It does not retain parts.
func appendRecord(buf []byte, start int64, logNum uint32, synced uint64, parts [][]byte) []byte {
	left := 0
	for _, p := range parts {
		left += len(p)
	}
	src := payloadReader{parts: parts}
	// Room for the payload, one header per started block and the padding.
	buf = slices.Grow(buf, left+(left/maxPayload+2)*2*headerSize)
	for first := true; ; first = false {
		room := blockSize - int((start+int64(len(buf)))%blockSize)
		if room < headerSize {
			buf = append(buf, make([]byte, room)...)
			room = blockSize
		}
		n := min(left, room-headerSize)
		left -= n
		buf = appendChunk(buf, start, chunkType(first, left == 0), logNum, synced, &src, n)
		if left == 0 {
			return buf
		}
	}
}

// payloadReader hands out a record's payload, held in parts, in order.
type payloadReader struct {
	parts [][]byte // what is left: parts[0][off:], then the rest
	off   int
}

// appendTo appends the next n bytes of the payload (which holds at least
// that many) to dst.
func (r *payloadReader) appendTo(dst []byte, n int) []byte {
	for n > 0 {
		p := r.parts[0][r.off:]
		if len(p) == 0 {
			r.parts, r.off = r.parts[1:], 0
			continue
		}
		k := min(n, len(p))
		dst = append(dst, p[:k]...)
		r.off += k
		n -= k
	}
	return dst
}

// chunkType is the type of a record's chunk from its place in the record.
func chunkType(first, last bool) byte {
	switch {
	case first && last:
		return fullChunk
	case first:
		return firstChunk
	case last:
		return lastChunk
	}
	return middleChunk
}

// appendChunk appends one chunk to buf, whose first byte is at file offset
// start: the header, then the next n bytes of src as the payload.
func appendChunk(buf []byte, start int64, typ byte, logNum uint32, synced uint64, src *payloadReader, n int) []byte {
	h := len(buf)
	buf = append(buf, make([]byte, headerSize)...)
	buf = src.appendTo(buf, n)
	binary.LittleEndian.PutUint16(buf[h+4:], uint16(n))
	buf[h+6] = typ
	binary.LittleEndian.PutUint32(buf[h+7:], logNum)
	binary.LittleEndian.PutUint64(buf[h+11:], uint64(start)+uint64(h))
	binary.LittleEndian.PutUint64(buf[h+19:], synced)
	binary.LittleEndian.PutUint32(buf[h:], chunkCRC(buf[h+6:]))
	return buf
}
