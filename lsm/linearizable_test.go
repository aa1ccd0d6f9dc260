package lsm

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TESTPLAN S7: linearizability of single-key committed operations, checked
// per key (porcupine's Partition: linearizability is local, so a history is
// linearizable iff its projection on every key is), standard library only.
//
// Workload. linWorkers goroutines run operations on linKeys shared keys of a
// store that flushes and compacts meanwhile: reads (DB.Get, DB.AppendValue,
// a Snapshot's Get, an iterator bounded to the key), transactions writing
// one to three keys (sets and deletes, some after an intermediate value of
// the key; half with TxnOptions.NoSync, the others synced on disk; one in
// eight rolls back) and DB.Set/DB.Delete. Every value is unique in the run.
// One atomic clock is read right before each call and right after it
// returns: the operation's interval [inv, res] (see also linYield). A
// write's interval is its Commit's (or Set's); a transaction of several
// keys gives each key a write with that interval. Values rolled back or
// overwritten inside their transaction never happened: reading one is an
// anomaly.
//
// The checker treats each key as an atomic register that starts absent and
// follows Gibbons and Korach ("Testing shared memories", 1997). A write (a
// set, or a delete, which gets an identity of its own, like a tombstone
// token) and the reads mapped to it form a cluster; the initial state is a
// cluster whose write is at time 0. A linearization lays every cluster out
// as a block: its write, then its reads, then the next cluster. With f the
// earliest response and s the latest invocation in a cluster, the block
// must cover [f, s] if f < s (a forward zone), and otherwise fits anywhere
// in [s, f] (a backward zone). With every read mapped to a write, the
// history is linearizable iff (a) no read responds before its write is
// invoked, (b) no two forward zones overlap and (c) no backward zone lies
// inside a forward zone. A read of a value never written to the key, or
// rolled back, is an anomaly.
//
// Deletes and absent reads. A read that returns ErrNotFound reads what the
// initial state and every delete write. In a linearization it follows a
// delete (or the initial state) with no set in between; mapped to the last
// such delete it joins that delete's cluster, so the history is
// linearizable iff some mapping of the absent reads to deletes (or the
// initial state) satisfies (a)-(c). The checker, per key:
//  1. checks (a)-(c) over sets, deletes and reads of values, absent reads
//     left out (a sub-history of a linearizable history is linearizable, so
//     what breaks them is real: "future read", "overlap", "stale read");
//  2. calls a delete d feasible for an absent read r if d is invoked before
//     r responds and adding r to d's cluster keeps (a)-(c). A read with no
//     feasible delete is a "stale absent" anomaly: a set must come between
//     every delete and it. A read with exactly one is mapped to it (every
//     linearization maps it there). This repeats until nothing changes;
//  3. searches, depth first, the mappings of the reads left (each with
//     several feasible deletes): it maps the first to each feasible delete
//     in turn (the one whose zone grows least first), runs step 2 again
//     (a read left with no feasible delete undoes the choice), and goes on.
//     A mapping of every read is a witness: the key's history is proven
//     linearizable. A search that tries every choice and finds none proves
//     it is not ("stale absent"). A search past linSearchBudget choices
//     leaves the key undecided, which fails the run too.
//
// So a run passes only with a witness for every key. Per-key
// linearizability implies the transaction-level real-time property, which
// is not checked apart: if commit A returned before commit B began, no read
// that begins after B returned sees A's value of a key B overwrote (A's and
// B's writes of it are ordered, and B's precedes the read).
//
// TestLinearizableChecker feeds the checker crafted histories, so that a
// checker that finds nothing is caught; TestLinearizableCheckerRandom
// compares it with an exhaustive search on small random histories.

const (
	linWorkers    = 8
	linKeys       = 6
	linMaxPad     = 300
	linMaxReports = 5 // anomalies of each kind reported in full
)

var linOps = flag.Int("lin.ops", 0,
	"operations per history of TestLinearizable (0: 4000, 1500 with -short); nightly: -lin.ops=20000")

// TestLinearizable runs the workload on disk and in memory and checks that
// each key's history is linearizable.
func TestLinearizable(t *testing.T) {
	n := *linOps
	switch {
	case n > 0:
	case testing.Short():
		n = 1500
	default:
		n = 4000
	}
	t.Run("disk", func(t *testing.T) {
		runLin(t, t.TempDir(), &Options{
			MemTableSize:          64 << 10,
			L0CompactionThreshold: 2,
			TargetFileSize:        8 << 10,
			LevelBaseBytes:        32 << 10,
			LevelMultiplier:       2,
			BlockSize:             1 << 10,
			BlockCacheSize:        64 << 10,
			MaxOpenTables:         8,
		}, n)
	})
	t.Run("memory", func(t *testing.T) {
		runLin(t, "", &Options{InMemory: true, MemTableSize: 64 << 10, L0CompactionThreshold: 2}, n)
	})
}

type linKind uint8

