// Package sstable implements strata's immutable sorted tables: a Writer that
// turns a sorted stream of internal keys into a table file, a Reader that
// opens one (Get, forward and backward iterators with SeekGE/SeekLT), a
// sharded block cache shared by every table (Cache) and a bounded cache of
// open tables (TableCache).
//
// # File format
//
// This is format version 1. A table is a sequence of blocks followed by a
// fixed-size footer. In file order:
//
//	+--------------+-----+------------------+--------+------------+-------+--------+
//	| data block 0 | ... | data block n-1   | filter | properties | index | footer |
//	+--------------+-----+------------------+--------+------------+-------+--------+
//	 0                                                                     size-72
//
// The blocks are contiguous: data block 0 starts at offset 0, each block
// (with its trailer) ends where the next begins, and the index block ends
// where the footer begins. The filter block is absent (its handle is
// {0, 0}) when the table was written without a filter; the properties block
// then follows the last data block.
//
// Every block is stored as its (possibly compressed) bytes followed by a
// 5-byte trailer:
//
//	+-----------------------+-----------+--------------+
//	| stored bytes (length) | codec (1) | CRC32C (4)   |
//	+-----------------------+-----------+--------------+
//
//	codec   the compress.Codec of the stored bytes: 0 none, 1 Snappy, 2 Zstd.
//	CRC32C  uint32 little-endian: CRC-32C (Castagnoli, not masked) of the
//	        stored bytes, then the codec byte, then the table's file number
//	        (uint64 little-endian), then the block's offset in the file
//	        (uint64 little-endian). Neither number is stored next to the
//	        block: a block copied to another offset or another table fails
//	        its checksum.
//
// A block handle is (offset, length): the offset of the block's first stored
// byte and the number of stored bytes, without the trailer. A block is
// stored compressed only when that saves at least 1/8 of its raw length, and
// its decoded length never exceeds 32 times its stored length (a writer
// whose codec compresses harder falls back to Snappy, then to none), so a
// reader never decodes more than 32 bytes per byte of file.
//
// Data and index blocks share one layout, the LevelDB block: entries, then
// the restart array, then the number of restarts.
//
//	+---------+-----+-----------+-----------+-----+-------------+--------------+
//	| entry 0 | ... | entry m-1 | restart 0 | ... | restart r-1 | r (uint32)   |
//	+---------+-----+-----------+-----------+-----+-------------+--------------+
//
//	entry   shared (uvarint) | unshared (uvarint) | value length (uvarint) |
//	        key bytes [shared:] (unshared bytes) | value bytes
//	        The entry's key is the first shared bytes of the previous
//	        entry's key followed by the unshared bytes.
//	restart uint32 little-endian: offset of an entry whose shared is 0.
//	        Restart 0 is offset 0; restarts are strictly increasing. A
//	        writer starts a restart every 16 entries (RestartInterval).
//	r       uint32 little-endian; 0 if and only if the block has no entries.
//
// Keys are internal keys encoded by base.InternalKey.Encode (the user key,
// then the 8-byte little-endian trailer seq<<8 | kind), strictly increasing
// in base.CompareInternal order (user key ascending, trailer descending)
// within a block and across the blocks of a table.
//
// Data block: one entry per key added, the value being the key's value (empty
// for a deletion). A data block has at least one entry. A writer closes a
// block before the entry that finds its raw size at or above
// WriterOptions.BlockSize, so a block exceeds that size by at most one entry
// (a value larger than a block makes a block of its own).
//
// Index block: one entry per data block, in order, each a restart (shared 0).
// The key is a separator S_i with last(i) <= S_i < first(i+1), where last(i)
// and first(i) are the last and first keys of data block i; the last
// separator is the table's largest key. The value is the data block's handle:
// offset (uvarint) then length (uvarint), nothing else. A writer shortens
// separators as LevelDB does: when the user keys of last(i) and first(i+1)
// differ at byte j, and last(i)'s byte j plus one is below first(i+1)'s,
// S_i is last(i)'s user key cut after byte j with byte j incremented, with
// the trailer of (seq 2^56-1, SET); otherwise S_i is last(i).
//
// Filter block: a blocked Bloom filter of the distinct user keys of the
// table, stored with codec none.
//
//	+--------------------------------+-----------+
//	| lines: numLines x 64 bytes     | k (1)     |
//	+--------------------------------+-----------+
//
// A key of hash h (hash64 below) sets or tests k bits (k in 1..30) of one
// 512-bit line: line = (uint64(uint32(h)) * numLines) >> 32; with
// g = uint32(h >> 32), each of k rounds takes bit b = g >> 23 of the line
// (byte b/8 of the line, mask 1 << (b%8)) and then sets g = g * 0x9e3779b9
// (mod 2^32). numLines is ceil(distinct keys x bits per key / 512), 0 only
// for a table without keys (then no key matches). A writer uses
// k = floor(0.69 x bits per key) clamped to 1..30; at the default 10 bits per
// key, k = 6 and about 1% of absent keys pass.
//
// hash64(key) works on 64-bit words (little-endian) with
// m1 = 0x9e3779b97f4a7c15 and m2 = 0xbf58476d1ce4e5b9:
// h = len(key) * m1; for each full 8-byte word w, then for the 1 to 7
// remaining bytes zero-padded to a word if there are any:
// h = rotl64(h ^ (w * m2), 31) * m1; finally the MurmurHash3 fmix64:
// h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
// h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33.
//
// Properties block: fields in this order, every integer a uvarint:
//
//	smallest key      length, then the encoded internal key (length 0 and no
//	largest key       bytes when the table has no entries)
//	smallest seq, largest seq
//	entries, deletions, raw key bytes (sum of encoded key lengths),
//	raw value bytes, data blocks
//	codec             1 byte: the codec the writer was asked to use
//	filter bits/key   0 when there is no filter block
//	namespaces        count, then the ids ascending: the first as is, each
//	                  next one as the (positive) difference to the previous
//
// A namespace id is the base.SplitNamespace prefix of a user key; keys with
// no valid prefix count in no namespace. The block holds nothing after the
// last field.
//
// Footer, 72 bytes, integers little-endian:
//
//	 0  index offset    uint64     32  properties offset  uint64
//	 8  index length    uint64     40  properties length  uint64
//	16  filter offset   uint64     48  file number        uint64
//	24  filter length   uint64     56  format version     uint32 (1)
//	                               60  CRC32C of bytes 0..59, uint32
//	                               64  magic "\x89SST\r\n\x1a\n"
//
// The file number is the one the table was written as; a reader refuses a
// table opened under another number.
//
// Worked example: the table of file number 7 holding only "a"#5,SET = "x",
// written with NoCompression and no filter, is 161 bytes (cc: CRC32C bytes):
//
//	offset 0, data block (21 bytes) and trailer:
//	00 09 01 61 01 05 00 00 00 00 00 00 78   entry: shared 0, unshared 9, value 1,
//	                                         key "a" + trailer 0x501 (LE), "x"
//	00 00 00 00 01 00 00 00                  restart 0 at offset 0; 1 restart
//	00 cc cc cc cc                           codec none, CRC32C
//	offset 26, properties block (31 bytes) and trailer:
//	09 61 01 05 00 00 00 00 00 00            smallest key (9 bytes)
//	09 61 01 05 00 00 00 00 00 00            largest key
//	05 05 01 00 09 01 01                     seqs 5..5, 1 entry, 0 deletions,
//	                                         9 key bytes, 1 value byte, 1 block
//	00 00 01 61                              codec none, no filter, 1 namespace: 97
//	00 cc cc cc cc
//	offset 62, index block (22 bytes) and trailer:
//	00 09 02 61 01 05 00 00 00 00 00 00 00 15  key "a"#5,SET, handle (0, 21)
//	00 00 00 00 01 00 00 00                  restart 0; 1 restart
//	00 cc cc cc cc
//	offset 89, footer: index (62, 22), filter (0, 0), properties (26, 31),
//	file number 7, version 1, CRC32C, magic
//
// These constants are part of the file format and should not be changed.
package sstable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/compress"
	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/internal/vfs"
)

