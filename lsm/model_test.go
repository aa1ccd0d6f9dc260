package lsm

import (
	"errors"
	"fmt"
	"github.com/stratadb/strata/internal/testseed"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

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
}

func (r *modelRun) key() string { return fmt.Sprintf("key%04d", r.rng.IntN(r.keys)) }

func (r *modelRun) value() string {
	n := r.rng.IntN(40)
	if r.rng.IntN(50) == 0 {
		n = 40000 + r.rng.IntN(40000) // crosses WAL blocks
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.rng.IntN(26))
	}
	return string(b)
}

// TestRandomizedAgainstModel runs seeded random operations on the lsm API
// under several option sets and checks every read against a map model.
func TestRandomizedAgainstModel(t *testing.T) {
	seed := testSeed(t)
	configs := []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"small-memtable", Options{MemTableSize: 64 << 10}},
		{"nosync-small", Options{NoSync: true, MemTableSize: 100 << 10}},
		{"in-memory", Options{InMemory: true, MemTableSize: 64 << 10}},
	}
	steps := 3000
	if testing.Short() {
		steps = 800
	}
	for i, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			if !opts.InMemory {
				opts.FS = vfs.NewMem()
			}
			r := &modelRun{t: t, rng: rand.New(rand.NewPCG(seed, uint64(i))), dir: "db", opts: &opts, keys: 300}
			r.m = model{committed: map[string]string{}, offsets: map[string]int64{}}
			r.db = openTest(t, r.dir, r.opts)
			for step := 0; step < steps; step++ {
				r.step(step)
			}
			r.checkAll("end")
		})
	}
}

func (r *modelRun) step(step int) {
	t, rng, m := r.t, r.rng, &r.m
	var mt *modelTxn
	if len(m.open) > 0 {
		mt = m.open[rng.IntN(len(m.open))]
	}
	switch op := rng.IntN(100); {
	case op < 5 && len(m.open) < 3:
		m.open = append(m.open, &modelTxn{t: r.db.Begin(nil), writes: map[string]*string{}, stamps: map[string]uint64{}, offsets: map[string]int64{}})
	case op < 40 && mt != nil:
		k := r.key()
		m.stamp++
		mt.stamps[k] = m.stamp
		if rng.IntN(4) == 0 {
			mt.writes[k] = nil
			must(t, mt.t.Delete([]byte(k)))
		} else {
			v := r.value()
			mt.writes[k] = &v
			must(t, mt.t.Set([]byte(k), []byte(v)))
		}
	case op < 45 && mt != nil:
		name := fmt.Sprint("p", rng.IntN(4))
		off := rng.Int64N(1 << 40)
		mt.offsets[name] = off
		must(t, mt.t.SetOffset(name, off))
	case op < 55 && mt != nil:
		k := r.key()
		r.checkGet(fmt.Sprintf("step %d txn get", step), mt.t, k, r.m.view(mt))
	case op < 60 && mt != nil:
		r.checkIter(fmt.Sprintf("step %d txn iter", step), mt.t, r.m.view(mt), mt)
	case op < 66 && mt != nil:
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
	case op < 68 && mt != nil:
		must(t, mt.t.Rollback())
		r.closeTxn(mt)
	case op < 75:
		k := r.key()
		if rng.IntN(3) == 0 {
			must(t, r.db.Delete([]byte(k)))
			delete(m.committed, k)
		} else {
			v := r.value()
			must(t, r.db.Set([]byte(k), []byte(v)))
			m.committed[k] = v
		}
	case op < 82:
		r.checkGet(fmt.Sprintf("step %d db get", step), r.db, r.key(), m.committed)
	case op < 86:
		r.checkIter(fmt.Sprintf("step %d db iter", step), r.db, m.view(nil), nil)
	case op < 89:
		r.checkGet(fmt.Sprintf("step %d uncommitted get", step), r.db.Reader(ReadUncommitted), r.key(), m.uncommittedView())
	case op < 91:
		r.checkIter(fmt.Sprintf("step %d uncommitted iter", step), r.db.Reader(ReadUncommitted), m.uncommittedView(), nil)
	case op < 93:
		if got := r.db.CommittedOffsets(); fmt.Sprint(got) != fmt.Sprint(m.offsets) {
			t.Fatalf("step %d: offsets %v, want %v", step, got, m.offsets)
		}
	case op < 95 && !r.opts.InMemory:
		r.reopen(step)
	case op < 97 && len(r.snaps) < 2:
		s, err := r.db.NewSnapshot()
		must(t, err)
		r.snaps = append(r.snaps, modelSnap{s, m.view(nil)})
	case op < 99 && len(r.snaps) > 0:
		ms := r.snaps[rng.IntN(len(r.snaps))]
		r.checkGet(fmt.Sprintf("step %d snapshot get", step), ms.s, r.key(), ms.data)
		r.checkIter(fmt.Sprintf("step %d snapshot iter", step), ms.s, ms.data, nil)
	case len(r.snaps) > 0:
		must(t, r.snaps[0].s.Close())
		r.snaps = r.snaps[1:]
	}
}

