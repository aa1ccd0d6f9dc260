package lsm

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/testseed"
)

// TESTPLAN S7 (isolation) on a store that flushes and compacts all the time.
//
// Each of s7Writers writers owns s7Keys data keys in the default namespace
// ("d/wWW/kK", tag 'a'), the same keys in namespace s7NS (tag 'b'), a mirror
// of its offset in the default namespace ("o/wWW", tag 'o') and the offset
// "s7/wWW". Its t-th transaction (t = 1, 2, ...) writes intermediate values
// (phase "I<n>") and deletes over its keys, the offset -t, then the final
// state of version t: every data key set to its final value (phase "F") or
// deleted, the mirror set, the offset t. Whether transaction t rolls back
// and which keys it deletes are functions of (seed, w, t, key), so a checker
// knows the state of every version without asking the writers. Key k0 of each
// namespace is never deleted by a final write. Every value names its writer,
// version, key and phase, padded to a size drawn from the same hash, and the
// checker compares the whole value with the one it expects.
//
// Checks, all against that plan:
//   - G1a: a ReadCommitted read (Get, iterator, snapshot, offset) never shows
//     a version that rolls back; nobody reads a transaction's values once
//     it has ended unless they are the final values of a commit.
//   - G1b: a ReadCommitted read never shows an intermediate value (nor the
//     intermediate offset -t).
//   - fractured reads: in one point-in-time iterator, or one snapshot (its
//     iterators and Gets over both namespaces), every data key of writer w
//     holds version o, the mirror's version, or is deleted by o; the
//     committed offsets read between two snapshots lie between their
//     mirrors (and equal them when no commit came in between).
//   - monotonic reads: plain Gets of one reader never go back in versions.
//   - read-your-writes: a transaction reads its latest write of each key
//     (Get and iterators, both namespaces), and its committed state, from
//     tables after flushes and compactions.
//   - after the run (and a reopen on disk) the store holds the last commit
//     of every writer, and Check passes.
//
// ReadUncommitted is checked on the default namespace only (the engine has
// no ReadUncommitted view of a named one). TestIsolationS7Checker feeds the
// checker each anomaly, so that a checker which sees nothing is caught.

const (
	s7Writers    = 8
	s7Keys       = 5 // data keys per writer and namespace
	s7Readers    = 4
	s7NS         = "s7b"
	s7MaxPad     = 600
	s7MaxReports = 20 // violations reported in full before the run stops
)

// s7 is the state shared by the writers and readers of one run.
type s7 struct {
	t      *testing.T
	d      *DB
	nsB    *Namespace
	seed   uint64
	onDisk bool
	// Per writer: the transaction begun last, the last one committed (set
	// once Commit returned), the last one ended (Commit or Rollback
	// returned; set after committed).
	started, committed, ended [s7Writers]atomic.Int64

	commits, rollbacks, txnFlushes atomic.Int64
	checks                         [s7NumChecks]atomic.Int64 // views or key sets checked, per kind
	values                         atomic.Int64              // values checked
	violations                     atomic.Int64
	stop                           atomic.Bool
	record                         func(kind string) // replaces reporting (the checker's own test)
}

// The reader's check kinds.
const (
	s7IterRC = iota
	s7IterNS
	s7Snapshot
	s7GetRC
	s7IterRU
	s7GetRU
	s7NumChecks
)

var s7CheckNames = [s7NumChecks]string{"iter-rc", "iter-ns", "snapshot", "get-rc", "iter-ru", "get-ru"}

var s7Txns = flag.Int("s7.txns", 0, "transactions per writer of TestIsolationS7 (0: 60, or 30 with -short)")

// TestIsolationS7 runs TESTPLAN S7 on disk (flushes and compactions running
// throughout) and in memory.
func TestIsolationS7(t *testing.T) {
	txns := historySize(*s7Txns, 30, 60)
	onBusyStores(t, true, func(t *testing.T, dir string, o *Options) { runS7(t, dir, o, txns) })
}