const (
	// FormatVersion is the version of the table format this package writes
	// and the only one it reads.
	FormatVersion = 1
	// RestartInterval is the number of entries between restart points of a
	// data block that the Writer uses.
	RestartInterval = 16
	// blockTrailerLen is the codec byte and the CRC32C after every block.
	blockTrailerLen = 5
	// footerLen is the size of the footer.
	footerLen = 72
	// footerMagic ends every table.
	footerMagic = "\x89SST\r\n\x1a\n"
	// maxDecodeRatio bounds a block's decoded length by its stored length.
	maxDecodeRatio = 32
)

// maxTrailer is the largest trailer: it sorts first among the versions of a
// user key, so (userKey, maxTrailer) is the smallest internal key of userKey.
var maxTrailer = base.MakeTrailer(base.MaxSeqNum, base.KindMax)

// MaxEntrySize bounds len(key.UserKey)+len(value) of one entry (above the
// engine's largest key plus largest value), so that a block stays below
// compress.MaxLen.
const MaxEntrySize = 512 << 20

// writeBufferSize is how much the Writer buffers before writing to the file.
const writeBufferSize = 256 << 10

// errWriterClosed is returned by Add after Close.
var errWriterClosed = errors.New("sstable: writer is closed")

// Writer writes a table. Add the keys in strictly increasing order, then
// Close. A Writer is used by one goroutine at a time. The first error (from
// Add's checks or from the file) is sticky: every later Add and Close
// returns it, and the table is unusable.
type Writer struct {
	f       vfs.File
	fileNum uint64
	opts    WriterOptions
	codec   compress.Codec

	offset uint64 // bytes of the table so far, written or buffered in out
	out    []byte // buffered output

	data   blockWriter
	index  blockWriter
	filter bloomBuilder

	lastKey   []byte // encoded last key added; nil before the first Add
	keyBuf    []byte // encoded key being added
	sepBuf    []byte // separator being built
	handleBuf []byte // index entry value being built
	props     Properties
	smallest  []byte // encoded smallest key

	err          error
	closed       bool
	meta         Metadata
	maxEntrySize int // MaxEntrySize; tests lower it
}

