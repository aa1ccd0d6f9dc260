package lsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
)

// testSeed returns the seed of a randomized test, logging it.
func testSeed(t testing.TB) uint64 { return testseed.Seed(t) }

// modelTxn mirrors an open transaction: its writes (nil = deleted) and the
// stamp of each, which orders writes across transactions.
type modelTxn struct {
	t       *Txn
	writes  map[string]*string
	stamps  map[string]uint64
	offsets map[string]int64
}

// model is what the store must hold.
type model struct {
	committed map[string]string
	offsets   map[string]int64
	open      []*modelTxn
	stamp     uint64
}

func (m *model) view(mt *modelTxn) map[string]string {
	v := make(map[string]string, len(m.committed))
	for k, s := range m.committed {
		v[k] = s
	}
	if mt != nil {
		for k, s := range mt.writes {
			if s == nil {
				delete(v, k)
			} else {
				v[k] = *s
			}
		}
	}
	return v
}

// uncommittedView is what a ReadUncommitted reader sees: committed data
// overlaid with every open transaction's writes, the latest stamp winning.
func (m *model) uncommittedView() map[string]string {
	v := m.view(nil)
	best := map[string]uint64{}
	for _, mt := range m.open {
		for k, s := range mt.writes {
			if mt.stamps[k] < best[k] {
				continue
			}
			best[k] = mt.stamps[k]
			if s == nil {
				delete(v, k)
			} else {
				v[k] = *s
			}
		}
	}
	return v
}

// modelSnap is an open snapshot with the committed data it must show.
type modelSnap struct {
	s    *Snapshot
	data map[string]string
}

type modelRun struct {
	snaps []modelSnap
	t     *testing.T
	rng   *rand.Rand
	db    *DB
	dir   string
	opts  *Options
	m     model
	keys  int
	// iters are iterators kept open across steps (flushes, compactions,
	// commits), each checked against the view it was made with.
	iters []heldIter
	// deepest is the deepest level seen holding tables.
	deepest int
	totals  modelTotals
	// medium adds values of a few KiB (see value).
	medium bool
	// closeAtEnd tells that a cleanup closes r.db when the test ends.
	closeAtEnd bool
}

func (r *modelRun) key() string { return fmt.Sprintf("key%04d", r.rng.IntN(r.keys)) }

// value returns a random value of letters: short, or about 60 KiB one
// time in 50, or with r.medium 1 to 8 KiB one time in 4.
func (r *modelRun) value() string {
	n := r.rng.IntN(40)
	switch {
	case r.rng.IntN(50) == 0:
		n = 40000 + r.rng.IntN(40000) // crosses WAL blocks
	case r.medium && r.rng.IntN(4) == 0:
		n = 1<<10 + r.rng.IntN(7<<10)
	}
	b := make([]byte, n)
	for i := 0; i < n; {
		// 13 letters from each 64 random bits (26^13 < 2^64).
		for x, j := r.rng.Uint64(), 0; j < 13 && i < n; j, i = j+1, i+1 {
			b[i] = 'a' + byte(x%26)
			x /= 26
		}
	}
	return string(b)
}

// modelConfig is an option set the model test runs under.
type modelConfig struct {
	name string
	opts Options
	// tables asks for more data, in more keys and larger values, so that
	// it spreads over many tables, and for data to reach level 3 or deeper
	// unless compactions are manual.
	tables bool
}

// modelTableOptions are options under which the model test's data (about
// a MiB) spreads over level 0 and levels 1 to 3 or deeper: 64 KiB
// memtables, a compaction at two level-0 tables, 32 KiB tables, 128 KiB in
// level 1 and twice as much in each level below.
func modelTableOptions() Options {
	return Options{
		MemTableSize:          64 << 10,
		L0CompactionThreshold: 2,
		TargetFileSize:        32 << 10,
		LevelBaseBytes:        128 << 10,
		LevelMultiplier:       2,
	}
}

// modelConfigs returns the option sets of TestRandomizedAgainstModel.
func modelConfigs() []modelConfig {
	zstd := modelTableOptions()
	zstd.Compression, zstd.BloomBitsPerKey = ZstdCompression, -1
	small := modelTableOptions()
	small.Compression, small.BlockSize, small.BlockCacheSize, small.MaxOpenTables = NoCompression, 256, 64<<10, 2
	manual := modelTableOptions()
	manual.DisableAutomaticCompactions = true
	rolls := modelTableOptions()
	rolls.MaxManifestFileSize, rolls.NoSync = 1<<10, true
	return []modelConfig{
		{name: "default", opts: Options{}},
		{name: "small-memtable", opts: Options{MemTableSize: 64 << 10}},
		{name: "nosync-small", opts: Options{NoSync: true, MemTableSize: 100 << 10}},
		{name: "in-memory", opts: Options{InMemory: true, MemTableSize: 64 << 10}},
		{name: "tables", opts: modelTableOptions(), tables: true},
		{name: "tables-zstd-nobloom", opts: zstd, tables: true},
		{name: "tables-uncompressed-small-blocks", opts: small, tables: true},
		{name: "tables-manual-compaction", opts: manual, tables: true},
		{name: "tables-manifest-rolls", opts: rolls, tables: true},
	}
}