func runS7(t *testing.T, dir string, o *Options, txns int) {
	s := &s7{t: t, seed: testseed.Seed(t), onDisk: !o.InMemory}
	s.open(dir, o)
	start := time.Now()
	var writers, readers sync.WaitGroup
	var writersDone atomic.Bool
	for w := 0; w < s7Writers; w++ {
		writers.Add(1)
		go func() { defer writers.Done(); s.writer(w, txns) }()
	}
	for i := 0; i < s7Readers; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			r := &s7Reader{s: s, rng: rand.New(rand.NewPCG(s.seed, 1000+uint64(i)))}
			for !writersDone.Load() && !s.stop.Load() {
				r.check(r.rng.IntN(s7NumChecks))
			}
		}()
	}
	writers.Wait()
	writersDone.Store(true)
	readers.Wait()
	s.logCounts(time.Since(start))
	if s.violations.Load() > 0 {
		t.Fatalf("%d isolation violations (seed %d)", s.violations.Load(), s.seed)
	}
	s.checkFinal("final")
	if s.onDisk {
		if err := s.d.Close(); err != nil {
			t.Fatal(err)
		}
		if r, err := Check(dir, nil); err != nil {
			t.Fatalf("Check: %v\n%s", err, r)
		}
		s.open(dir, o)
		s.checkFinal("after reopen")
	}
}

// open opens (or reopens) the store and namespace s7NS.
func (s *s7) open(dir string, o *Options) {
	s.d = openTest(s.t, dir, o)
	ns, err := s.d.Namespace(s7NS)
	if err != nil {
		s.t.Fatal(err)
	}
	s.nsB = ns
}

func (s *s7) logCounts(elapsed time.Duration) {
	m := s.d.Metrics()
	var b strings.Builder
	for i, name := range s7CheckNames {
		fmt.Fprintf(&b, " %s=%d", name, s.checks[i].Load())
	}
	s.t.Logf("%v: %d commits, %d rollbacks, %d flushes inside transactions; checks:%s; %d values checked",
		elapsed.Round(time.Millisecond), s.commits.Load(), s.rollbacks.Load(), s.txnFlushes.Load(), b.String(), s.values.Load())
	var lv strings.Builder
	for i, l := range m.Levels {
		if l.Tables > 0 {
			fmt.Fprintf(&lv, " L%d=%d", i, l.Tables)
		}
	}
	s.t.Logf("engine: %d flushes, %d compactions (%d trivial moves), %d rotations, %d tables deleted, %d stalls, tables:%s",
		m.Flushes, m.Compactions, m.TrivialMoves, m.Rotations, m.TablesDeleted, m.Stalls, lv.String())
}

// violation reports an anomaly; past s7MaxReports the run stops.
func (s *s7) violation(kind, format string, args ...any) {
	if s.record != nil {
		s.record(kind)
		return
	}
	n := s.violations.Add(1)
	if n <= s7MaxReports {
		s.t.Errorf("%s: %s", kind, fmt.Sprintf(format, args...))
	}
	if n >= s7MaxReports {
		s.stop.Store(true)
	}
}

// failed reports an unexpected error (not an anomaly of the checker's).
func (s *s7) failed(format string, args ...any) {
	s.violation("error", format, args...)
}

// --- the plan: functions of (seed, writer, version, key) ---

func s7Mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func (s *s7) hash(w int, t int64, tag, k uint64) uint64 {
	h := s7Mix(s.seed + 0x9e3779b97f4a7c15)
	for _, x := range [...]uint64{uint64(w), uint64(t), tag, k} {
		h = s7Mix(h ^ x)
	}
	return h
}

// rollsBack reports whether writer w's transaction t rolls back.
func (s *s7) rollsBack(w int, t int64) bool { return s.hash(w, t, 1, 0)%5 == 0 }

