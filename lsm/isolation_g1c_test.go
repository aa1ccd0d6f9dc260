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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/testseed"
)

// TESTPLAN S7, G1c (circular information flow), list-append style.
//
// g1cWorkers goroutines run transactions with unique ids over g1cSlots
// shared list keys. A transaction picks one to four keys; it reads each (by
// Get or through an iterator) and, for most, appends its id: it writes the
// list it read plus its id (sometimes after an intermediate value ending in
// "!n", and reading its writes back now and then). One transaction in six
// rolls back. Commits race on the keys: the engine has no write-write
// conflict detection (KIP-892 has one writer per task), so the last
// committer wins and the other appends are lost updates, which
// ReadCommitted allows and the checker does not flag. A key is retired for
// a fresh one (generation) after g1cMaxAppends committed appends, so lists
// stay short however long the run. Tiny memtables, an eager level-0 trigger
// and (on disk) small tables keep flushes and compactions running, and some
// transactions flush mid-way, so reads come from tables too.
//
// An observer takes snapshots in a loop (Gets or an iterator) and records
// each one's Seq and values: snapshots are totally ordered by Seq, which
// orders the versions of each key. A last snapshot after the writers stop
// reads every key; on disk the store is then checked, reopened and must hold
// the same. The checker (isolation_g1c_check_test.go) finds G1a, G1b,
// reads before Commit, internal inconsistencies and G1c (or G0) cycles of
// wr and ww dependencies. Transactions read at ReadCommitted, the only level
// a Txn has (ReadUncommitted is a DB reader, checked by TestIsolationS7), so
// every read counts. The run also checks it was not vacuous: enough wr and
// ww edges between transactions, lost updates, intermediate writes.

const (
	g1cWorkers    = 8
	g1cSlots      = 10  // keys in use at a time
	g1cMaxAppends = 100 // committed appends before a key is retired
	g1cPace       = 8   // transactions begun per snapshot taken, at most
	g1cMaxReports = 5   // anomalies of each kind reported in full
)

var g1cTxns = flag.Int("g1c.txns", 0,
	"transactions per history of TestIsolationG1c (0: 3000, about 17k reads and writes; 500 with -short); nightly: -count=500, 1,000 histories")

// TestIsolationG1c runs the G1c workload on disk and in memory.
func TestIsolationG1c(t *testing.T) {
	n := historySize(*g1cTxns, 500, 3000)
	onBusyStores(t, true, func(t *testing.T, dir string, o *Options) { runG1c(t, dir, o, n) })
}

// g1cRun is the state shared by the workers and the observer of one run.
type g1cRun struct {
	t      *testing.T
	d      *DB
	seed   uint64
	onDisk bool
	total  int64
	nextID atomic.Int64
	events atomic.Int64 // orders reads against calls of Commit
	// Per slot: the generation of its key in use and the committed appends
	// to it.
	gens, appends [g1cSlots]atomic.Int64

	snapshots                 atomic.Int64 // taken by the observer
	txnFlushes, intermediates atomic.Int64
	failures                  atomic.Int64
	stop                      atomic.Bool
}

func runG1c(t *testing.T, dir string, o *Options, n int) {
	r := &g1cRun{t: t, d: openTest(t, dir, o), seed: testseed.Seed(t), onDisk: !o.InMemory, total: int64(n)}
	start := time.Now()
	h := &g1cHistory{}
	var mu sync.Mutex
	var workers, observer sync.WaitGroup
	var done atomic.Bool
	for w := 0; w < g1cWorkers; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			txns := r.worker(w)
			mu.Lock()
			h.txns = append(h.txns, txns...)
			mu.Unlock()
		}()
	}
	observer.Add(1)
	go func() { defer observer.Done(); h.obs = r.observer(&done) }()
	workers.Wait()
	done.Store(true)
	observer.Wait()
	final, ok := r.observe(false, true)
	if r.failures.Load() > 0 || !ok {
		t.FailNow()
	}
	h.obs = append(h.obs, final)
	m := r.d.Metrics()
	elapsed := time.Since(start)
	res := checkG1c(h)
	r.logFigures(h, res, m, elapsed, time.Since(start)-elapsed)
	if len(res.anomalies) > 0 {
		t.Fatalf("%d anomalies (seed %d):\n%s", len(res.anomalies), r.seed, g1cReport(res.anomalies))
	}
	r.checkNotVacuous(res, m)
	if r.onDisk {
		r.reopen(dir, o, final)
	}
}