// NewWriter returns a Writer that writes the table of file number fileNum to
// f, which must be empty. The Writer owns f from then on and closes it in
// Close. Invalid options make every Add and Close fail.
func NewWriter(f vfs.File, fileNum uint64, o WriterOptions) *Writer {
	w := &Writer{f: f, fileNum: fileNum, maxEntrySize: MaxEntrySize}
	w.opts, w.err = o.withDefaults()
	w.codec = w.opts.Compression.codec()
	w.data.init(w.opts.BlockRestartInterval)
	w.index.init(1)
	w.props.Codec = w.codec
	if w.opts.FilterBitsPerKey > 0 {
		w.props.FilterBitsPerKey = uint64(w.opts.FilterBitsPerKey)
	}
	return w
}

// Add appends an entry. key must be greater than every key added before it
// in base.CompareInternal order, its kind must be valid, and
// len(key.UserKey)+len(value) must not exceed MaxEntrySize. Add copies what
// it keeps: key and value may be reused once it returns. It allocates
// nothing in steady state (buffers grow to the largest block and key).
func (w *Writer) Add(key base.InternalKey, value []byte) error {
	if err := w.check(key, value); err != nil {
		return err
	}
	w.keyBuf = key.Encode(w.keyBuf[:0])
	if w.data.entries > 0 && w.data.estimatedSize() >= w.opts.BlockSize {
		if err := w.flushDataBlock(); err != nil {
			return err
		}
	}
	w.account(key, value)
	w.data.add(w.keyBuf, value)
	w.lastKey = append(w.lastKey[:0], w.keyBuf...)
	return nil
}

// check validates an entry before Add takes it.
func (w *Writer) check(key base.InternalKey, value []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errWriterClosed
	}
	if key.Kind() > base.KindMax {
		return fmt.Errorf("sstable: add %s: unknown kind", key)
	}
	if len(key.UserKey)+len(value) > w.maxEntrySize {
		return fmt.Errorf("sstable: add %q: entry of %d bytes is larger than MaxEntrySize", key.UserKey, len(key.UserKey)+len(value))
	}
	if w.lastKey != nil && base.CompareInternal(lastInternalKey(w.lastKey), key) >= 0 {
		return fmt.Errorf("sstable: add %s: not greater than the previous key %s", key, lastInternalKey(w.lastKey))
	}
	return nil
}