// TestRandomizedAgainstModel runs seeded random operations on the lsm API
// under several option sets and checks every read against a map model:
// transactions, the three kinds of readers, snapshots and iterators kept
// open across flushes, compactions and commits, offsets, reopens.
func TestRandomizedAgainstModel(t *testing.T) {
	seed := testSeed(t)
	steps := 3000
	if testing.Short() {
		steps = 800
	}
	for i, c := range modelConfigs() {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			if !opts.InMemory {
				opts.FS = vfs.NewMem()
			}
			r := &modelRun{t: t, rng: rand.New(rand.NewPCG(seed, uint64(i))), dir: "db", opts: &opts, keys: 300}
			if c.tables {
				r.keys, r.medium = 500, true
			}
			r.m = model{committed: map[string]string{}, offsets: map[string]int64{}}
			r.db = openTest(t, r.dir, r.opts)
			n := steps
			if c.tables {
				n = steps / 2 // as many bytes as the other sets' steps write, and more
			}
			for step := 0; step < n; step++ {
				r.step(step)
			}
			r.checkAll("end")
			r.noteLevels()
			r.collect()
			r.checkCoverage(c)
		})
	}
}

// checkCoverage fails the test if the run did not exercise what its option
// set is for: tables deep in the tree, compactions, manifest rolls.
func (r *modelRun) checkCoverage(c modelConfig) {
	tot := r.totals
	r.t.Logf("deepest level holding tables L%d; %d flushes, %d compactions, %d manifest rolls",
		r.deepest, tot.flushes, tot.compactions, tot.rolls)
	if r.opts.InMemory || testing.Short() {
		return
	}
	if tot.flushes == 0 || tot.compactions == 0 {
		r.t.Errorf("the run made no flush or no compaction")
	}
	if c.tables && !c.opts.DisableAutomaticCompactions && r.deepest < 3 {
		r.t.Errorf("data never reached level 3: the option set no longer exercises deep levels")
	}
	if c.opts.MaxManifestFileSize > 0 && c.opts.MaxManifestFileSize < 4<<10 && tot.rolls == 0 {
		r.t.Errorf("no manifest roll with MaxManifestFileSize %d", c.opts.MaxManifestFileSize)
	}
}

// step runs one random operation. Operations on a transaction fall back
// to a single-key write when none is open, and so does beginning one when
// three are.
func (r *modelRun) step(step int) {
	var mt *modelTxn
	if len(r.m.open) > 0 {
		mt = r.m.open[r.rng.IntN(len(r.m.open))]
	}
	switch op := r.rng.IntN(100); {
	case op < 5 && len(r.m.open) < 3:
		r.m.open = append(r.m.open, &modelTxn{t: r.db.Begin(nil), writes: map[string]*string{}, stamps: map[string]uint64{}, offsets: map[string]int64{}})
	case op < 62 && mt != nil:
		r.txnStep(step, op, mt)
	case op < 70:
		r.write()
	case op < 84:
		r.readStep(step, op)
	case op < 86 && r.largeMemTables() && r.rng.IntN(2) == 0:
		r.write() // each reopen allocates new memtables
	case op < 86 && !r.opts.InMemory:
		r.reopen(step)
	case op < 88:
		r.snapshotStep()
	case op < 90 && len(r.snaps) > 0:
		r.checkSnapshot(fmt.Sprintf("step %d snapshot", step), r.snaps[r.rng.IntN(len(r.snaps))])
	case op < 95 && (r.opts.InMemory || r.largeMemTables()) && r.rng.IntN(10) > 0:
		r.write() // no tables to make; each flush allocates a new memtable
	case op < 93:
		r.flush(step)
	case op < 95:
		r.compact(step)
	default:
		r.iterStep(step)
	}
}

// largeMemTables reports whether memtables are large (the default 64 MiB)
// and so costly to allocate.
func (r *modelRun) largeMemTables() bool {
	return !r.opts.InMemory && (r.opts.MemTableSize == 0 || r.opts.MemTableSize >= 1<<20)
}

// txnStep runs operation op (below 62) on the open transaction mt.
func (r *modelRun) txnStep(step, op int, mt *modelTxn) {
	t, m := r.t, &r.m
	switch {
	case op < 5:
		r.write() // three transactions are open already
	case op < 40:
		k := r.key()
		m.stamp++
		mt.stamps[k] = m.stamp
		if r.rng.IntN(4) == 0 {
			mt.writes[k] = nil
			must(t, mt.t.Delete([]byte(k)))
		} else {
			v := r.value()
			mt.writes[k] = &v
			must(t, mt.t.Set([]byte(k), []byte(v)))
		}
	case op < 43:
		name := fmt.Sprint("p", r.rng.IntN(4))
		off := r.rng.Int64N(1 << 40)
		mt.offsets[name] = off
		must(t, mt.t.SetOffset(name, off))
	case op < 50:
		r.checkGet(fmt.Sprintf("step %d txn get", step), mt.t, r.key(), m.view(mt))
	case op < 54:
		r.checkIter(fmt.Sprintf("step %d txn iter", step), mt.t, m.view(mt), mt)
	case op < 60:
		if err := mt.t.Commit(); err != nil {
			t.Fatalf("step %d: commit: %v", step, err)
		}
		for k, v := range mt.writes {
			if v == nil {
				delete(m.committed, k)
			} else {
				m.committed[k] = *v
			}
		}
		for k, v := range mt.offsets {
			m.offsets[k] = v
		}
		r.closeTxn(mt)
	default:
		must(t, mt.t.Rollback())
		r.closeTxn(mt)
	}
}