// worker runs transactions until the run has begun r.total of them, and
// returns their history.
func (r *g1cRun) worker(w int) []*g1cTxn {
	rng := rand.New(rand.NewPCG(r.seed, uint64(w)))
	var txns []*g1cTxn
	for !r.stop.Load() {
		id := r.nextID.Add(1)
		if id > r.total {
			break
		}
		r.pace(id)
		t, ok := r.runTxn(rng, id)
		if !ok {
			break
		}
		txns = append(txns, t)
	}
	return txns
}

// pace waits while the observer is more than g1cPace transactions per
// snapshot behind, so that snapshots see most versions however the
// scheduler treats the observer.
func (r *g1cRun) pace(id int64) {
	for id > (r.snapshots.Load()+1)*g1cPace && !r.stop.Load() {
		time.Sleep(50 * time.Microsecond)
	}
}

func g1cKey(slot int, gen int64) string { return fmt.Sprintf("g/k%02d.%04d", slot, gen) }

// runTxn runs transaction id and returns its history.
func (r *g1cRun) runTxn(rng *rand.Rand, id int64) (*g1cTxn, bool) {
	t := &g1cTxn{id: id}
	tx := r.d.Begin(nil)
	defer tx.Rollback() // ErrTxnDone once ended
	type appended struct {
		slot int
		gen  int64
	}
	var apps []appended
	slots := rng.Perm(g1cSlots)[:1+rng.IntN(4)]
	for i, s := range slots {
		gen := r.gens[s].Load()
		key := g1cKey(s, gen)
		v, ok := r.read(tx, rng, t, key)
		if !ok {
			return nil, false
		}
		if rng.IntN(10) < 3 {
			continue // read only
		}
		if rng.IntN(4) == 0 {
			r.intermediates.Add(1)
			if !r.write(tx, rng, t, key, fmt.Sprintf("%s!%d", g1cAppend(v, id), i)) {
				return nil, false
			}
		}
		if !r.write(tx, rng, t, key, g1cAppend(v, id)) {
			return nil, false
		}
		apps = append(apps, appended{s, gen})
		if rng.IntN(40) == 0 {
			if err := r.d.Flush(); err != nil {
				return nil, r.failed("T%d: Flush: %v", id, err)
			}
			r.txnFlushes.Add(1)
		}
	}
	if rng.IntN(4) == 0 { // read a key again: it may have changed since
		if _, ok := r.read(tx, rng, t, g1cKey(slots[0], r.gens[slots[0]].Load())); !ok {
			return nil, false
		}
	}
	if rng.IntN(6) == 0 {
		return t, true // rolled back by the deferred call
	}
	t.commitAt = r.events.Add(1)
	if err := tx.Commit(); err != nil {
		return nil, r.failed("T%d: Commit: %v", id, err)
	}
	t.committed = true
	for _, a := range apps {
		if a.gen == r.gens[a.slot].Load() && r.appends[a.slot].Add(1) >= g1cMaxAppends &&
			r.gens[a.slot].CompareAndSwap(a.gen, a.gen+1) {
			r.appends[a.slot].Store(0)
		}
	}
	return t, true
}