// lastInternalKey decodes a key encoded by InternalKey.Encode.
func lastInternalKey(enc []byte) base.InternalKey {
	n := len(enc) - 8
	return base.InternalKey{UserKey: enc[:n:n], Trailer: binary.LittleEndian.Uint64(enc[n:])}
}

// account records key and value in the properties and the filter.
func (w *Writer) account(key base.InternalKey, value []byte) {
	p := &w.props
	if p.NumEntries == 0 {
		w.smallest = append(w.smallest[:0], w.keyBuf...)
		p.SmallestSeq, p.LargestSeq = key.Seq(), key.Seq()
	}
	p.SmallestSeq = min(p.SmallestSeq, key.Seq())
	p.LargestSeq = max(p.LargestSeq, key.Seq())
	p.NumEntries++
	if key.Kind() == base.KindDelete {
		p.NumDeletions++
	}
	p.RawKeyBytes += uint64(len(w.keyBuf))
	p.RawValueBytes += uint64(len(value))
	if w.lastKey != nil && string(lastInternalKey(w.lastKey).UserKey) == string(key.UserKey) {
		return
	}
	if w.opts.FilterBitsPerKey > 0 {
		w.filter.add(key.UserKey)
	}
	if id, _, ok := base.SplitNamespace(key.UserKey); ok {
		if n := len(p.Namespaces); n == 0 || p.Namespaces[n-1] != id {
			p.Namespaces = append(p.Namespaces, id)
		}
	}
}

// flushDataBlock writes the current data block and indexes it under a
// separator between its last key and w.keyBuf (the next key), or under its
// last key when w.keyBuf is nil (the end of the table).
func (w *Writer) flushDataBlock() error {
	h, err := w.writeBlock(w.data.finish(), w.codec)
	w.data.reset()
	if err != nil {
		return err
	}
	w.props.NumDataBlocks++
	sep := w.lastKey
	if w.keyBuf != nil {
		w.sepBuf = appendSeparator(w.sepBuf[:0], w.lastKey, w.keyBuf)
		sep = w.sepBuf
	}
	w.handleBuf = h.append(w.handleBuf[:0])
	w.index.add(sep, w.handleBuf)
	return nil
}

// appendSeparator appends to dst a key S, encoded, with a <= S < b (both
// encoded internal keys, a < b), as short as the format's rule allows.
func appendSeparator(dst, a, b []byte) []byte {
	ua, ub := a[:len(a)-8], b[:len(b)-8]
	n := 0
	for n < len(ua) && n < len(ub) && ua[n] == ub[n] {
		n++
	}
	if n < len(ua) && n < len(ub) && ua[n] < 0xff && ua[n]+1 < ub[n] {
		dst = append(dst, ua[:n+1]...)
		dst[len(dst)-1]++
		return binary.LittleEndian.AppendUint64(dst, maxTrailer)
	}
	return append(dst, a...)
}

// writeBlock appends raw to the output as a block compressed with codec (if
// that pays), with its trailer, and returns its handle.
func (w *Writer) writeBlock(raw []byte, codec compress.Codec) (blockHandle, error) {
	if w.err != nil {
		return blockHandle{}, w.err
	}
	start := len(w.out)
	used := compress.None
	if codec != compress.None {
		ok, dense := w.appendCompressed(codec, raw)
		if ok {
			used = codec
		} else if dense && codec != compress.Snappy {
			// Compressed beyond the decode ratio, which Snappy never is.
			if ok, _ := w.appendCompressed(compress.Snappy, raw); ok {
				used = compress.Snappy
			}
		}
	}
	if used == compress.None {
		w.out = append(w.out, raw...)
	}
	h := blockHandle{offset: w.offset, length: uint64(len(w.out) - start)}
	crc := blockChecksum(w.out[start:], byte(used), w.fileNum, h.offset)
	w.out = append(w.out, byte(used))
	w.out = binary.LittleEndian.AppendUint32(w.out, crc)
	w.offset += h.length + blockTrailerLen
	if len(w.out) >= writeBufferSize {
		return h, w.flushOut()
	}
	return h, nil
}

