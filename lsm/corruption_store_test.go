package lsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
	"github.com/stratadb/strata/manifest"
)

// The stores TestCorruption damages: the workload and its model, how a
// store is checked against it, how the stores are built, and the test's own
// parse of their WAL files and tables.

const (
	corrDir    = "db"
	corrKeys   = 160
	corrOffset = "c" // committed offset: the index of the last commit
	corrTxnsA  = 46  // commits of store A
	corrTxnsB  = 52  // commits of store B (A plus a synced tail)
	// corrWALSamples is how many evenly spaced offsets of each WAL file
	// are damaged besides the chunk headers and the record ends.
	corrWALSamples = 64
)

func corrKey(i int) string { return fmt.Sprintf("k/%04d", i) }

func corrMix(x uint64) uint64 {
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	x *= 0x94D049BB133111EB
	return x ^ x>>32
}

// corrWrite is one write of a commit; a nil value deletes.
type corrWrite struct {
	key   string
	value []byte
}

// corrWrites returns commit i's writes: 3 to 7 keys overwritten with values
// unique to (i, j) and hard to compress, every sixth commit two deletions,
// and in commits 34 and 46 (each the first of its WAL) a first value of
// 33 KiB and a last one of 97 KiB, whose WAL records cross one and three
// block edges: B's newest WAL has three whole blocks to swap, two of them
// MIDDLE chunks holding bytes of that one value.
func corrWrites(i int) []corrWrite {
	var ws []corrWrite
	n := 3 + i%5
	for j := range n {
		h := corrMix(uint64(i)<<8 | uint64(j))
		size := 20 + int(h%300)
		switch {
		case i == 34 && j == 0:
			size = 33 << 10
		case i == corrTxnsA && j == n-1:
			size = 97 << 10
		}
		v := make([]byte, size)
		for n := range v {
			v[n] = byte(corrMix(h + uint64(n)))
		}
		copy(v, fmt.Sprintf("t%d/%d/", i, j))
		ws = append(ws, corrWrite{corrKey((i*37 + j*11) % corrKeys), v})
	}
	if i%6 == 5 {
		for j := range 2 {
			ws = append(ws, corrWrite{corrKey((i*53 + j*17) % corrKeys), nil})
		}
	}
	return ws
}

// corrModels[k] is the store after commits 0..k-1.
var corrModels = sync.OnceValue(func() []map[string]string {
	models := []map[string]string{{}}
	for i := range corrTxnsB {
		m := maps.Clone(models[i])
		for _, w := range corrWrites(i) {
			if w.value == nil {
				delete(m, w.key)
			} else {
				m[w.key] = string(w.value)
			}
		}
		models = append(models, m)
	}
	return models
})

// corrCommit commits corrWrites(i) and offset i. The offset goes first:
// a write after a large value would add a transaction buffer chunk of
// twice its size, too large for the memtable with commit 46.
func corrCommit(d *DB, i int) error {
	t := d.Begin(nil)
	if err := t.SetOffset(corrOffset, int64(i)); err != nil {
		t.Rollback()
		return err
	}
	for _, w := range corrWrites(i) {
		var err error
		if w.value == nil {
			err = t.Delete([]byte(w.key))
		} else {
			err = t.Set([]byte(w.key), w.value)
		}
		if err != nil {
			t.Rollback()
			return err
		}
	}
	return t.Commit()
}

// corrResult is what corrVerify found.
type corrResult struct {
	k       int // commits the store holds
	corrupt int // reads that failed with ErrCorruption
}

func (r corrResult) String() string {
	if r.corrupt > 0 {
		return "some ErrCorruption"
	}
	return "all right"
}