const (
	linSet  linKind = iota // a write of a unique value
	linDel                 // a write of absent
	linRead                // a read; value "" is absent (ErrNotFound)
)

// linOp is one single-key operation of a history. Times are the clock's:
// within a key all are distinct, and inv < res.
type linOp struct {
	key      int
	kind     linKind
	value    string
	inv, res int64
}

func (op *linOp) String() string {
	v := op.value
	if i := strings.LastIndexByte(v, '.'); i > 0 {
		v = v[:i] // without the padding
	}
	switch {
	case op.kind == linSet:
		return fmt.Sprintf("set %s [%d,%d]", v, op.inv, op.res)
	case op.kind == linDel:
		return fmt.Sprintf("delete [%d,%d]", op.inv, op.res)
	case v == "":
		return fmt.Sprintf("get absent [%d,%d]", op.inv, op.res)
	}
	return fmt.Sprintf("get %s [%d,%d]", v, op.inv, op.res)
}

// linHistory is what a run did: the committed writes and the reads, and the
// values that were never committed.
type linHistory struct {
	ops   []linOp
	never map[string]bool
}

// linRun is the state shared by the workers of one run.
type linRun struct {
	t      *testing.T
	d      *DB
	seed   uint64
	total  int64
	clock  atomic.Int64 // the history's clock
	begun  atomic.Int64 // operations begun
	failed atomic.Bool

	rollbacks, noSync, intermediates, multiKey atomic.Int64
}

func runLin(t *testing.T, dir string, o *Options, n int) {
	r := &linRun{t: t, d: openTest(t, dir, o), seed: testSeed(t), total: int64(n)}
	start := time.Now()
	hs := make([]linHistory, linWorkers)
	var wg sync.WaitGroup
	for w := range linWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); hs[w] = r.worker(w) }()
	}
	wg.Wait()
	if r.failed.Load() {
		t.FailNow()
	}
	h := &linHistory{never: map[string]bool{}}
	for _, wh := range hs {
		h.ops = append(h.ops, wh.ops...)
		for v := range wh.never {
			h.never[v] = true
		}
	}
	elapsed := time.Since(start)
	res := checkLinearizable(h)
	m := r.d.Metrics()
	r.logFigures(h, res, m, elapsed, time.Since(start)-elapsed)
	if len(res.anomalies) > 0 || len(res.undecided) > 0 {
		t.Fatalf("not linearizable (seed %d): %d anomalies, keys undecided %v:\n%s",
			r.seed, len(res.anomalies), res.undecided, linReport(res.anomalies))
	}
	r.checkNotVacuous(res, m)
}

func linKey(k int) []byte { return fmt.Appendf(nil, "lin/k%d", k) }

// worker runs operations until the run has begun r.total of them and
// returns its part of the history.
func (r *linRun) worker(w int) linHistory {
	rng := rand.New(rand.NewPCG(r.seed, uint64(w)))
	h := linHistory{never: map[string]bool{}}
	n := 0
	value := func(k int) string { // unique in the run, padded to grow tables
		n++
		pad := make([]byte, rng.IntN(linMaxPad))
		for i := range pad {
			pad[i] = byte('a' + rng.IntN(26))
		}
		return fmt.Sprintf("k%d.w%d.%d.%s", k, w, n, pad)
	}
	buf := make([]byte, 0, 512)
	for ok := true; ok && !r.failed.Load() && r.begun.Add(1) <= r.total; {
		switch p := rng.IntN(100); {
		case p < 45:
			ok = r.read(rng, &h, &buf)
		case p < 80:
			ok = r.txn(rng, &h, value)
		case p < 99:
			ok = r.write(rng, &h, value)
		default:
			ok = r.check(r.d.Flush(), "Flush")
		}
	}
	return h
}

// check reports an unexpected error and stops the run.
func (r *linRun) check(err error, what string) bool {
	if err != nil {
		r.t.Errorf("%s: %v", what, err)
		r.failed.Store(true)
		return false
	}
	return true
}

// read reads one key, by one of the committed read paths, and records it.
func (r *linRun) read(rng *rand.Rand, h *linHistory, buf *[]byte) bool {
	op := linOp{key: rng.IntN(linKeys), kind: linRead}
	key := linKey(op.key)
	var v []byte
	var err error
	how := rng.IntN(10)
	op.inv = r.clock.Add(1)
	linYield(rng)
	switch how {
	case 0:
		v, err = r.d.AppendValue((*buf)[:0], key)
		*buf = v[:0]
	case 1:
		v, err = linSnapshotGet(r.d, key)
	case 2:
		v, err = linIterGet(r.d, key)
	default:
		v, err = r.d.Get(key)
	}
	op.res = r.clock.Add(1)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	op.value = string(v)
	h.ops = append(h.ops, op)
	return r.check(err, fmt.Sprintf("read %d of %s", how, key))
}