func (r *modelRun) closeTxn(mt *modelTxn) {
	r.m.open = slices.DeleteFunc(r.m.open, func(x *modelTxn) bool { return x == mt })
}

func (r *modelRun) reopen(step int) {
	for _, mt := range r.m.open {
		mt.t.Rollback()
	}
	r.m.open = nil
	for _, ms := range r.snaps {
		ms.s.Close()
	}
	r.snaps = nil
	must(r.t, r.db.Close())
	r.db = openTest(r.t, r.dir, r.opts)
	r.checkAll(fmt.Sprintf("step %d reopen", step))
}

func (r *modelRun) checkAll(what string) {
	r.t.Helper()
	got := map[string]string{}
	it, err := r.db.NewIterator(nil)
	must(r.t, err)
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	must(r.t, it.Close())
	if fmt.Sprint(got) != fmt.Sprint(r.m.committed) {
		r.t.Fatalf("%s: store holds %d keys, model %d", what, len(got), len(r.m.committed))
	}
	if o := r.db.CommittedOffsets(); fmt.Sprint(o) != fmt.Sprint(r.m.offsets) {
		r.t.Fatalf("%s: offsets %v, want %v", what, o, r.m.offsets)
	}
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
	var o *IterOptions
	keys := make([]string, 0, len(view))
	lo, hi := "", "\xff"
	if r.rng.IntN(2) == 0 {
		lo, hi = r.key(), r.key()
		if lo > hi {
			lo, hi = hi, lo
		}
		o = &IterOptions{LowerBound: []byte(lo), UpperBound: []byte(hi)}
	}
	for k := range view {
		if k >= lo && k < hi {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
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
	pos := -1 // index into keys; -1 or len(keys) = invalid
	for i := 0; i < 30; i++ {
		var ok bool
		switch r.rng.IntN(6) {
		case 0:
			ok, pos = it.First(), 0
		case 1:
			ok, pos = it.Last(), len(keys)-1
		case 2:
			k := r.key()
			ok, pos = it.SeekGE([]byte(k)), sort.SearchStrings(keys, k)
		case 3:
			k := r.key()
			ok, pos = it.SeekLT([]byte(k)), sort.SearchStrings(keys, k)-1
		case 4:
			if pos < 0 || pos >= len(keys) {
				continue
			}
			ok, pos = it.Next(), pos+1
		case 5:
			if pos < 0 || pos >= len(keys) {
				continue
			}
			ok, pos = it.Prev(), pos-1
		}
		wantOK := pos >= 0 && pos < len(keys)
		if ok != wantOK {
			r.t.Fatalf("%s: move %d: valid=%v want %v (pos %d of %d)", what, i, ok, wantOK, pos, len(keys))
		}
		if ok && (string(it.Key()) != keys[pos] || string(it.Value()) != view[keys[pos]]) {
			r.t.Fatalf("%s: move %d: at %q, want %q", what, i, it.Key(), keys[pos])
		}
		if !ok {
			pos = -1
		}
	}
	must(r.t, it.Error())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