// corrVerify reads the committed offset, which tells k, the number of
// commits the store holds (it must be in lo..hi), then every key with Get
// and the whole store forward and backward, against corrModels[k]. Every
// read must return the model's value or an error wrapping ErrCorruption.
// If the offset cannot be read, k = hi when lo == hi.
func corrVerify(d *DB, lo, hi int) (r corrResult, err error) {
	key := append(base.AppendNamespace(nil, base.EngineNamespace), corrOffset...)
	v, err := d.getCommitted(base.EngineNamespace, key, seqLatest)
	switch {
	case err == nil && len(v) == 8:
		r.k = int(binary.BigEndian.Uint64(v)) + 1
	case errors.Is(err, ErrCorruption) && lo == hi:
		r.k, r.corrupt = hi, 1
	case errors.Is(err, ErrNotFound):
		r.k = 0
	default:
		return r, fmt.Errorf("reading the committed offset: %q, %v", v, err)
	}
	if r.k < lo || r.k > hi {
		return r, fmt.Errorf("the store holds commits 0..%d, want 0..%d at least and 0..%d at most", r.k-1, lo-1, hi-1)
	}
	model := corrModels()[r.k]
	for i := range corrKeys {
		key := corrKey(i)
		got, err := d.Get([]byte(key))
		want, ok := model[key]
		switch {
		case err == nil && !ok:
			return r, fmt.Errorf("Get(%s) = %.20q..., want not found (%d commits)", key, got, r.k)
		case err == nil && string(got) != want:
			return r, fmt.Errorf("Get(%s) = %.20q..., want %.20q... (%d commits)", key, got, want, r.k)
		case errors.Is(err, ErrNotFound) && ok:
			return r, fmt.Errorf("Get(%s): not found, want %.20q... (%d commits)", key, want, r.k)
		case errors.Is(err, ErrCorruption):
			r.corrupt++
		case err != nil && !errors.Is(err, ErrNotFound):
			return r, fmt.Errorf("Get(%s): error without ErrCorruption: %v", key, err)
		}
	}
	for _, reverse := range []bool{false, true} {
		if err := corrScan(d, r.k, reverse, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// corrScan scans the store: every entry must be the model's, in order, and
// a scan that ends without an error must have seen them all; an older
// version (a value of an earlier commit, or a key deleted since) is wrong
// data even when the scan then reports ErrCorruption.
func corrScan(d *DB, k int, reverse bool, r *corrResult) error {
	model := corrModels()[k]
	it, err := d.NewIterator(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	what := "forward scan"
	first, next := it.First, it.Next
	if reverse {
		what, first, next = "backward scan", it.Last, it.Prev
	}
	seen := 0
	var prev []byte
	var wrong error
	for ok := first(); ok; ok = next() {
		key, value := it.Key(), it.Value()
		if prev != nil && (bytes.Compare(prev, key) >= 0) != reverse || bytes.Equal(prev, key) {
			return fmt.Errorf("%s returned %s after %s", what, key, prev)
		}
		prev = append(prev[:0], key...)
		if want, ok := model[string(key)]; ok && want == string(value) {
			seen++
			continue
		}
		if !corrOlderVersion(k, string(key), value) {
			return fmt.Errorf("%s returned %s = %.20q..., which no commit wrote", what, key, value)
		}
		if wrong == nil {
			wrong = fmt.Errorf("%s returned %s = %.20q..., an older version (want %.20q...)", what, key, value, model[string(key)])
		}
	}
	err = it.Close()
	switch {
	case err != nil && !errors.Is(err, ErrCorruption):
		return fmt.Errorf("%s: error without ErrCorruption: %v", what, err)
	case wrong != nil && err != nil:
		return fmt.Errorf("%w, then %v", wrong, err)
	case wrong != nil:
		return wrong
	case err == nil && seen != len(model):
		return fmt.Errorf("%s returned %d of %d entries and no error", what, seen, len(model))
	case err != nil:
		r.corrupt++
	}
	return nil
}

// corrOlderVersion reports whether value is a value key held before
// commit k.
func corrOlderVersion(k int, key string, value []byte) bool {
	for _, m := range corrModels()[:k] {
		if v, ok := m[key]; ok && v == string(value) {
			return true
		}
	}
	return false
}

// corrOptions are the options of every Open of the test. Automatic
// compactions are off so that only Compact reads the tables to rewrite
// them; small tables give level 1 several. Memtables only rotate at Flush
// (commits 34 and 46 need more than a 64 KiB memtable keeps free), so
// that which WAL holds which commits is fixed.
func corrOptions(fs vfs.FS, noSync bool) *Options {
	return &Options{FS: fs, MemTableSize: 256 << 10, NoSync: noSync, TargetFileSize: 16 << 10,
		DisableAutomaticCompactions: true}
}

// corrBlocker, once armed, holds every table creation until release is
// closed and then fails it: the flush fails, so its memtable's WAL stays to
// be replayed. reached is closed when the first one arrives.
type corrBlocker struct {
	armed   atomic.Bool
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func newCorrBlocker() *corrBlocker {
	return &corrBlocker{reached: make(chan struct{}), release: make(chan struct{})}
}

func (b *corrBlocker) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, tableSuffix) && b.armed.Load() {
		b.once.Do(func() { close(b.reached) })
		<-b.release
		return errorfs.ErrInjected
	}
	return nil
}

// corrStore is a closed store: its files and what they hold.
type corrStore struct {
	name   string
	files  map[string][]byte // by base name
	txns   int               // commits it holds
	noSync bool
	levels map[string]int // table name -> level
	wals   []*corrWAL     // oldest first
}

// corrBuildA builds store A: commits 0..11 and 12..23 flushed and compacted
// into level 1, 24..33 flushed to level 0, 34..39 in an older WAL (rotated
// and synced, its flush failed) and 40..45 in the newest WAL, all NoSync.
// Its manifest holds the first snapshot and four edits.
func corrBuildA(t *testing.T) *corrStore {
	mem := vfs.NewMem()
	blk := newCorrBlocker()
	d, err := Open(corrDir, corrOptions(errorfs.Wrap(mem, blk), true))
	if err != nil {
		t.Fatal(err)
	}
	run := func(from, to int) {
		for i := from; i < to; i++ {
			if err := corrCommit(d, i); err != nil {
				t.Fatalf("commit %d: %v", i, err)
			}
		}
	}
	step := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run(0, 12)
	step("flush", d.Flush())
	run(12, 24)
	step("flush", d.Flush())
	step("compact", d.Compact())
	run(24, 34)
	step("flush", d.Flush())
	run(34, 40)
	levels := corrLevels(d)
	blk.armed.Store(true)
	flushErr := make(chan error, 1)
	go func() { flushErr <- d.Flush() }()
	<-blk.reached // the WAL was rotated, the flush is blocked
	run(40, corrTxnsA)
	close(blk.release)
	if err := <-flushErr; err == nil {
		t.Fatal("the failed flush returned nil")
	}
	d.Close() // returns the flush failure
	return corrSnapshot(t, "A", mem, corrTxnsA, true, levels, []int{34, 40})
}

// corrBuildB builds store B from A: A reopened without NoSync (its two WAL
// files replayed and kept, as their flush fails) and commits 46..51, each
// synced, in the newest WAL.
func corrBuildB(t *testing.T, a *corrStore) *corrStore {
	mem := corrRestore(t, a.files)
	blk := newCorrBlocker()
	blk.armed.Store(true)
	d, err := Open(corrDir, corrOptions(errorfs.Wrap(mem, blk), false))
	if err != nil {
		t.Fatal(err)
	}
	for i := corrTxnsA; i < corrTxnsB; i++ {
		if err := corrCommit(d, i); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	close(blk.release)
	d.Close()
	return corrSnapshot(t, "B", mem, corrTxnsB, false, a.levels, []int{34, 40, corrTxnsA})
}

func corrLevels(d *DB) map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	levels := map[string]int{}
	for level := range manifest.NumLevels {
		for _, f := range d.mu.current.Files(level) {
			levels[tableFileName(f.FileNum)] = level
		}
	}
	return levels
}

// corrSnapshot reads the files of the closed store in mem; firstTxn gives
// the first commit of each WAL file, oldest first.
func corrSnapshot(t *testing.T, name string, mem vfs.FS, txns int, noSync bool, levels map[string]int, firstTxn []int) *corrStore {
	names, err := mem.List(corrDir)
	if err != nil {
		t.Fatal(err)
	}
	s := &corrStore{name: name, files: map[string][]byte{}, txns: txns, noSync: noSync, levels: levels}
	for _, n := range names {
		if n == lockFileName {
			continue
		}
		b, err := vfs.ReadFile(mem, mem.PathJoin(corrDir, n))
		if err != nil {
			t.Fatal(err)
		}
		s.files[n] = b
		if _, ok := parseLogFileName(n); ok {
			s.wals = append(s.wals, parseCorrWAL(n, b))
		}
	}
	if len(s.wals) != len(firstTxn) {
		t.Fatalf("store %s holds WAL files %v, want %d", name, names, len(firstTxn))
	}
	for i, w := range s.wals {
		w.firstTxn, w.newest = firstTxn[i], i == len(s.wals)-1
		end := txns
		if !w.newest {
			end = firstTxn[i+1]
		}
		if len(w.recEnds) != end-w.firstTxn {
			t.Fatalf("store %s: %s holds %d records, want %d", name, w.name, len(w.recEnds), end-w.firstTxn)
		}
	}
	for n := range levels {
		if s.files[n] == nil {
			t.Fatalf("store %s lacks table %s", name, n)
		}
	}
	return s
}

// corrRestore returns a MemFS holding files in corrDir.
func corrRestore(t testing.TB, files map[string][]byte) *vfs.MemFS {
	fs := vfs.NewMem()
	if err := fs.MkdirAll(corrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range files {
		if err := vfs.WriteFile(fs, fs.PathJoin(corrDir, n), b); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// corrWAL is a WAL file parsed by the test, after the format in wal's
// package doc: 32 KiB blocks of chunks with 27-byte headers (the synced
// offset at bytes 19..27).
type corrWAL struct {
	name     string
	chunks   []corrChunk
	recEnds  []int64 // end offset of each record
	firstTxn int     // the commit of its first record
	newest   bool
}

type corrChunk struct {
	off, end, synced int64
	typ              byte // FULL 1, FIRST 2, MIDDLE 3, LAST 4
}

const corrWALBlock, corrWALHeader = 32 << 10, 27

func parseCorrWAL(name string, b []byte) *corrWAL {
	w := &corrWAL{name: name}
	for off := int64(0); off < int64(len(b)); {
		if room := corrWALBlock - off%corrWALBlock; room < corrWALHeader {
			off += room
			continue
		}
		h := b[off : off+corrWALHeader]
		c := corrChunk{off: off, end: off + corrWALHeader + int64(binary.LittleEndian.Uint16(h[4:])),
			synced: int64(binary.LittleEndian.Uint64(h[19:])), typ: h[6]}
		w.chunks = append(w.chunks, c)
		empty := h[6] == 1 && c.end == off+corrWALHeader   // the sync marker Close writes
		if typ := h[6]; (typ == 1 || typ == 4) && !empty { // FULL or LAST
			w.recEnds = append(w.recEnds, c.end)
		}
		off = c.end
	}
	return w
}

// complete returns how many records end at or before x.
func (w *corrWAL) complete(x int64) int {
	return sort.Search(len(w.recEnds), func(i int) bool { return w.recEnds[i] > x })
}

// provedSynced reports whether an undamaged chunk after the damage to
// bytes [x, end) records a synced offset beyond the start of the damaged
// chunk: the reader must then report corruption rather than a torn tail.
func (w *corrWAL) provedSynced(x, end int64) bool {
	start := x
	for _, c := range w.chunks {
		if c.off <= x && x < c.end {
			start = c.off
		}
	}
	for _, c := range w.chunks {
		if c.off > start && c.off >= end && c.synced > start {
			return true
		}
	}
	return false
}

// manifestName returns the name of the store's manifest.
func (s *corrStore) manifestName() string {
	for n := range s.files {
		if _, ok := manifest.ParseFileName(n); ok {
			return n
		}
	}
	return ""
}

// corrBlock is a block of a file: for a table, its stored bytes are at
// [off, off+n), its codec at off+n and its CRC32C after that; for a WAL
// file, the block is [off, off+n).
type corrBlock struct {
	off, n int64
	part   string // of a table: data, filter, properties or index
}

// end is the offset just past the block (for a table, its trailer).
func (b corrBlock) end() int64 {
	if b.part == "" {
		return b.off + b.n
	}
	return b.off + b.n + 5
}

// corrWALBlocks returns the 32 KiB blocks of a WAL file of size bytes (the
// last one may be partial).
func corrWALBlocks(size int64) []corrBlock {
	var blocks []corrBlock
	for off := int64(0); off < size; off += corrWALBlock {
		blocks = append(blocks, corrBlock{off: off, n: min(corrWALBlock, size-off)})
	}
	return blocks
}

var corrCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// corrBlockCRC finishes the checksum sstable's package doc gives a block,
// CRC32C of its stored bytes, codec, the table's file number and the
// block's offset, from crc, that of its stored bytes.
func corrBlockCRC(crc uint32, codec byte, fileNum, off uint64) uint32 {
	var tail [17]byte
	tail[0] = codec
	binary.LittleEndian.PutUint64(tail[1:], fileNum)
	binary.LittleEndian.PutUint64(tail[9:], off)
	return crc32.Update(crc, corrCastagnoli, tail[:])
}

// corrTableFileNum returns the file number in table b's footer.
func corrTableFileNum(b []byte) uint64 {
	return binary.LittleEndian.Uint64(b[len(b)-72+48:])
}

// corrTableBlocks returns the blocks of table b in file order. The blocks
// are contiguous from offset 0 to the footer (sstable's package doc): each
// one ends at the first codec byte (0, 1 or 2) followed by the checksum of
// the bytes before it, which finds the data blocks without decoding the
// (possibly compressed) index. The other parts are named after the footer.
func corrTableBlocks(b []byte) ([]corrBlock, error) {
	size := int64(len(b))
	fileNum := corrTableFileNum(b)
	parts := corrTableParts(b)
	var blocks []corrBlock
	for off := int64(0); off < size-72; {
		crc, n := uint32(0), int64(-1)
		for p := off; p+5 <= size-72 && n < 0; p++ {
			if c := b[p]; c <= 2 && binary.LittleEndian.Uint32(b[p+1:]) == corrBlockCRC(crc, c, fileNum, uint64(off)) {
				n = p - off
			}
			crc = crc32.Update(crc, corrCastagnoli, b[p:p+1])
		}
		if n < 0 {
			return nil, fmt.Errorf("no block trailer after offset %d", off)
		}
		blk := corrBlock{off: off, n: n, part: "data"}
		for part, r := range parts {
			if r[0] == off {
				blk.part = part
			}
		}
		blocks = append(blocks, blk)
		off = blk.end()
	}
	return blocks, nil
}

// corrTableParts returns the byte ranges of the parts of table b other
// than its data blocks, after the footer (sstable's package doc): the
// index, filter and properties handles are its first three (offset,
// length) pairs, and each block is followed by a 5-byte trailer.
func corrTableParts(b []byte) map[string][2]int64 {
	size := int64(len(b))
	parts := map[string][2]int64{"footer": {size - 72, size}}
	f := b[size-72:]
	for i, part := range []string{"index", "filter", "properties"} {
		start := int64(binary.LittleEndian.Uint64(f[16*i:]))
		if n := int64(binary.LittleEndian.Uint64(f[16*i+8:])); n > 0 {
			parts[part] = [2]int64{start, start + n + 5}
		}
	}
	return parts
}

// corrTablePart names the part of table b that offset off is in.
func corrTablePart(b []byte, off int64) string {
	for part, r := range corrTableParts(b) {
		if off >= r[0] && off < r[1] {
			return part
		}
	}
	return "data"
}