// linYield lets the other workers run, one call in eight, between an
// operation's invocation and its call: operations overlap even when the
// scheduler runs the workers one at a time (a busy machine). The interval
// still holds the call, so the history stays a true one.
func linYield(rng *rand.Rand) {
	if rng.IntN(8) == 0 {
		runtime.Gosched()
	}
}

// linSnapshotGet reads key in a snapshot taken for the read.
func linSnapshotGet(d *DB, key []byte) ([]byte, error) {
	sn, err := d.NewSnapshot()
	if err != nil {
		return nil, err
	}
	v, err := sn.Get(key)
	return v, errors.Join(err, sn.Close())
}

// linIterGet reads key through an iterator bounded to it.
func linIterGet(d *DB, key []byte) ([]byte, error) {
	it, err := d.NewIterator(&IterOptions{LowerBound: key, UpperBound: append(slices.Clip(key), 0)})
	if err != nil {
		return nil, err
	}
	var v []byte
	found := it.First()
	if found {
		v = slices.Clone(it.Value())
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	return v, nil
}

// txn runs a transaction writing one to three keys and records its writes
// if it commits.
func (r *linRun) txn(rng *rand.Rand, h *linHistory, value func(int) string) bool {
	var o *TxnOptions
	if rng.IntN(2) == 0 {
		o = &TxnOptions{NoSync: true}
	}
	tx := r.d.Begin(o)
	defer tx.Rollback() // ErrTxnDone once ended
	keys := rng.Perm(linKeys)[:1+rng.IntN(3)]
	ops := make([]linOp, 0, len(keys))
	for _, k := range keys {
		if rng.IntN(6) == 0 { // an intermediate value, overwritten below
			v := value(k)
			h.never[v] = true
			r.intermediates.Add(1)
			if !r.check(tx.Set(linKey(k), []byte(v)), "Txn.Set") {
				return false
			}
		}
		op := linOp{key: k, kind: linDel}
		var err error
		if rng.IntN(5) == 0 {
			err = tx.Delete(linKey(k))
		} else {
			op.kind, op.value = linSet, value(k)
			err = tx.Set(linKey(k), []byte(op.value))
		}
		if !r.check(err, "Txn write") {
			return false
		}
		ops = append(ops, op)
	}
	if rng.IntN(8) == 0 {
		for _, op := range ops {
			if op.kind == linSet {
				h.never[op.value] = true
			}
		}
		r.rollbacks.Add(1)
		return r.check(tx.Rollback(), "Rollback")
	}
	inv := r.clock.Add(1)
	linYield(rng)
	err := tx.Commit()
	res := r.clock.Add(1)
	for i := range ops {
		ops[i].inv, ops[i].res = inv, res
	}
	h.ops = append(h.ops, ops...)
	if o != nil {
		r.noSync.Add(1)
	}
	if len(ops) > 1 {
		r.multiKey.Add(1)
	}
	return r.check(err, "Commit")
}

// write runs a DB.Set or a DB.Delete and records it.
func (r *linRun) write(rng *rand.Rand, h *linHistory, value func(int) string) bool {
	op := linOp{key: rng.IntN(linKeys), kind: linDel}
	if rng.IntN(4) != 0 {
		op.kind, op.value = linSet, value(op.key)
	}
	var err error
	op.inv = r.clock.Add(1)
	linYield(rng)
	if op.kind == linSet {
		err = r.d.Set(linKey(op.key), []byte(op.value))
	} else {
		err = r.d.Delete(linKey(op.key))
	}
	op.res = r.clock.Add(1)
	h.ops = append(h.ops, op)
	return r.check(err, "DB write")
}

func (r *linRun) logFigures(h *linHistory, res *linResult, m Metrics, elapsed, checking time.Duration) {
	minPairs := slices.Min(res.keyPairs[:])
	r.t.Logf("%v: %d single-key ops: %d sets, %d deletes, %d reads (%d absent); %d rollbacks, %d intermediate values, %d multi-key and %d NoSync commits",
		elapsed.Round(time.Millisecond), len(h.ops), res.sets, res.deletes, res.reads, res.absentReads,
		r.rollbacks.Load(), r.intermediates.Load(), r.multiKey.Load(), r.noSync.Load())
	r.t.Logf("checked in %v: %d overlapping (write, read) pairs (per key %v, min %d), %d reads overlapping a write; zones: %d forward, %d backward; absent reads mapped: %d forced, %d by search (%d choices tried); keys decided %d/%d",
		checking.Round(time.Millisecond), res.pairs, res.keyPairs, minPairs, res.contended, res.forward, res.backward,
		res.forced, res.searched, res.choices, linKeys-len(res.undecided), linKeys)
	r.t.Logf("engine: %d commits, %d flushes, %d compactions, %d tables deleted, %d stalls",
		m.Commits, m.Flushes, m.Compactions, m.TablesDeleted, m.Stalls)
}

// checkNotVacuous fails a run too thin to mean anything: too few reads
// concurrent with writes of their key, deletes, absent reads or rollbacks.
func (r *linRun) checkNotVacuous(res *linResult, m Metrics) {
	n := int(r.total)
	for _, f := range []struct {
		what     string
		got, min int
	}{
		{"overlapping (write, read) pairs on the least contended key", slices.Min(res.keyPairs[:]), n / 40},
		{"reads overlapping a write", res.contended, n / 10},
		{"forward zones", res.forward, n / 10},
		{"deletes", res.deletes, n / 20},
		{"absent reads", res.absentReads, n / 40},
		{"multi-key commits", int(r.multiKey.Load()), n / 20},
		{"NoSync commits", int(r.noSync.Load()), n / 20},
		{"rollbacks", int(r.rollbacks.Load()), n / 100},
		{"flushes", int(m.Flushes), 1},
	} {
		if f.got < f.min {
			r.t.Errorf("vacuous run: %d %s, want at least %d", f.got, f.what, f.min)
		}
	}
}

// --- the checker ---

type linAnomaly struct{ kind, msg string }

// linResult is what the checker found, with the figures of the history.
type linResult struct {
	anomalies                         []linAnomaly
	sets, deletes, reads, absentReads int
	// pairs counts the (write, read) pairs of one key whose intervals
	// overlap, keyPairs per key; contended the reads overlapping a write.
	pairs, contended  int
	keyPairs          [linKeys]int
	forward, backward int   // zones of the final mapping
	forced, searched  int   // absent reads mapped in steps 2 and 3
	choices           int   // tried by step 3, at most linSearchBudget per key
	undecided         []int // keys whose step 3 ran out of budget
}

// linCluster is a write (nil: the initial state) and the reads mapped to it.
type linCluster struct {
	w     *linOp
	f, s  int64 // earliest response and latest invocation in the cluster
	reads int
}

// empty reports whether the cluster is the initial state with no reads.
func (c *linCluster) empty() bool { return c.w == nil && c.reads == 0 }

// inv and res are the write's times (0 for the initial state).
func (c *linCluster) inv() int64 {
	if c.w == nil {
		return 0
	}
	return c.w.inv
}

func (c *linCluster) res() int64 {
	if c.w == nil {
		return 0
	}
	return c.w.res
}

func (c *linCluster) String() string {
	w := "the initial state"
	if c.w != nil {
		w = c.w.String()
	}
	if c.f < c.s {
		return fmt.Sprintf("%s and %d reads (visible throughout [%d,%d])", w, c.reads, c.f, c.s)
	}
	return fmt.Sprintf("%s and %d reads (within [%d,%d])", w, c.reads, c.s, c.f)
}

// linConflict reports whether zones (f1, s1) and (f2, s2) break (b) or (c).
func linConflict(f1, s1, f2, s2 int64) bool {
	switch fw1, fw2 := f1 < s1, f2 < s2; {
	case fw1 && fw2:
		return max(f1, f2) < min(s1, s2)
	case fw1:
		return f1 < s2 && f2 < s1
	case fw2:
		return f2 < s1 && f1 < s2
	}
	return false
}

// checkLinearizable checks every key's history.
func checkLinearizable(h *linHistory) *linResult {
	res := &linResult{}
	written := map[string]*linOp{}
	var byKey [linKeys][]*linOp
	for i := range h.ops {
		op := &h.ops[i]
		if op.key < 0 || op.key >= linKeys || op.inv <= 0 || op.res <= op.inv {
			res.anomaly("history", "bad operation %v on key %d", op, op.key)
			continue
		}
		byKey[op.key] = append(byKey[op.key], op)
		if op.kind == linSet {
			if written[op.value] != nil {
				res.anomaly("history", "value written twice: %v", op)
			}
			written[op.value] = op
		}
	}
	for k, ops := range byKey {
		c := &linKeyCheck{res: res, key: k, written: written, never: h.never}
		c.run(ops)
	}
	return res
}

func (res *linResult) anomaly(kind, format string, args ...any) {
	res.anomalies = append(res.anomalies, linAnomaly{kind, fmt.Sprintf(format, args...)})
}

// linKeyCheck checks one key's history.
type linKeyCheck struct {
	res      *linResult
	key      int
	written  map[string]*linOp
	never    map[string]bool
	clusters []*linCluster // [0] is the initial state
	// dels are the deletes' clusters and the initial state's, by response.
	dels []*linCluster
	// setRes holds the sets' responses in order, lastSet[i] the latest
	// invoked of the sets of the first i+1.
	setRes  []int64
	lastSet []*linOp
}

func (c *linKeyCheck) run(ops []*linOp) {
	init := &linCluster{}
	c.clusters, c.dels = []*linCluster{init}, []*linCluster{init}
	bySet := map[*linOp]*linCluster{}
	var absent []*linOp
	for _, op := range ops {
		if op.kind == linRead {
			continue
		}
		cl := &linCluster{w: op, f: op.res, s: op.inv}
		c.clusters = append(c.clusters, cl)
		if op.kind == linDel {
			c.dels = append(c.dels, cl)
			c.res.deletes++
		} else {
			bySet[op] = cl
			c.res.sets++
		}
	}
	for _, op := range ops {
		if op.kind != linRead {
			continue
		}
		c.res.reads++
		if op.value == "" {
			c.res.absentReads++
			absent = append(absent, op)
			continue
		}
		w := c.written[op.value]
		switch {
		case c.never[op.value]:
			c.anomaly("aborted read", "%v: a value rolled back or overwritten in its transaction", op)
		case w == nil:
			c.anomaly("garbage", "%v: a value never written", op)
		case w.key != c.key:
			c.anomaly("garbage", "%v: a value written to key %d", op, w.key)
		case op.res < w.inv:
			c.anomaly("future read", "%v returned before the write began: %v", op, w)
		default:
			c.add(bySet[w], op)
		}
	}
	c.counts(ops)
	if c.zonesOK() { // else the absent reads' mapping would rest on a broken history
		c.mapAbsent(absent)
	}
	c.countZones()
}

func (c *linKeyCheck) anomaly(kind, format string, args ...any) {
	c.res.anomaly(kind, "key %d: "+format, append([]any{c.key}, args...)...)
}

// add maps read op to cluster cl.
func (c *linKeyCheck) add(cl *linCluster, op *linOp) {
	cl.f, cl.s = min(cl.f, op.res), max(cl.s, op.inv)
	cl.reads++
}

// counts adds the key's overlapping (write, read) pairs to the figures.
func (c *linKeyCheck) counts(ops []*linOp) {
	var invs, ress []int64
	for _, op := range ops {
		if op.kind != linRead {
			invs, ress = append(invs, op.inv), append(ress, op.res)
		}
	}
	slices.Sort(invs)
	slices.Sort(ress)
	for _, op := range ops {
		if op.kind == linRead {
			i, _ := slices.BinarySearch(invs, op.res) // writes begun before it returned
			j, _ := slices.BinarySearch(ress, op.inv) // writes done before it began
			c.res.pairs += i - j
			c.res.keyPairs[c.key] += i - j
			if i > j {
				c.res.contended++
			}
		}
	}
	// For step 2: the sets by response (see setBefore) and the deletes.
	sets := slices.DeleteFunc(slices.Clone(ops), func(op *linOp) bool { return op.kind != linSet })
	slices.SortFunc(sets, func(a, b *linOp) int { return cmp.Compare(a.res, b.res) })
	for _, op := range sets {
		last := op
		if n := len(c.lastSet); n > 0 && c.lastSet[n-1].inv > op.inv {
			last = c.lastSet[n-1]
		}
		c.setRes, c.lastSet = append(c.setRes, op.res), append(c.lastSet, last)
	}
	slices.SortFunc(c.dels, func(a, b *linCluster) int { return cmp.Compare(a.res(), b.res()) })
}

// zonesOK checks (b) and (c) over every cluster and reports what breaks
// them.
func (c *linKeyCheck) zonesOK() bool {
	var fw, bw []*linCluster
	for _, cl := range c.clusters {
		switch {
		case cl.empty():
		case cl.f < cl.s:
			fw = append(fw, cl)
		default:
			bw = append(bw, cl)
		}
	}
	slices.SortFunc(fw, func(a, b *linCluster) int { return cmp.Compare(a.f, b.f) })
	ok := true
	for i := 1; i < len(fw); i++ {
		if fw[i].f < fw[i-1].s {
			c.anomaly("overlap", "two values must each stay visible over overlapping spans: %v; %v", fw[i-1], fw[i])
			ok = false
		}
	}
	for _, b := range bw {
		// The only forward zone that may hold b: the last one starting before it.
		i := sort.Search(len(fw), func(i int) bool { return fw[i].f > b.s }) - 1
		if i >= 0 && linConflict(fw[i].f, fw[i].s, b.f, b.s) {
			c.anomaly("stale read", "%v lies where %v must stay visible", b, fw[i])
			ok = false
		}
	}
	return ok
}

// fits reports whether cluster cl may take zone (f, s) given the others.
func (c *linKeyCheck) fits(cl *linCluster, f, s int64) bool {
	for _, o := range c.clusters {
		if o != cl && !o.empty() && linConflict(f, s, o.f, o.s) {
			return false
		}
	}
	return true
}

// feasible returns the deletes (or the initial state) that absent read r
// may be mapped to, given the mapping so far.
func (c *linKeyCheck) feasible(r *linOp) []*linCluster {
	// A delete that responded before the latest invocation of a set that
	// responded before r began cannot be: that set lies between them.
	// (The initial state responded at 0: it is a candidate only if no set
	// did before r.)
	floor := int64(-1)
	if w := c.setBefore(r); w != nil {
		floor = w.inv
	}
	var out []*linCluster
	i := sort.Search(len(c.dels), func(i int) bool { return c.dels[i].res() > floor })
	for _, d := range c.dels[i:] {
		if d.inv() < r.res && c.fits(d, min(d.f, r.res), max(d.s, r.inv)) {
			out = append(out, d)
		}
	}
	return out
}

// setBefore returns the latest invoked of the sets that responded before
// read r began, or nil.
func (c *linKeyCheck) setBefore(r *linOp) *linOp {
	if i := sort.Search(len(c.setRes), func(i int) bool { return c.setRes[i] > r.inv }); i > 0 {
		return c.lastSet[i-1]
	}
	return nil
}

// mapAbsent runs steps 2 and 3 over the key's absent reads.
func (c *linKeyCheck) mapAbsent(absent []*linOp) {
	absent, _ = c.propagate(absent, false)
	if len(absent) > 0 {
		budget := linSearchBudget
		defer func() { c.res.choices += linSearchBudget - max(budget, 0) }()
		switch {
		case c.search(absent, &budget):
			c.res.searched += len(absent)
		case budget < 0:
			c.res.undecided = append(c.res.undecided, c.key)
			return
		default:
			c.anomaly("stale absent", "no mapping of the absent reads fits (b) and (c); the first of them: %v", absent[0])
			return
		}
	}
	if !c.zonesOK() {
		c.anomaly("internal", "the witness mapping breaks (b) or (c)")
	}
}

// linSearchBudget bounds the choices step 3 tries per key.
const linSearchBudget = 100000

// search maps the absent reads left (each with several feasible deletes)
// depth first: it maps the first to each feasible delete in turn, least
// zone growth first, runs step 2, and goes on with the reads still left.
// It reports whether it found a witness; if not, it leaves the mapping as
// it found it and a negative budget means it gave up.
func (c *linKeyCheck) search(absent []*linOp, budget *int) bool {
	r := absent[0]
	cands := c.feasible(r)
	slices.SortStableFunc(cands, func(a, b *linCluster) int {
		return cmp.Or(cmp.Compare(linGrowth(a, r), linGrowth(b, r)), -cmp.Compare(a.inv(), b.inv()))
	})
	for _, d := range cands {
		if *budget--; *budget < 0 {
			return false
		}
		saved := c.save()
		c.add(d, r)
		left, stuck := c.propagate(slices.Clone(absent[1:]), true)
		if !stuck && (len(left) == 0 || c.search(left, budget)) {
			return true
		}
		c.restore(saved)
		if *budget < 0 {
			return false
		}
	}
	return false
}

// save returns the clusters' zones, for restore.
func (c *linKeyCheck) save() []linCluster {
	saved := make([]linCluster, len(c.clusters))
	for i, cl := range c.clusters {
		saved[i] = *cl
	}
	return saved
}

func (c *linKeyCheck) restore(saved []linCluster) {
	for i, cl := range c.clusters {
		*cl = saved[i]
	}
}

// linGrowth is how long d's zone would have to stay visible with r mapped
// to it.
func linGrowth(d *linCluster, r *linOp) int64 {
	f, s := min(d.f, r.res), max(d.s, r.inv)
	return max(s-f, 0)
}

// propagate runs step 2 until nothing changes and returns the reads with
// several feasible deletes, in invocation order. After a guess of step 3
// (guessed), a read with none means the guess was wrong (stuck), not an
// anomaly.
func (c *linKeyCheck) propagate(absent []*linOp, guessed bool) (left []*linOp, stuck bool) {
	for changed := true; changed; {
		changed = false
		left = absent[:0]
		for _, r := range absent {
			switch cands := c.feasible(r); len(cands) {
			case 0:
				if guessed {
					return nil, true
				}
				last := "none"
				if w := c.setBefore(r); w != nil {
					last = w.String()
				}
				c.anomaly("stale absent", "%v: no delete fits between it and the sets before it (the last of them: %s)", r, last)
			case 1:
				c.add(cands[0], r)
				if !guessed {
					c.res.forced++
				}
				changed = true
			default:
				left = append(left, r)
			}
		}
		absent = left
	}
	slices.SortFunc(left, func(a, b *linOp) int { return cmp.Compare(a.inv, b.inv) })
	return left, false
}

// countZones adds the key's zones to the figures.
func (c *linKeyCheck) countZones() {
	for _, cl := range c.clusters {
		switch {
		case cl.empty():
		case cl.f < cl.s:
			c.res.forward++
		default:
			c.res.backward++
		}
	}
}

// linReport lists the anomalies: their count by kind, then the first
// linMaxReports of each kind in full.
func linReport(as []linAnomaly) string {
	byKind := map[string][]linAnomaly{}
	for _, a := range as {
		byKind[a.kind] = append(byKind[a.kind], a)
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		fmt.Fprintf(&b, "%s: %d\n", k, len(byKind[k]))
		for i, a := range byKind[k] {
			if i == linMaxReports {
				fmt.Fprintf(&b, "  ... %d more\n", len(byKind[k])-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", a.msg)
		}
	}
	return b.String()
}

// TestLinearizableChecker feeds the checker crafted histories, each with
// one kind of anomaly (or none), and checks it reports exactly that kind,
// and, for the good ones, proves them linearizable.
func TestLinearizableChecker(t *testing.T) {
	set := func(k int, v string, inv, res int64) linOp { return linOp{k, linSet, v, inv, res} }
	del := func(k int, inv, res int64) linOp { return linOp{k, linDel, "", inv, res} }
	get := func(k int, v string, inv, res int64) linOp { return linOp{k, linRead, v, inv, res} }
	cases := []struct {
		name  string
		ops   []linOp
		never []string
		want  string // the kind of every anomaly; "" none
		pairs int    // overlapping (write, read) pairs, of a good one
	}{
		{"valid, concurrent", []linOp{
			// b is read before its write returns, then a, written over it.
			set(0, "a", 1, 4), set(0, "b", 2, 6), get(0, "b", 3, 5), get(0, "a", 7, 8),
			// A delete concurrent with a set, linearized after it.
			set(0, "c", 9, 12), del(0, 10, 13), get(0, "", 11, 14), get(0, "", 15, 16),
			// A transaction writing keys 0 and 1, read concurrently.
			set(0, "t", 17, 20), set(1, "t1", 17, 20), get(1, "", 18, 19), get(1, "t1", 21, 22), get(0, "t", 21, 23),
			// An absent read mapped to either of two deletes.
			set(2, "v", 1, 2), del(2, 3, 6), del(2, 4, 7), get(2, "", 5, 8), get(2, "", 9, 10),
		}, nil, "", 7},
		{"initial state read concurrently with a set", []linOp{
			get(0, "", 1, 3), set(0, "a", 2, 4), get(0, "a", 5, 8), del(0, 6, 9), get(0, "", 7, 10),
		}, nil, "", 3},
		{"value read while a later delete was in flight, then absent", []linOp{
			get(0, "", 1, 3), set(0, "a", 2, 4), get(0, "", 5, 7), del(0, 6, 9), get(0, "a", 8, 10),
		}, nil, "stale absent", 0},
		{"an absent read whose first choice of delete must be undone", []linOp{
			// The search maps [1,3] to the delete [2,13] first (its zone
			// grows least), which leaves [14,16] with none; it must go to
			// the initial state (choice 2), and [8,9] to a delete (3).
			get(0, "", 1, 3), del(0, 2, 13), set(0, "v1", 4, 5), set(0, "v4", 6, 10), del(0, 7, 15),
			get(0, "", 8, 9), get(0, "v4", 11, 12), get(0, "", 14, 16),
		}, nil, "", 7},
		{"stale read after a later write completed", []linOp{
			set(0, "a", 1, 2), set(0, "b", 3, 4), get(0, "a", 5, 6),
		}, nil, "stale read", 0},
		{"stale read after a transaction completed", []linOp{
			set(0, "a", 1, 2), set(1, "a1", 1, 2), set(0, "b", 3, 4), get(1, "a1", 5, 6), get(0, "a", 7, 8),
		}, nil, "stale read", 0},
		{"value read after its delete completed", []linOp{
			set(0, "a", 1, 2), del(0, 3, 4), get(0, "a", 5, 6),
		}, nil, "stale read", 0},
		{"read returned before its write began", []linOp{
			get(0, "a", 1, 2), set(0, "a", 3, 4),
		}, nil, "future read", 0},
		{"two readers see two writes in opposite orders", []linOp{
			set(0, "a", 1, 10), set(0, "b", 2, 11),
			get(0, "a", 12, 14), get(0, "b", 13, 15), get(0, "b", 16, 18), get(0, "a", 17, 19),
		}, nil, "overlap", 0},
		{"read of a rolled-back value", []linOp{set(0, "a", 1, 2), get(0, "z", 3, 4)}, []string{"z"}, "aborted read", 0},
		{"read of a value never written", []linOp{set(0, "a", 1, 2), get(0, "q", 3, 4)}, nil, "garbage", 0},
		{"read of another key's value", []linOp{set(1, "a", 1, 2), get(0, "a", 3, 4)}, nil, "garbage", 0},
		{"absent after a set, no delete", []linOp{set(0, "a", 1, 2), get(0, "", 3, 4)}, nil, "stale absent", 0},
		{"absent after a delete then a set", []linOp{
			del(0, 1, 2), set(0, "a", 3, 4), get(0, "", 5, 6),
		}, nil, "stale absent", 0},
		{"two absent reads that need the one delete on both sides of a set", []linOp{
			// The first absent read forces the delete before the set,
			// the second needs it after.
			set(0, "a", 1, 2), del(0, 3, 10), get(0, "", 4, 5), set(0, "b", 6, 9), get(0, "", 11, 12),
		}, nil, "stale absent", 0},
	}
	for _, tc := range cases {
		h := &linHistory{ops: tc.ops, never: map[string]bool{}}
		for _, v := range tc.never {
			h.never[v] = true
		}
		res := checkLinearizable(h)
		var got []string
		for _, a := range res.anomalies {
			got = append(got, a.kind)
		}
		switch {
		case tc.want == "" && len(got) > 0, tc.want != "" && (len(got) == 0 || slices.ContainsFunc(got, func(k string) bool { return k != tc.want })):
			t.Errorf("%s: checker reported %q, want %q:\n%s", tc.name, got, tc.want, linReport(res.anomalies))
		case len(res.undecided) > 0:
			t.Errorf("%s: keys %v undecided", tc.name, res.undecided)
		case tc.want == "" && res.pairs != tc.pairs:
			t.Errorf("%s: %d overlapping pairs, want %d", tc.name, res.pairs, tc.pairs)
		case strings.Contains(tc.name, "undone") && res.choices != 3:
			t.Errorf("%s: the search tried %d choices, want 3", tc.name, res.choices)
		}
	}
}

// TestLinearizableCheckerRandom compares the checker with an exhaustive
// search on small random histories of one key: the reads return what a
// register gives at random points inside the intervals (a linearizable
// history), then, in half of them, one read returns another value. The
// checker must agree with the search on every one.
func TestLinearizableCheckerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	var valid, invalid int
	caught := map[string]int{}
	for range 20000 {
		ops := linRandomHistory(rng, 3+rng.IntN(7))
		want := linBrute(ops)
		res := checkLinearizable(&linHistory{ops: slices.Clone(ops), never: map[string]bool{}})
		switch {
		case len(res.undecided) > 0:
			t.Fatalf("undecided: %v", ops)
		case want && len(res.anomalies) > 0:
			t.Fatalf("anomalies in a linearizable history %v:\n%s", ops, linReport(res.anomalies))
		case !want && len(res.anomalies) == 0:
			t.Fatalf("proved a history that is not linearizable: %v", ops)
		case want:
			valid++
		default:
			invalid++
			caught[res.anomalies[0].kind]++
		}
	}
	t.Logf("%d linearizable histories, %d not, caught as %v", valid, invalid, caught)
}

// linRandomHistory returns n operations on key 0 with random intervals.
func linRandomHistory(rng *rand.Rand, n int) []linOp {
	// Endpoints at random, intervals of mean length spread: ranked, they
	// give distinct clock times.
	spread := []float64{0.3, 1, 5}[rng.IntN(3)]
	ends := make([]float64, 2*n)
	for i := 0; i < n; i++ {
		ends[2*i] = rng.Float64() * float64(n)
		ends[2*i+1] = ends[2*i] + rng.ExpFloat64()*spread
	}
	rank := make([]int, 2*n)
	for i := range rank {
		rank[i] = i
	}
	slices.SortFunc(rank, func(a, b int) int { return cmp.Compare(ends[a], ends[b]) })
	times := make([]int64, 2*n)
	for t, i := range rank {
		times[i] = int64(t + 1)
	}
	ops := make([]linOp, n)
	points := make([]float64, n)
	var values []string
	for i := range ops {
		ops[i] = linOp{kind: linRead, inv: times[2*i], res: times[2*i+1]}
		switch p := rng.IntN(10); {
		case p < 4:
			ops[i].kind, ops[i].value = linSet, fmt.Sprintf("v%d", i)
			values = append(values, ops[i].value)
		case p < 6:
			ops[i].kind = linDel
		}
		points[i] = float64(ops[i].inv) + rng.Float64()*float64(ops[i].res-ops[i].inv)
	}
	order := rng.Perm(n)
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(points[a], points[b]) })
	state := ""
	for _, i := range order {
		switch ops[i].kind {
		case linSet:
			state = ops[i].value
		case linDel:
			state = ""
		default:
			ops[i].value = state
		}
	}
	var reads []int
	for i := range ops {
		if ops[i].kind == linRead {
			reads = append(reads, i)
		}
	}
	if len(reads) > 0 && rng.IntN(2) == 0 {
		i := reads[rng.IntN(len(reads))]
		ops[i].value = ""
		if k := rng.IntN(len(values) + 1); k < len(values) {
			ops[i].value = values[k]
		}
	}
	return ops
}

// linBrute decides by exhaustive search whether one key's history is
// linearizable.
func linBrute(ops []linOp) bool {
	done := make([]bool, len(ops))
	var search func(n int, state string) bool
	search = func(n int, state string) bool {
		if n == len(ops) {
			return true
		}
		first := int64(1 << 62) // the earliest response of the operations left
		for i, op := range ops {
			if !done[i] {
				first = min(first, op.res)
			}
		}
		for i, op := range ops {
			if done[i] || op.inv > first {
				continue
			}
			next := state
			switch {
			case op.kind == linSet:
				next = op.value
			case op.kind == linDel:
				next = ""
			case op.value != state:
				continue
			}
			done[i] = true
			ok := search(n+1, next)
			done[i] = false
			if ok {
				return true
			}
		}
		return false
	}
	return search(0, "")
}
