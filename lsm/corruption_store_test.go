package lsm

import (
	"encoding/binary"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
	"github.com/stratadb/strata/manifest"
)

// The stores TestCorruption damages: the workload, how they are built, and
// the test's own parse of their WAL files.

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
// and in commits 34 and 46 (each the first of its WAL) a 33 KiB value,
// whose WAL record crosses a block edge.
func corrWrites(i int) []corrWrite {
	var ws []corrWrite
	for j := range 3 + i%5 {
		h := corrMix(uint64(i)<<8 | uint64(j))
		size := 20 + int(h%300)
		if (i == 34 || i == corrTxnsA) && j == 0 {
			size = 33 << 10
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

func corrCommit(d *DB, i int) error {
	t := d.Begin(nil)
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
	if err := t.SetOffset(corrOffset, int64(i)); err != nil {
		t.Rollback()
		return err
	}
	return t.Commit()
}

// corrOptions are the options of every Open of the test. Automatic
// compactions are off so that only Compact reads the tables to rewrite
// them; small tables give level 1 several. Memtables only rotate at Flush
// (the 33 KiB commits need more than a 64 KiB memtable keeps free), so that
// which WAL holds which commits is fixed.
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
// package doc: 32 KiB blocks of chunks with 19-byte headers (the synced
// offset at bytes 11..19).
type corrWAL struct {
	name     string
	chunks   []corrChunk
	recEnds  []int64 // end offset of each record
	firstTxn int     // the commit of its first record
	newest   bool
}

type corrChunk struct{ off, end, synced int64 }

const corrWALBlock, corrWALHeader = 32 << 10, 19

func parseCorrWAL(name string, b []byte) *corrWAL {
	w := &corrWAL{name: name}
	for off := int64(0); off < int64(len(b)); {
		if room := corrWALBlock - off%corrWALBlock; room < corrWALHeader {
			off += room
			continue
		}
		h := b[off : off+corrWALHeader]
		c := corrChunk{off: off, end: off + corrWALHeader + int64(binary.LittleEndian.Uint16(h[4:])),
			synced: int64(binary.LittleEndian.Uint64(h[11:]))}
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