// deletes reports whether version t of writer w deletes key k of namespace
// ns (0: default, 1: s7NS). Key k0 is never deleted.
func (s *s7) deletes(w int, t int64, ns, k int) bool {
	return k > 0 && s.hash(w, t, 2+uint64(ns), uint64(k))%3 == 0
}

var s7Tags = [3]byte{'a', 'b', 'o'} // namespace 0, namespace 1, mirror

func s7DataKey(w, k int) []byte { return fmt.Appendf(nil, "d/w%02d/k%d", w, k) }
func s7MirrorKey(w int) []byte  { return fmt.Appendf(nil, "o/w%02d", w) }
func s7OffsetName(w int) string { return fmt.Sprintf("s7/w%02d", w) }

// value encodes the value of writer w's key (tag, k) written by version t
// in the given phase.
func (s *s7) value(w int, t int64, tag byte, k int, phase string) []byte {
	b := fmt.Appendf(nil, "w%02d.t%d.%c%d.%s.", w, t, tag, k, phase)
	p := uint64(tag)
	for _, c := range []byte(phase) {
		p = p*131 + uint64(c)
	}
	h := s.hash(w, t, 100+p, uint64(k))
	for n := int(h % s7MaxPad); n > 0; n-- { // letters that do not compress
		h = s7Mix(h)
		b = append(b, byte('a'+h%26))
	}
	return b
}

// s7Val is a decoded value.
type s7Val struct {
	w     int
	t     int64
	tag   byte
	k     int
	phase string
}

func (v s7Val) final() bool { return v.phase == "F" }

func (v s7Val) String() string {
	return fmt.Sprintf("w%02d.t%d.%c%d.%s", v.w, v.t, v.tag, v.k, v.phase)
}

// decode parses a value and checks every byte of it against its encoding.
func (s *s7) decode(b []byte) (s7Val, bool) {
	f := strings.SplitN(string(b), ".", 5)
	if len(f) != 5 || len(f[0]) != 3 || f[0][0] != 'w' || len(f[1]) < 2 || f[1][0] != 't' || len(f[2]) < 2 {
		return s7Val{}, false
	}
	w, err1 := strconv.Atoi(f[0][1:])
	t, err2 := strconv.ParseInt(f[1][1:], 10, 64)
	k, err3 := strconv.Atoi(f[2][1:])
	v := s7Val{w: w, t: t, tag: f[2][0], k: k, phase: f[3]}
	if err1 != nil || err2 != nil || err3 != nil || w < 0 || w >= s7Writers || t < 1 {
		return s7Val{}, false
	}
	return v, bytes.Equal(b, s.value(w, t, v.tag, k, v.phase))
}

// --- writers ---

// s7State is what a writer's transaction sees of its keys: the value of
// each data key per namespace and of the mirror (nil: absent).
type s7State struct {
	data   [2][s7Keys][]byte
	mirror []byte
}

// committedState returns the state version t of writer w left (t = 0: none).
func (s *s7) committedState(w int, t int64) s7State {
	var st s7State
	if t == 0 {
		return st
	}
	for ns := 0; ns < 2; ns++ {
		for k := 0; k < s7Keys; k++ {
			if !s.deletes(w, t, ns, k) {
				st.data[ns][k] = s.value(w, t, s7Tags[ns], k, "F")
			}
		}
	}
	st.mirror = s.value(w, t, 'o', 0, "F")
	return st
}

// writer runs writer w's transactions 1..n.
func (s *s7) writer(w, n int) {
	rng := rand.New(rand.NewPCG(s.seed, uint64(w)))
	var last int64 // last committed version
	for t := int64(1); t <= int64(n) && !s.stop.Load(); t++ {
		s.started[w].Store(t)
		if !s.runTxn(rng, w, t, last) {
			return
		}
		if s.rollsBack(w, t) {
			s.rollbacks.Add(1)
		} else {
			last = t
			s.committed[w].Store(t)
			s.commits.Add(1)
		}
		s.ended[w].Store(t)
		// The store holds the last commit, not the rolled-back transaction.
		s.checkTxnState(s.d, s.nsB, w, s.committedState(w, last), fmt.Sprintf("w%02d after txn %d", w, t))
	}
}

