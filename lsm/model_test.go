package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
)

// The model test (TESTPLAN S6): seeded random operations on the lsm API,
// under several option sets, with every read checked against a map model.
// This file holds the model and the operations on transactions and
// readers; model_ops_test.go the operations on tables and the iterator
// checks; model_ns_test.go namespaces; model_crash_test.go simulated power
// cuts; model_min_test.go the runner, the shrinking of failures and the
// regressions.

// testSeed returns the seed of a randomized test, logging it.
func testSeed(t testing.TB) uint64 { return testseed.Seed(t) }

// modelTB is what a model run reports to: a *testing.T, or a trial run of
// the shrinker (see modelTrial) that must not fail the test.
type modelTB interface {
	Helper()
	Logf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// modelTxn mirrors an open transaction: its writes (nil = deleted) to the
// default namespace and to the others, the stamp of each write to the
// default namespace, which orders writes across transactions, and its
// offsets.
type modelTxn struct {
	t        *Txn
	writes   map[string]*string
	stamps   map[string]uint64
	offsets  map[string]int64
	nsWrites map[*modelNS]map[string]*string
	noSync   bool // begun with TxnOptions.NoSync
}

// writesIn returns the transaction's writes to ns (nil = the default
// namespace), making the map if needed.
func (mt *modelTxn) writesIn(ns *modelNS) map[string]*string {
	if ns == nil {
		return mt.writes
	}
	if mt.nsWrites[ns] == nil {
		if mt.nsWrites == nil {
			mt.nsWrites = map[*modelNS]map[string]*string{}
		}
		mt.nsWrites[ns] = map[string]*string{}
	}
	return mt.nsWrites[ns]
}

// model is what the store must hold: the committed data of the default
// namespace and of the live namespaces, the committed offsets, the open
// transactions, and what a power cut must keep (see model_crash_test.go).
type model struct {
	committed map[string]string // the default namespace
	offsets   map[string]int64
	nss       []*modelNS // live namespaces, by creation order
	open      []*modelTxn
	stamp     uint64
	// durable is the state every power cut must keep; history holds the
	// commits since, which a power cut may lose (a suffix of them).
	durable struct {
		committed map[string]string
		offsets   map[string]int64
	}
	history []*modelCommit
}

func newModel() model {
	m := model{committed: map[string]string{}, offsets: map[string]int64{}}
	m.durable.committed, m.durable.offsets = map[string]string{}, map[string]int64{}
	return m
}

// data returns the committed data of ns (nil = the default namespace).
func (m *model) data(ns *modelNS) map[string]string {
	if ns == nil {
		return m.committed
	}
	return ns.data
}

// view returns the default namespace as mt sees it (nil = committed data),
// in a new map.
func (m *model) view(mt *modelTxn) map[string]string { return m.viewIn(mt, nil) }

// viewIn returns namespace ns as mt sees it (nil = committed data), in a
// new map.
func (m *model) viewIn(mt *modelTxn, ns *modelNS) map[string]string {
	data := m.data(ns)
	v := make(map[string]string, len(data))
	for k, s := range data {
		v[k] = s
	}
	if mt != nil {
		w := mt.writes
		if ns != nil {
			w = mt.nsWrites[ns]
		}
		for k, s := range w {
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

// modelSnap is an open snapshot with the committed data of the default
// namespace it must show (modelRun.snapNS holds its namespaces).
type modelSnap struct {
	s    *Snapshot
	data map[string]string
}

type modelRun struct {
	snaps []modelSnap
	t     modelTB
	rng   *rand.Rand
	// gets counts the Gets checked; it chooses Get or AppendValue (see
	// checkGet) without drawing from rng, so that a seed makes the same
	// operations as before AppendValue was checked.
	gets uint64
	db   *DB
	dir  string
	opts *Options
	m    model
	keys int
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
	// mem is the filesystem of the store, for power cuts (nil: none).
	mem *vfs.MemFS
	// snapNS holds the namespaces each snapshot must show.
	snapNS map[*Snapshot][]snapNS
	// dropped holds handles of namespaces dropped since the DB was opened.
	dropped []*Namespace
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

// modelConfigs returns the option sets of TestRandomizedAgainstModel. All
// but in-memory run on a MemFS, and so simulate power cuts too.
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

// step runs one random operation. Operations on a transaction fall back
// to a single-key write when none is open, and so does beginning one when
// three are.
func (r *modelRun) step(step int) {
	var mt *modelTxn
	if len(r.m.open) > 0 {
		mt = r.m.open[r.rng.IntN(len(r.m.open))]
	}
	switch op := r.rng.IntN(108); {
	case op < 5 && len(r.m.open) < 3:
		r.begin()
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
	case op < 100:
		r.iterStep(step)
	case op < 107:
		r.nsStep(step)
	case r.mem == nil || r.largeMemTables() && r.rng.IntN(2) == 0:
		r.write() // each restart allocates new memtables
	default:
		r.crash(step)
	}
}

// largeMemTables reports whether memtables are large (the default 64 MiB)
// and so costly to allocate.
func (r *modelRun) largeMemTables() bool {
	return !r.opts.InMemory && (r.opts.MemTableSize == 0 || r.opts.MemTableSize >= 1<<20)
}

// begin begins a transaction, one time in eight with TxnOptions.NoSync
// when the DB syncs commits.
func (r *modelRun) begin() {
	mt := &modelTxn{writes: map[string]*string{}, stamps: map[string]uint64{}, offsets: map[string]int64{}}
	if !r.opts.NoSync && r.rng.IntN(8) == 0 {
		mt.noSync = true
		mt.t = r.db.Begin(&TxnOptions{NoSync: true})
	} else {
		mt.t = r.db.Begin(nil)
	}
	r.trace("begin txn %p (NoSync %v)", mt.t, mt.noSync)
	r.m.open = append(r.m.open, mt)
}

// txnStep runs operation op (below 62) on the open transaction mt, in the
// default namespace or, one time in three, a live namespace.
func (r *modelRun) txnStep(step, op int, mt *modelTxn) {
	t, m := r.t, &r.m
	switch {
	case op < 5:
		r.write() // three transactions are open already
	case op < 38:
		r.txnWrite(mt, r.pickNS(), r.key())
	case op < 40:
		r.txnWriteDropped(step, mt)
	case op < 43:
		name := fmt.Sprint("p", r.rng.IntN(4))
		off := r.rng.Int64N(1 << 40)
		mt.offsets[name] = off
		must(t, mt.t.SetOffset(name, off))
	case op < 50:
		ns := r.pickNS()
		r.checkGet(fmt.Sprintf("step %d txn get%s", step, ns), r.txnReader(mt, ns), r.key(), m.viewIn(mt, ns))
	case op < 54:
		ns := r.pickNS()
		r.checkIterIn(fmt.Sprintf("step %d txn iter%s", step, ns), r.txnReader(mt, ns), m.viewIn(mt, ns), mt, ns)
	case op < 60:
		r.commit(step, mt)
	default:
		r.trace("step %d: rollback txn %p", step, mt.t)
		must(t, mt.t.Rollback())
		r.closeTxn(mt)
	}
}

// txnWrite sets or deletes key k of namespace ns (nil = default) in mt.
func (r *modelRun) txnWrite(mt *modelTxn, ns *modelNS, k string) {
	r.m.stamp++
	if ns == nil {
		mt.stamps[k] = r.m.stamp
	}
	w := mt.writesIn(ns)
	if r.rng.IntN(4) == 0 {
		w[k] = nil
		r.trace("txn %p: delete %s%s", mt.t, k, ns)
		must(r.t, r.txnWriter(mt, ns).Delete([]byte(k)))
		return
	}
	v := r.value()
	w[k] = &v
	r.trace("txn %p: set %s%s = %.10q", mt.t, k, ns, v)
	must(r.t, r.txnWriter(mt, ns).Set([]byte(k), []byte(v)))
}

// commit commits mt and applies it to the model.
func (r *modelRun) commit(step int, mt *modelTxn) {
	r.trace("step %d: commit txn %p", step, mt.t)
	if err := mt.t.Commit(); err != nil {
		r.t.Fatalf("step %d: commit: %v", step, err)
	}
	c := &modelCommit{writes: map[*modelNS]map[string]*string{}, offsets: mt.offsets}
	if len(mt.writes) > 0 {
		c.writes[nil] = mt.writes
	}
	for ns, w := range mt.nsWrites {
		c.writes[ns] = w
	}
	live := 0 // namespaces, the default one included, the commit wrote to
	for ns := range c.writes {
		if ns == nil || !ns.dropped {
			live++
		}
	}
	if live > 1 && len(c.offsets) > 0 {
		r.totals.spanning++
	}
	// A commit with no write does no I/O, so it syncs nothing.
	r.m.commit(c, !r.opts.NoSync && !mt.noSync && live+len(c.offsets) > 0)
	r.closeTxn(mt)
}

// modelWriter writes single keys: a *DB, a *Namespace, a *Txn or a
// TxnNamespace.
type modelWriter interface {
	Set(key, value []byte) error
	Delete(key []byte) error
}

// write sets or deletes one key outside any transaction, in the default
// namespace or, one time in three, a live namespace.
func (r *modelRun) write() {
	ns := r.pickNS()
	var w modelWriter = r.db
	if ns != nil {
		w = ns.h
	}
	k := r.key()
	c := &modelCommit{writes: map[*modelNS]map[string]*string{ns: {}}}
	if r.rng.IntN(3) == 0 {
		r.trace("delete %s%s", k, ns)
		must(r.t, w.Delete([]byte(k)))
		c.writes[ns][k] = nil
	} else {
		v := r.value()
		r.trace("set %s%s = %.10q", k, ns, v)
		must(r.t, w.Set([]byte(k), []byte(v)))
		c.writes[ns][k] = &v
	}
	r.m.commit(c, !r.opts.NoSync)
}

// readStep runs read operation op (70 to 83) on the DB.
func (r *modelRun) readStep(step, op int) {
	m := &r.m
	switch {
	case op < 76:
		ns := r.pickNS()
		r.checkGet(fmt.Sprintf("step %d db get%s", step, ns), r.reader(ns), r.key(), m.data(ns))
	case op < 79:
		ns := r.pickNS()
		r.checkIterIn(fmt.Sprintf("step %d db iter%s", step, ns), r.reader(ns), m.viewIn(nil, ns), nil, ns)
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
		r.noteSnapshotNS(s)
		return
	}
	i := r.rng.IntN(len(r.snaps))
	delete(r.snapNS, r.snaps[i].s)
	must(r.t, r.snaps[i].s.Close())
	r.snaps = slices.Delete(r.snaps, i, i+1)
}

func (r *modelRun) closeTxn(mt *modelTxn) {
	r.m.open = slices.DeleteFunc(r.m.open, func(x *modelTxn) bool { return x == mt })
}

// release rolls back the open transactions and closes the kept iterators
// and the snapshots.
func (r *modelRun) release() {
	for _, mt := range r.m.open {
		mt.t.Rollback()
	}
	r.m.open = nil
	r.closeIters()
	for _, ms := range r.snaps {
		ms.s.Close()
	}
	r.snaps, r.snapNS = nil, nil
}

// reopen closes the DB, which makes every commit durable, opens it again
// and checks it against the model.
func (r *modelRun) reopen(step int) {
	r.release()
	r.collect()
	must(r.t, r.db.Close())
	r.m.settle()
	r.db = r.open()
	what := fmt.Sprintf("step %d reopen", step)
	r.attach(what)
	r.checkAll(what)
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

// checkAll compares a full scan of every namespace of the DB, the list of
// namespaces and the committed offsets with the model.
func (r *modelRun) checkAll(what string) {
	r.t.Helper()
	r.checkNamespaces(what)
	for _, ns := range append([]*modelNS{nil}, r.m.nss...) {
		it, err := r.reader(ns).NewIterator(nil)
		must(r.t, err)
		data := r.m.data(ns)
		r.checkScan(fmt.Sprintf("%s%s scan", what, ns), it, modelKeysIn(data, "", "\xff"), data)
		must(r.t, it.Close())
	}
	r.checkOffsets(what)
}

// checkGet compares rd's value of k with view. Readers that have an
// AppendValue method are read with it every other Get, into a buffer that
// already holds 0-3 bytes, which must be kept in front of the value (and
// alone when k is missing).
func (r *modelRun) checkGet(what string, rd Reader, k string, view map[string]string) {
	r.t.Helper()
	var (
		v   []byte
		err error
	)
	if a, ok := rd.(interface {
		AppendValue(dst, key []byte) ([]byte, error)
	}); ok && r.gets%2 == 1 {
		prefix := []byte("dst")[:r.gets/2%4]
		dst := append(make([]byte, 0, len(prefix)+int(r.gets%64)), prefix...)
		what += " AppendValue"
		v, err = a.AppendValue(dst, []byte(k))
		if !bytes.HasPrefix(v, prefix) || err != nil && len(v) != len(prefix) {
			r.t.Fatalf("%s %q into %q: got %.20q, %v", what, k, prefix, v, err)
		}
		v = v[len(prefix):]
	} else {
		v, err = rd.Get([]byte(k))
	}
	r.gets++
	want, ok := view[k]
	switch {
	case !ok && !errors.Is(err, ErrNotFound):
		r.t.Fatalf("%s %q: got %.20q, %v; want not found", what, k, v, err)
	case ok && (err != nil || string(v) != want):
		r.t.Fatalf("%s %q: got %.20q, %v; want %.20q", what, k, v, err, want)
	}
}

// checkIter walks an iterator of the default namespace with random moves
// and checks each position against the sorted model view (see checkIterIn).
func (r *modelRun) checkIter(what string, rd Reader, view map[string]string, mt *modelTxn) {
	r.t.Helper()
	r.checkIterIn(what, rd, view, mt, nil)
}

// checkIterIn walks an iterator of namespace ns with random moves and
// checks each position against the sorted model view. For a transaction's
// iterator it also writes to the transaction's view of ns midway, which
// must not disturb the iterator.
func (r *modelRun) checkIterIn(what string, rd Reader, view map[string]string, mt *modelTxn, ns *modelNS) {
	r.t.Helper()
	o, keys := r.iterBounds(view)
	it, err := rd.NewIterator(o)
	must(r.t, err)
	defer it.Close()
	if mt != nil && r.rng.IntN(2) == 0 {
		// Writes after the iterator was made are invisible to it.
		k := r.key()
		r.m.stamp++
		if ns == nil {
			mt.stamps[k] = r.m.stamp
		}
		v := r.value()
		mt.writesIn(ns)[k] = &v
		must(r.t, r.txnWriter(mt, ns).Set([]byte(k), []byte(v)))
	}
	r.walkIter(what, it, keys, view, 30)
}

// must fails the test if err is not nil.
func must(t interface {
	Helper()
	Fatal(args ...any)
}, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
