package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/compress"
	"github.com/stratadb/strata/internal/vfs"
)

// ErrClosed is returned by the methods of a closed Reader, Iter or
// TableCache.
var ErrClosed = errors.New("sstable: closed")

// Stats counts the work of readers. One Stats may be shared by many readers
// (ReaderOptions.Stats); its counters may be read and updated concurrently.
type Stats struct {
	// BloomSkips counts Gets that the filter answered without reading any
	// block: the key was certainly absent.
	BloomSkips atomic.Uint64
}

// indexEntry is a decoded index block entry: data block i holds keys in
// (index[i-1].sep, index[i].sep].
type indexEntry struct {
	sep base.InternalKey
	h   blockHandle
}

// Reader reads one table. Get, NewIter, Properties and Stats may be called
// concurrently from any number of goroutines. Close must wait until no Get
// runs and every Iter of the Reader is closed; afterwards Get and NewIter's
// iterators return ErrClosed.
type Reader struct {
	f         vfs.File
	fileNum   uint64
	name      string
	cache     *Cache
	cacheID   uint64
	stats     *Stats
	ownStats  Stats
	index     []indexEntry // aliases the index block
	filter    bloomFilter
	hasFilter bool
	props     Properties // keys alias the properties block
	closed    atomic.Bool
}