// appendCompressed appends raw compressed with codec to the output if that
// saves at least 1/8 and decodes to at most maxDecodeRatio times the
// compressed size. Otherwise it appends nothing and reports whether the
// ratio was the reason (dense).
func (w *Writer) appendCompressed(codec compress.Codec, raw []byte) (ok, dense bool) {
	start := len(w.out)
	out, err := compress.Encode(codec, w.out, raw)
	n := len(out) - start
	w.out = out[:start]
	switch {
	case err != nil || n > len(raw)-len(raw)/8:
		return false, false
	case len(raw) > maxDecodeRatio*n:
		return false, true
	}
	w.out = out
	return true, false
}

// flushOut writes the buffered output to the file.
func (w *Writer) flushOut() error {
	if len(w.out) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.out); err != nil {
		w.err = fmt.Errorf("sstable: writing table %d: %w", w.fileNum, err)
		return w.err
	}
	w.out = w.out[:0]
	return nil
}

// EstimatedSize returns the size the table would have if closed now, less
// the filter, properties and index blocks and the footer: the bytes of the
// blocks written so far plus the raw size of the block being built. It may
// be called at any time by the Writer's goroutine.
func (w *Writer) EstimatedSize() uint64 {
	return w.offset + uint64(w.data.estimatedSize())
}

// Close writes the last data block, the filter, properties and index blocks
// and the footer, syncs the file and closes it. It returns the first error
// met, by Close or by an earlier Add; the file is closed in every case. A
// second Close returns the result of the first.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.finish()
	w.filter.release()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sstable: closing table %d: %w", w.fileNum, cerr)
	}
	if w.err == nil {
		w.err = err
	}
	if w.err != nil {
		w.meta = Metadata{}
	}
	return w.err
}

// Abort closes the file without finishing the table, for a caller that
// gives the table up (and removes the file). Later calls of Add and Close
// fail. After Close, Abort does nothing.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.filter.release()
	w.f.Close()
	if w.err == nil {
		w.err = errWriterClosed
	}
	w.meta = Metadata{}
}

// finish writes everything after the last Add and syncs.
func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	w.keyBuf = nil
	if w.data.entries > 0 {
		if err := w.flushDataBlock(); err != nil {
			return err
		}
	}
	var f footer
	var err error
	if w.opts.FilterBitsPerKey > 0 {
		if f.filter, err = w.writeBlock(w.filter.finish(w.opts.FilterBitsPerKey), compress.None); err != nil {
			return err
		}
	}
	w.finishProperties()
	if f.props, err = w.writeBlock(w.props.encode(nil), w.codec); err != nil {
		return err
	}
	if f.index, err = w.writeBlock(w.index.finish(), w.codec); err != nil {
		return err
	}
	f.fileNum = w.fileNum
	w.out = f.append(w.out)
	w.offset += footerLen
	if err := w.flushOut(); err != nil {
		return err
	}
	failpoint.Hit(failpoint.SSTAfterWriteBeforeSync)
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("sstable: syncing table %d: %w", w.fileNum, err)
		return w.err
	}
	w.meta = Metadata{FileNum: w.fileNum, Size: w.offset, Properties: w.props}
	return nil
}

// finishProperties fills in the key range of the properties.
func (w *Writer) finishProperties() {
	p := &w.props
	slices.Sort(p.Namespaces)
	p.Namespaces = slices.Compact(p.Namespaces)
	if p.NumEntries > 0 {
		p.Smallest = lastInternalKey(slices.Clone(w.smallest))
		p.Largest = lastInternalKey(slices.Clone(w.lastKey))
	}
}

// Metadata describes the table once Close has returned nil; before that, or
// after a failed Close, it returns the zero Metadata. The Properties'
// Namespaces and key slices belong to the Writer's caller and are never
// modified.
func (w *Writer) Metadata() Metadata {
	return w.meta
}

// Metadata describes a written table.
type Metadata struct {
	// FileNum is the table's file number.
	FileNum uint64
	// Size is the table's size in bytes.
	Size uint64
	// Properties are the table's properties (key and sequence number
	// ranges, counts, namespaces), as stored in its properties block.
	Properties
}