// read reads key in the transaction, by Get or through an iterator, and
// records it.
func (r *g1cRun) read(tx *Txn, rng *rand.Rand, t *g1cTxn, key string) (string, bool) {
	var v []byte
	var err error
	if rng.IntN(4) == 0 {
		v, err = g1cIterGet(tx, key)
	} else {
		v, err = tx.Get([]byte(key))
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", r.failed("T%d: read %s: %v", t.id, key, err)
	}
	t.ops = append(t.ops, g1cOp{key: key, value: string(v), at: r.events.Add(1)})
	return string(v), true
}

// write writes key = v in the transaction, records it and sometimes reads
// it back.
func (r *g1cRun) write(tx *Txn, rng *rand.Rand, t *g1cTxn, key, v string) bool {
	if err := tx.Set([]byte(key), []byte(v)); err != nil {
		return r.failed("T%d: write %s: %v", t.id, key, err)
	}
	t.ops = append(t.ops, g1cOp{key: key, write: true, value: v})
	if rng.IntN(3) == 0 {
		_, ok := r.read(tx, rng, t, key)
		return ok
	}
	return true
}

// g1cIterGet reads key through an iterator of r bounded to it.
func g1cIterGet(r Reader, key string) ([]byte, error) {
	it, err := r.NewIterator(&IterOptions{LowerBound: []byte(key), UpperBound: []byte(key + "\x00")})
	if err != nil {
		return nil, err
	}
	var v []byte
	found := it.First()
	if found {
		v = append([]byte(nil), it.Value()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	return v, nil
}

// failed reports an unexpected error, stops the run and returns false.
func (r *g1cRun) failed(format string, args ...any) bool {
	r.t.Errorf(format, args...)
	r.failures.Add(1)
	r.stop.Store(true)
	return false
}

// g1cReport lists the anomalies: their count by kind, cycles first, then
// the first g1cMaxReports of each kind in full.
func g1cReport(as []g1cAnomaly) string {
	byKind := map[string][]g1cAnomaly{}
	for _, a := range as {
		byKind[a.kind] = append(byKind[a.kind], a)
	}
	kinds := slices.SortedFunc(maps.Keys(byKind), func(a, b string) int {
		return cmp.Or(cmp.Compare(g1cRank(a), g1cRank(b)), cmp.Compare(a, b))
	})
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s: %d\n", k, len(byKind[k]))
	}
	for _, k := range kinds {
		for i, a := range byKind[k] {
			if i == g1cMaxReports {
				fmt.Fprintf(&b, "... %d more %s\n", len(byKind[k])-i, k)
				break
			}
			fmt.Fprintf(&b, "%s: %s\n", k, a.msg)
		}
	}
	return b.String()
}

// g1cRank puts cycles first in reports.
func g1cRank(kind string) int {
	if kind == "G1c" || kind == "G0" {
		return 0
	}
	return 1
}

// observer takes snapshots until done and returns what they showed.
func (r *g1cRun) observer(done *atomic.Bool) []g1cObs {
	rng := rand.New(rand.NewPCG(r.seed, 1000))
	var obs []g1cObs
	for !done.Load() && !r.stop.Load() {
		o, ok := r.observe(rng.IntN(2) == 0, false)
		if !ok {
			break
		}
		obs = append(obs, o)
		r.snapshots.Add(1)
		switch rng.IntN(4) {
		case 0:
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		case 1:
			runtime.Gosched()
		}
	}
	return obs
}

// observe reads the keys in use (every key ever used if all), or every key
// through an iterator, in a new snapshot.
func (r *g1cRun) observe(iter, all bool) (g1cObs, bool) {
	var keys []string
	for s := range g1cSlots {
		gen := r.gens[s].Load()
		for g := max(0, gen-1); g <= gen; g++ {
			keys = append(keys, g1cKey(s, g))
		}
		for g := int64(0); all && g < gen-1; g++ {
			keys = append(keys, g1cKey(s, g))
		}
	}
	sn, err := r.d.NewSnapshot()
	if err != nil {
		return g1cObs{}, r.failed("NewSnapshot: %v", err)
	}
	defer sn.Close()
	o := g1cObs{seq: sn.Seq(), vals: make(map[string]string, len(keys))}
	for _, k := range keys {
		o.vals[k] = "" // absent unless read
	}
	if iter {
		it, err := sn.NewIterator(&IterOptions{LowerBound: []byte("g/"), UpperBound: []byte("g0")})
		if err != nil {
			return o, r.failed("snapshot NewIterator: %v", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			o.vals[string(it.Key())] = string(it.Value())
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return o, r.failed("snapshot iterator: %v", err)
		}
	} else {
		for _, k := range keys {
			v, err := sn.Get([]byte(k))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return o, r.failed("snapshot Get %s: %v", k, err)
			}
			o.vals[k] = string(v)
		}
	}
	o.at = r.events.Add(1)
	return o, true
}

func (r *g1cRun) logFigures(h *g1cHistory, res *g1cResult, m Metrics, elapsed, checking time.Duration) {
	ops := 0
	for _, t := range h.txns {
		ops += len(t.ops)
	}
	r.t.Logf("%v: %d transactions (%d committed, %d rolled back), %d reads and writes, %d intermediate writes, %d flushes inside transactions",
		elapsed.Round(time.Millisecond), len(h.txns), res.committed, res.rolled, ops, r.intermediates.Load(), r.txnFlushes.Load())
	r.t.Logf("checked in %v: %d reads (%d by %d snapshots) and %d reads of own writes; edges between transactions: %d wr, %d ww(list), %d ww(snapshots); %d lost updates; keys retired %d",
		checking.Round(time.Millisecond), res.reads, res.snapReads, len(h.obs), res.ownReads, res.edges[g1cWR], res.edges[g1cWWList], res.edges[g1cWWSnap],
		res.lostUpdates, r.retired())
	r.t.Logf("engine: %d commits, %d flushes, %d compactions, %d tables deleted, %d stalls",
		m.Commits, m.Flushes, m.Compactions, m.TablesDeleted, m.Stalls)
}

func (r *g1cRun) retired() (n int64) {
	for s := range r.gens {
		n += r.gens[s].Load()
	}
	return n
}

// checkNotVacuous fails a run whose transactions did not depend on each
// other enough for a cycle to be possible.
func (r *g1cRun) checkNotVacuous(res *g1cResult, m Metrics) {
	c := res.committed
	for _, f := range []struct {
		what     string
		got, min int
	}{
		{"committed transactions", c, int(r.total) / 2},
		{"rolled-back transactions", res.rolled, 1},
		{"wr edges", res.edges[g1cWR], c / 2},
		{"ww(list) edges", res.edges[g1cWWList], c / 4},
		{"ww(snapshots) edges", res.edges[g1cWWSnap], c / 20},
		{"lost updates", res.lostUpdates, 1},
		{"intermediate writes", int(r.intermediates.Load()), 1},
		{"flushes", int(m.Flushes), 1},
	} {
		if f.got < f.min {
			r.t.Errorf("vacuous run: %d %s, want at least %d", f.got, f.what, f.min)
		}
	}
}

// reopen closes the store, checks it, reopens it and checks it holds the
// state the last snapshot read.
func (r *g1cRun) reopen(dir string, o *Options, final g1cObs) {
	if err := r.d.Close(); err != nil {
		r.t.Fatal(err)
	}
	if rep, err := Check(dir, nil); err != nil {
		r.t.Fatalf("Check: %v\n%s", err, rep)
	}
	r.d = openTest(r.t, dir, o)
	again, ok := r.observe(false, true)
	if !ok {
		r.t.FailNow()
	}
	if !maps.Equal(again.vals, final.vals) {
		for k, v := range final.vals {
			if again.vals[k] != v {
				r.t.Errorf("after reopen %s = %s, before %s", k, g1cShort(again.vals[k]), g1cShort(v))
			}
		}
	}
}