// Open reads the footer, index, filter and properties blocks of the table of
// file number fileNum in f, checking everything it reads. On success the
// Reader owns f and closes it in Close; on failure f is left open. A damaged
// or foreign file gives an error wrapping base.ErrCorruption that names the
// file and the offset of the damage. Open holds in memory the index and
// filter blocks (at most a small multiple of the file's size); data blocks
// are read on demand, through o.Cache.
func Open(f vfs.File, fileNum uint64, o ReaderOptions) (*Reader, error) {
	r := &Reader{f: f, fileNum: fileNum, name: o.FileName, cache: o.Cache, cacheID: o.CacheID, stats: o.Stats}
	if r.name == "" {
		r.name = fmt.Sprintf("table %d", fileNum)
	}
	if r.stats == nil {
		r.stats = &r.ownStats
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// open reads and checks the table's metadata.
func (r *Reader) open() error {
	size, err := r.f.Size()
	if err != nil {
		return fmt.Errorf("sstable: %s: size: %w", r.name, err)
	}
	if size < footerLen {
		return base.CorruptionErrorf("sstable: %s: file of %d bytes is shorter than a footer", r.name, size)
	}
	ft, err := r.readFooter(uint64(size))
	if err != nil {
		return err
	}
	dataEnd, err := r.checkLayout(ft, uint64(size))
	if err != nil {
		return err
	}
	if err := r.readProperties(ft.props); err != nil {
		return err
	}
	if err := r.readIndex(ft.index, dataEnd); err != nil {
		return err
	}
	return r.readFilter(ft.filter)
}

// corruptf reports damage at offset off.
func (r *Reader) corruptf(off uint64, format string, args ...any) error {
	return base.CorruptionErrorf("sstable: %s at offset %d: %s", r.name, off, fmt.Sprintf(format, args...))
}

// blockErr reports damage found in the block at off.
func (r *Reader) blockErr(kind string, off uint64, err error) error {
	if errors.Is(err, base.ErrCorruption) {
		return fmt.Errorf("sstable: %s: %s block at offset %d: %w", r.name, kind, off, err)
	}
	return r.corruptf(off, "%s block: %v", kind, err)
}

// readFooter reads and decodes the footer of a table of size bytes.
func (r *Reader) readFooter(size uint64) (footer, error) {
	var buf [footerLen]byte
	off := size - footerLen
	if err := r.readAt(buf[:], off); err != nil {
		return footer{}, err
	}
	ft, err := decodeFooter(buf[:])
	if err != nil {
		return footer{}, r.corruptf(off, "%v", err)
	}
	if ft.fileNum != r.fileNum {
		return footer{}, r.corruptf(off, "footer names file number %d, not %d", ft.fileNum, r.fileNum)
	}
	return ft, nil
}

// checkLayout checks that the footer's blocks tile the file as the format
// requires, and returns the end of the data blocks.
func (r *Reader) checkLayout(ft footer, size uint64) (uint64, error) {
	off := size - footerLen
	for _, h := range [...]blockHandle{ft.index, ft.filter, ft.props} {
		if h.offset > size || h.length > size {
			return 0, r.corruptf(off, "footer has a block handle (%d, %d) beyond the file", h.offset, h.length)
		}
	}
	dataEnd := ft.props.offset
	hasFilter := ft.filter != blockHandle{}
	if hasFilter {
		dataEnd = ft.filter.offset
	}
	if ft.index.end() != off || ft.props.end() != ft.index.offset || (hasFilter && ft.filter.end() != ft.props.offset) {
		return 0, r.corruptf(off, "footer's blocks (index %v, filter %v, properties %v) do not tile the file", ft.index, ft.filter, ft.props)
	}
	r.hasFilter = hasFilter
	return dataEnd, nil
}

// readAt fills buf from offset off; a short file is damage.
func (r *Reader) readAt(buf []byte, off uint64) error {
	n, err := r.f.ReadAt(buf, int64(off))
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return r.corruptf(off, "file ends %d bytes into a %d-byte read", n, len(buf))
	}
	return fmt.Errorf("sstable: %s: reading %d bytes at offset %d: %w", r.name, len(buf), off, err)
}

// readBufs recycles the buffers that compressed blocks are read into.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// readBlock reads the block at h, checks its checksum and returns its
// decoded bytes, newly allocated (never recycled).
func (r *Reader) readBlock(h blockHandle, kind string) ([]byte, error) {
	n := int(h.length) + blockTrailerLen
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	buf := (*bp)[:n]
	if err := r.readAt(buf, h.offset); err != nil {
		return nil, err
	}
	stored, codec := buf[:h.length], buf[h.length]
	crc := uint32(buf[n-4]) | uint32(buf[n-3])<<8 | uint32(buf[n-2])<<16 | uint32(buf[n-1])<<24
	if got := blockChecksum(stored, codec, r.fileNum, h.offset); got != crc {
		return nil, r.corruptf(h.offset, "%s block checksum mismatch (stored %#08x, computed %#08x)", kind, crc, got)
	}
	if compress.Codec(codec) == compress.None {
		return bytes.Clone(stored), nil
	}
	out, err := compress.Decode(compress.Codec(codec), nil, stored, maxDecodeRatio*len(stored))
	if err != nil {
		return nil, r.blockErr(kind, h.offset, err)
	}
	return out, nil
}

// readProperties reads and decodes the properties block.
func (r *Reader) readProperties(h blockHandle) error {
	b, err := r.readBlock(h, "properties")
	if err != nil {
		return err
	}
	if r.props, err = decodeProperties(b); err != nil {
		return r.blockErr("properties", h.offset, err)
	}
	if r.hasFilter != (r.props.FilterBitsPerKey > 0) {
		return r.corruptf(h.offset, "properties say filter bits per key %d, footer says filter %v", r.props.FilterBitsPerKey, r.hasFilter)
	}
	return nil
}

// readFilter reads the filter block, if any.
func (r *Reader) readFilter(h blockHandle) error {
	if !r.hasFilter {
		return nil
	}
	b, err := r.readBlock(h, "filter")
	if err != nil {
		return err
	}
	if r.filter, err = decodeFilter(b); err != nil {
		return r.blockErr("filter", h.offset, err)
	}
	if r.filter.n == 0 && r.props.NumEntries > 0 {
		return r.corruptf(h.offset, "empty filter for %d entries", r.props.NumEntries)
	}
	return nil
}

// readIndex reads the index block and checks that its handles tile the data
// blocks, [0, dataEnd), and that it agrees with the properties.
func (r *Reader) readIndex(h blockHandle, dataEnd uint64) error {
	b, err := r.readBlock(h, "index")
	if err != nil {
		return err
	}
	n, err := checkBlock(b, blockCheck{everyRestart: true})
	if err != nil {
		return r.blockErr("index", h.offset, err)
	}
	if uint64(n) != r.props.NumDataBlocks {
		return r.corruptf(h.offset, "index block has %d entries for %d data blocks", n, r.props.NumDataBlocks)
	}
	if r.index, err = parseIndex(b, n, dataEnd); err != nil {
		return r.blockErr("index", h.offset, err)
	}
	if n > 0 && base.CompareInternal(r.index[n-1].sep, r.props.Largest) != 0 {
		return r.corruptf(h.offset, "last index key %s is not the largest key %s", r.index[n-1].sep, r.props.Largest)
	}
	return nil
}

// searchIndex returns the first data block whose separator is >= target,
// or len(r.index): no key of an earlier block is >= target.
func (r *Reader) searchIndex(target base.InternalKey) int {
	lo, hi := 0, len(r.index)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if base.CompareInternal(r.index[mid].sep, target) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// parseIndex decodes the n entries of an index block that checkBlock
// accepted (every entry a restart), checking that their handles tile
// [0, dataEnd). The keys alias b.
func parseIndex(b []byte, n int, dataEnd uint64) ([]indexEntry, error) {
	l, err := layoutOf(b)
	if err != nil || l.numRestarts != n {
		return nil, fmt.Errorf("index block has %d restarts for %d entries", l.numRestarts, n)
	}
	index := make([]indexEntry, n)
	next := uint64(0)
	for i := range index {
		e := &index[i]
		h, ok := decodeEntry(b, restart(b, l, i), l.end)
		if !ok {
			return nil, fmt.Errorf("bad index entry %d", i)
		}
		var keyOK bool
		e.sep, keyOK = decodeKey(b[h.p : h.p+h.unshared])
		v := h.p + h.unshared
		e.h, ok = decodeHandle(b[v : v+h.valueLen])
		if !ok || !keyOK || e.h.offset != next || e.h.length > dataEnd || e.h.end() > dataEnd {
			return nil, fmt.Errorf("index entry %d has a bad handle (expected offset %d, data ends at %d)", i, next, dataEnd)
		}
		next = e.h.end()
	}
	if next != dataEnd {
		return nil, fmt.Errorf("index block's data blocks end at %d, not %d", next, dataEnd)
	}
	return index, nil
}

// dataBlock returns data block i, from the cache or read, checked; a block
// read is added to the cache if fill is true.
func (r *Reader) dataBlock(i int, fill bool) ([]byte, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	h := r.index[i].h
	k := cacheKey{id: r.cacheID, fileNum: r.fileNum, offset: h.offset}
	if b, ok := r.cache.get(k); ok {
		return b, nil
	}
	b, err := r.readBlock(h, "data")
	if err != nil {
		return nil, err
	}
	c := blockCheck{hi: &r.index[i].sep, nonEmpty: true}
	if i > 0 {
		c.lo = &r.index[i-1].sep
	}
	if _, err := checkBlock(b, c); err != nil {
		return nil, r.blockErr("data", h.offset, err)
	}
	if fill {
		r.cache.set(k, b)
	}
	return b, nil
}

// Get returns the newest version of userKey with a sequence number <= seq:
// its value and kind, and found true; found is false when the table holds
// no such version. A KindDelete version is found with an empty value. The
// filter is consulted first; a certain miss reads no block and counts in
// Stats().BloomSkips. The value is never modified nor reused: it may be
// kept, but must not be modified. Get allocates nothing when the block is
// cached. Damage gives an error wrapping base.ErrCorruption.
func (r *Reader) Get(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool, err error) {
	if r.closed.Load() {
		return nil, 0, false, ErrClosed
	}
	if r.hasFilter && !r.filter.mayContain(userKey) {
		r.stats.BloomSkips.Add(1)
		return nil, 0, false, nil
	}
	target := base.InternalKey{UserKey: userKey, Trailer: base.MakeTrailer(min(seq, base.MaxSeqNum), base.KindMax)}
	for i := r.searchIndex(target); i < len(r.index); i++ {
		b, err := r.dataBlock(i, true)
		if err != nil {
			return nil, 0, false, err
		}
		v, kind, match, next, err := blockGet(b, target)
		if err != nil {
			return nil, 0, false, r.blockErr("data", r.index[i].h.offset, err)
		}
		if !next {
			return v, kind, match, nil
		}
	}
	return nil, 0, false, nil
}

// Properties returns the table's properties. Their slices must not be
// modified; they stay valid after Close.
func (r *Reader) Properties() Properties { return r.props }

// FileNum returns the table's file number.
func (r *Reader) FileNum() uint64 { return r.fileNum }

// Stats returns the counters the Reader updates: ReaderOptions.Stats, or its
// own.
func (r *Reader) Stats() *Stats { return r.stats }

// Close closes the table's file. A second Close returns nil.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("sstable: %s: close: %w", r.name, err)
	}
	return nil
}