// s7Target is a key a transaction writes: a data key of namespace ns, or
// the mirror (ns = 2).
type s7Target struct{ ns, k int }

// runTxn runs writer w's transaction t over committed version last and
// reports whether it ended as planned.
func (s *s7) runTxn(rng *rand.Rand, w int, t, last int64) bool {
	tx := s.d.Begin(nil)
	defer tx.Rollback() // ErrTxnDone once ended
	txB := tx.In(s.nsB)
	st := s.committedState(w, last)
	where := fmt.Sprintf("w%02d txn %d", w, t)
	s.checkTxnState(tx, txB, w, st, where+" before writing")
	var targets []s7Target
	for ns := 0; ns < 2; ns++ {
		for k := 0; k < s7Keys; k++ {
			targets = append(targets, s7Target{ns, k})
		}
	}
	targets = append(targets, s7Target{2, 0})
	// Intermediate writes, each read back at once.
	for i, n := 0, 1+rng.IntN(2*len(targets)); i < n; i++ {
		tg := targets[rng.IntN(len(targets))]
		var v []byte
		if tg.ns == 2 || rng.IntN(4) != 0 {
			v = s.value(w, t, s7Tags[tg.ns], tg.k, "I"+strconv.Itoa(i))
		}
		if !s.txnWrite(tx, txB, w, tg, v, &st, where) {
			return false
		}
	}
	if err := tx.SetOffset(s7OffsetName(w), -t); err != nil {
		s.failed("%s: SetOffset: %v", where, err)
		return false
	}
	if s.onDisk && rng.IntN(32) == 0 {
		// Move the committed data under the transaction into tables.
		if err := s.d.Flush(); err != nil {
			s.failed("%s: Flush: %v", where, err)
			return false
		}
		s.txnFlushes.Add(1)
		s.checkTxnState(tx, txB, w, st, where+" after a flush")
	}
	// The final state of version t, in random order.
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	for _, tg := range targets {
		var v []byte
		if tg.ns == 2 || !s.deletes(w, t, tg.ns, tg.k) {
			v = s.value(w, t, s7Tags[tg.ns], tg.k, "F")
		}
		if !s.txnWrite(tx, txB, w, tg, v, &st, where) {
			return false
		}
	}
	if err := tx.SetOffset(s7OffsetName(w), t); err != nil {
		s.failed("%s: SetOffset: %v", where, err)
		return false
	}
	s.checkTxnState(tx, txB, w, st, where+" after writing")
	var err error
	if s.rollsBack(w, t) {
		err = tx.Rollback()
	} else {
		err = tx.Commit()
	}
	if err != nil {
		s.failed("%s: end: %v", where, err)
		return false
	}
	return true
}

// txnWrite writes v (nil: a delete) to target tg in the transaction,
// records it in st and reads it back.
func (s *s7) txnWrite(tx *Txn, txB TxnNamespace, w int, tg s7Target, v []byte, st *s7State, where string) bool {
	var r interface {
		Set(k, v []byte) error
		Delete(k []byte) error
		Get(k []byte) ([]byte, error)
	} = tx
	key := s7DataKey(w, tg.k)
	slot := &st.mirror
	switch tg.ns {
	case 0:
		slot = &st.data[0][tg.k]
	case 1:
		r, slot = txB, &st.data[1][tg.k]
	case 2:
		key = s7MirrorKey(w)
	}
	var err error
	if v == nil {
		err = r.Delete(key)
	} else {
		err = r.Set(key, v)
	}
	if err != nil {
		s.failed("%s: write %s: %v", where, key, err)
		return false
	}
	*slot = v
	got, err := r.Get(key)
	s.expectValue(got, err, v, fmt.Sprintf("%s: ns %d key %s", where, tg.ns, key))
	return true
}

