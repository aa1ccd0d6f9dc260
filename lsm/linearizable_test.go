package lsm

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
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
	n := historySize(*linOps, 1500, 4000)
	onBusyStores(t, false, func(t *testing.T, dir string, o *Options) { runLin(t, dir, o, n) })
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