// write sets or deletes one key outside any transaction.
func (r *modelRun) write() {
	k := r.key()
	if r.rng.IntN(3) == 0 {
		must(r.t, r.db.Delete([]byte(k)))
		delete(r.m.committed, k)
		return
	}
	v := r.value()
	must(r.t, r.db.Set([]byte(k), []byte(v)))
	r.m.committed[k] = v
}

// readStep runs read operation op (70 to 83) on the DB.
func (r *modelRun) readStep(step, op int) {
	m := &r.m
	switch {
	case op < 76:
		r.checkGet(fmt.Sprintf("step %d db get", step), r.db, r.key(), m.committed)
	case op < 79:
		r.checkIter(fmt.Sprintf("step %d db iter", step), r.db, m.view(nil), nil)
	case op < 81:
		r.checkGet(fmt.Sprintf("step %d uncommitted get", step), r.db.Reader(ReadUncommitted), r.key(), m.uncommittedView())
	case op < 82:
		r.checkIter(fmt.Sprintf("step %d uncommitted iter", step), r.db.Reader(ReadUncommitted), m.uncommittedView(), nil)
	default:
		r.checkOffsets(fmt.Sprintf("step %d", step))
	}
}

// snapshotStep opens a snapshot (at most 2 at a time) or closes one.
func (r *modelRun) snapshotStep() {
	if len(r.snaps) < 2 && (len(r.snaps) == 0 || r.rng.IntN(2) == 0) {
		s, err := r.db.NewSnapshot()
		must(r.t, err)
		r.snaps = append(r.snaps, modelSnap{s, r.m.view(nil)})
		return
	}
	i := r.rng.IntN(len(r.snaps))
	must(r.t, r.snaps[i].s.Close())
	r.snaps = slices.Delete(r.snaps, i, i+1)
}

func (r *modelRun) closeTxn(mt *modelTxn) {
	r.m.open = slices.DeleteFunc(r.m.open, func(x *modelTxn) bool { return x == mt })
}

func (r *modelRun) reopen(step int) {
	for _, mt := range r.m.open {
		mt.t.Rollback()
	}
	r.m.open = nil
	r.closeIters()
	for _, ms := range r.snaps {
		ms.s.Close()
	}
	r.snaps = nil
	r.collect()
	must(r.t, r.db.Close())
	r.db = r.open()
	r.checkAll(fmt.Sprintf("step %d reopen", step))
}

// open opens the DB again. Unlike openTest, it does not keep every DB it
// opens until the test ends (a closed DB still holds its memtables): one
// cleanup closes whichever DB is open last.
func (r *modelRun) open() *DB {
	d, err := Open(r.dir, r.opts)
	must(r.t, err)
	if !r.closeAtEnd {
		r.closeAtEnd = true
		r.t.Cleanup(func() { r.db.Close() })
	}
	return d
}

// checkAll compares a full scan of the DB and its committed offsets with
// the model.
func (r *modelRun) checkAll(what string) {
	r.t.Helper()
	it, err := r.db.NewIterator(nil)
	must(r.t, err)
	r.checkScan(what+" db scan", it, modelKeysIn(r.m.committed, "", "\xff"), r.m.committed)
	must(r.t, it.Close())
	r.checkOffsets(what)
}

func (r *modelRun) checkGet(what string, rd Reader, k string, view map[string]string) {
	r.t.Helper()
	v, err := rd.Get([]byte(k))
	want, ok := view[k]
	switch {
	case !ok && !errors.Is(err, ErrNotFound):
		r.t.Fatalf("%s %q: got %.20q, %v; want not found", what, k, v, err)
	case ok && (err != nil || string(v) != want):
		r.t.Fatalf("%s %q: got %.20q, %v; want %.20q", what, k, v, err, want)
	}
}

// checkIter walks an iterator with random moves and checks each position
// against the sorted model view. For a transaction's iterator it also writes
// to the transaction midway, which must not disturb the iterator.
func (r *modelRun) checkIter(what string, rd Reader, view map[string]string, mt *modelTxn) {
	r.t.Helper()
	o, keys := r.iterBounds(view)
	it, err := rd.NewIterator(o)
	must(r.t, err)
	defer it.Close()
	if mt != nil && r.rng.IntN(2) == 0 {
		// Writes after the iterator was made are invisible to it.
		k := r.key()
		r.m.stamp++
		mt.stamps[k] = r.m.stamp
		v := r.value()
		mt.writes[k] = &v
		must(r.t, mt.t.Set([]byte(k), []byte(v)))
	}
	r.walkIter(what, it, keys, view, 30)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