// s7TxnReader reads one namespace as a transaction (or the DB) sees it.
type s7TxnReader interface {
	Get(key []byte) ([]byte, error)
	NewIterator(o *IterOptions) (*Iterator, error)
}

// checkTxnState checks that a and b (the default namespace and s7NS, as a
// transaction or the DB sees them) hold st for writer w's keys, by Get and
// by iterator.
func (s *s7) checkTxnState(a, b s7TxnReader, w int, st s7State, where string) {
	for ns, r := range [2]s7TxnReader{a, b} {
		for k := 0; k < s7Keys; k++ {
			got, err := r.Get(s7DataKey(w, k))
			s.expectValue(got, err, st.data[ns][k], fmt.Sprintf("%s: ns %d key %d", where, ns, k))
		}
		prefix := fmt.Sprintf("d/w%02d/", w)
		it, err := r.NewIterator(&IterOptions{LowerBound: []byte(prefix), UpperBound: []byte(prefix + "~")})
		if err != nil {
			s.failed("%s: NewIterator: %v", where, err)
			return
		}
		var want, have strings.Builder
		for k := 0; k < s7Keys; k++ {
			if v := st.data[ns][k]; v != nil {
				fmt.Fprintf(&want, "%s%d=%s ", prefix+"k", k, s7Short(v))
			}
		}
		for ok := it.First(); ok; ok = it.Next() {
			fmt.Fprintf(&have, "%s=%s ", it.Key(), s7Short(it.Value()))
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			s.failed("%s: iterator: %v", where, err)
		}
		if want.String() != have.String() {
			s.violation("read-your-writes", "%s: ns %d iterator shows %s, want %s", where, ns, have.String(), want.String())
		}
	}
	got, err := a.Get(s7MirrorKey(w))
	s.expectValue(got, err, st.mirror, fmt.Sprintf("%s: mirror", where))
}

// expectValue checks a Get's result against want (nil: ErrNotFound).
func (s *s7) expectValue(got []byte, err error, want []byte, where string) {
	s.values.Add(1)
	switch {
	case want == nil && errors.Is(err, ErrNotFound):
	case want == nil:
		s.violation("read-your-writes", "%s: got %s, %v; want not found", where, s7Short(got), err)
	case err != nil || !bytes.Equal(got, want):
		s.violation("read-your-writes", "%s: got %s, %v; want %s", where, s7Short(got), err, s7Short(want))
	}
}

// s7Short is a value without its padding, for messages.
func s7Short(v []byte) string {
	if i := bytes.LastIndexByte(v, '.'); i >= 0 {
		return string(v[:i])
	}
	return string(v)
}

// checkFinal checks the store holds the last commit of every writer: data,
// mirror and offset.
func (s *s7) checkFinal(where string) {
	offs, err := s7Offsets(s.d)
	if err != nil {
		s.t.Fatal(err)
	}
	for w := 0; w < s7Writers; w++ {
		last := s.committed[w].Load()
		s.checkTxnState(s.d, s.nsB, w, s.committedState(w, last), fmt.Sprintf("%s w%02d", where, w))
		if o, ok := offs[s7OffsetName(w)]; o != last || ok != (last > 0) {
			s.t.Errorf("%s: offset of w%02d is %d (%v), want %d", where, w, o, ok, last)
		}
	}
	if s.violations.Load() > 0 {
		s.t.FailNow()
	}
}

// s7Offsets returns the committed offsets: the one place to adapt when
// CommittedOffsets changes.
func s7Offsets(d *DB) (map[string]int64, error) { return d.CommittedOffsets() }

// s7Offset returns one committed offset: the one place to adapt when
// CommittedOffset changes.
func s7Offset(d *DB, name string) (int64, bool, error) {
	o, err := d.CommittedOffset(name)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	return o, err == nil, err
}
