package lsm

import (
	"errors"
	"fmt"
	"sort"
)

// The operations of the model test that exercise tables: flushes, full
// compactions, snapshots and iterators kept open across both, and the
// checks they share (random walks and full scans of an iterator against a
// sorted model view).

// heldIter is an iterator kept open across steps, with the view it must
// keep showing however the store changes under it.
type heldIter struct {
	it   *Iterator
	what string // the reader and the step it was made at
	view map[string]string
	keys []string // the view's keys within the iterator's bounds, sorted
}

// modelTotals adds up, across reopens, the work the engine reports, and
// counts the operations that coverage checks ask for.
type modelTotals struct {
	flushes, compactions, rolls int64
	// spanning counts commits of several namespaces (the default one
	// included) and offsets.
	spanning int64
	// created and dropped count namespaces; crashes power cuts and lost
	// the commits they lost.
	created, dropped, crashes, lost int64
}

// collect adds the open DB's counters to r.totals; the caller closes the
// DB next.
func (r *modelRun) collect() {
	m := r.db.Metrics()
	r.totals.flushes += m.Flushes
	r.totals.compactions += m.Compactions
	r.totals.rolls += m.ManifestRolls
}

// modelKeysIn returns the keys of view in [lo, hi), sorted.
func modelKeysIn(view map[string]string, lo, hi string) []string {
	keys := make([]string, 0, len(view))
	for k := range view {
		if k >= lo && k < hi {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// iterBounds picks random bounds, or none, and returns them with the keys
// of view within them, sorted.
func (r *modelRun) iterBounds(view map[string]string) (*IterOptions, []string) {
	if r.rng.IntN(2) == 0 {
		return nil, modelKeysIn(view, "", "\xff")
	}
	lo, hi := r.key(), r.key()
	if lo > hi {
		lo, hi = hi, lo
	}
	return &IterOptions{LowerBound: []byte(lo), UpperBound: []byte(hi)}, modelKeysIn(view, lo, hi)
}

// walkIter makes n random moves with it and checks each position against
// keys, the sorted keys of view the iterator must show.
func (r *modelRun) walkIter(what string, it *Iterator, keys []string, view map[string]string, n int) {
	r.t.Helper()
	pos := -1 // index into keys; -1 or len(keys) = invalid
	for i := 0; i < n; i++ {
		var ok bool
		var move string
		switch r.rng.IntN(6) {
		case 0:
			ok, pos, move = it.First(), 0, "First"
		case 1:
			ok, pos, move = it.Last(), len(keys)-1, "Last"
		case 2:
			k := r.key()
			ok, pos, move = it.SeekGE([]byte(k)), sort.SearchStrings(keys, k), "SeekGE "+k
		case 3:
			k := r.key()
			ok, pos, move = it.SeekLT([]byte(k)), sort.SearchStrings(keys, k)-1, "SeekLT "+k
		case 4:
			if pos < 0 || pos >= len(keys) {
				continue
			}
			ok, pos, move = it.Next(), pos+1, "Next"
		case 5:
			if pos < 0 || pos >= len(keys) {
				continue
			}
			ok, pos, move = it.Prev(), pos-1, "Prev"
		}
		r.checkPosition(fmt.Sprintf("%s: move %d (%s)", what, i, move), it, ok, keys, view, pos)
		if !ok {
			pos = -1
		}
	}
	must(r.t, it.Error())
}

// checkPosition checks that it, whose last move returned ok, is at
// keys[pos] with its value in view, or invalid when pos is out of range.
func (r *modelRun) checkPosition(what string, it *Iterator, ok bool, keys []string, view map[string]string, pos int) {
	r.t.Helper()
	wantOK := pos >= 0 && pos < len(keys)
	switch {
	case ok != wantOK && wantOK:
		r.t.Fatalf("%s: invalid (error %v), want %q (index %d of %d)", what, it.Error(), keys[pos], pos, len(keys))
	case ok != wantOK:
		r.t.Fatalf("%s: at %q, want the end (index %d of %d)", what, it.Key(), pos, len(keys))
	case ok && string(it.Key()) != keys[pos]:
		r.t.Fatalf("%s: at %q, want %q (index %d of %d)", what, it.Key(), keys[pos], pos, len(keys))
	case ok && string(it.Value()) != view[keys[pos]]:
		r.t.Fatalf("%s: at %q, value %.20q (%d bytes), want %.20q (%d bytes)", what, it.Key(),
			it.Value(), len(it.Value()), view[keys[pos]], len(view[keys[pos]]))
	}
}

// checkScan walks it over every key of keys forward, then backward, and
// checks each entry against view.
func (r *modelRun) checkScan(what string, it *Iterator, keys []string, view map[string]string) {
	r.t.Helper()
	ok, pos := it.First(), 0
	for ; pos < len(keys); pos++ {
		r.checkPosition(fmt.Sprintf("%s: forward scan", what), it, ok, keys, view, pos)
		ok = it.Next()
	}
	r.checkPosition(fmt.Sprintf("%s: forward scan", what), it, ok, keys, view, pos)
	ok, pos = it.Last(), len(keys)-1
	for ; pos >= 0; pos-- {
		r.checkPosition(fmt.Sprintf("%s: backward scan", what), it, ok, keys, view, pos)
		ok = it.Prev()
	}
	r.checkPosition(fmt.Sprintf("%s: backward scan", what), it, ok, keys, view, pos)
	must(r.t, it.Error())
}

// checkOffsets compares the committed offsets with the model.
func (r *modelRun) checkOffsets(what string) {
	r.t.Helper()
	if got, err := r.db.CommittedOffsets(); err != nil || fmt.Sprint(got) != fmt.Sprint(r.m.offsets) {
		r.t.Fatalf("%s: offsets %v (%v), want %v", what, got, err, r.m.offsets)
	}
	name := fmt.Sprint("p", r.rng.IntN(4))
	got, err := r.db.CommittedOffset(name)
	ok := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		r.t.Fatalf("%s: offset %s: %v", what, name, err)
	}
	if want, wantOK := r.m.offsets[name]; ok != wantOK || got != want {
		r.t.Fatalf("%s: offset %s = %d, %v; want %d, %v", what, name, got, ok, want, wantOK)
	}
}

// checkSnapshot checks a few Gets, random moves of an iterator and a full
// scan of another against the data the snapshot was taken with, in the
// default namespace or one of the snapshot's (if it was dropped since,
// reads fail with ErrNamespaceDropped).
func (r *modelRun) checkSnapshot(what string, ms modelSnap) {
	r.t.Helper()
	ns, data := r.pickSnapNS(ms)
	what += ns.String()
	rd := snapReader(ms, ns)
	if ns != nil && ns.dropped {
		if _, err := rd.Get([]byte(r.key())); !errors.Is(err, ErrNamespaceDropped) {
			r.t.Fatalf("%s: Get: %v, want ErrNamespaceDropped", what, err)
		}
		if err := iterErr(rd); !errors.Is(err, ErrNamespaceDropped) {
			r.t.Fatalf("%s: NewIterator: %v, want ErrNamespaceDropped", what, err)
		}
		return
	}
	for range 3 {
		r.checkGet(what+" get", rd, r.key(), data)
	}
	r.checkIter(what+" iter", rd, data, nil)
	o, keys := r.iterBounds(data)
	it, err := rd.NewIterator(o)
	must(r.t, err)
	r.checkScan(what, it, keys, data)
	must(r.t, it.Close())
}

// iterStep opens an iterator to keep (at most 2 at a time), checks one
// kept, or closes one.
func (r *modelRun) iterStep(step int) {
	switch n := r.rng.IntN(3); {
	case len(r.iters) == 0 || n == 0 && len(r.iters) < 2:
		r.holdIter(step)
	case n == 1:
		i := r.rng.IntN(len(r.iters))
		must(r.t, r.iters[i].it.Close())
		r.iters = append(r.iters[:i], r.iters[i+1:]...)
	default:
		r.checkHeld(fmt.Sprintf("step %d", step), r.iters[r.rng.IntN(len(r.iters))])
	}
}

// holdIter opens an iterator on the DB, a namespace, a snapshot (of the
// default namespace or another) or the ReadUncommitted reader and keeps
// it, with the view it must show from now on, even once its namespace is
// dropped.
func (r *modelRun) holdIter(step int) {
	var rd Reader
	var h heldIter
	switch n := r.rng.IntN(3); {
	case n == 0 && len(r.snaps) > 0:
		ms := r.snaps[r.rng.IntN(len(r.snaps))]
		ns, data := r.pickSnapNS(ms)
		if ns != nil && ns.dropped {
			return // checkSnapshot covers it
		}
		rd, h.view, h.what = snapReader(ms, ns), data, fmt.Sprintf("snapshot iterator%s of step %d", ns, step)
	case n == 1:
		rd, h.view, h.what = r.db.Reader(ReadUncommitted), r.m.uncommittedView(), fmt.Sprintf("uncommitted iterator of step %d", step)
	default:
		ns := r.pickNS()
		rd, h.view, h.what = r.reader(ns), r.m.viewIn(nil, ns), fmt.Sprintf("db iterator%s of step %d", ns, step)
	}
	var o *IterOptions
	o, h.keys = r.iterBounds(h.view)
	var err error
	h.it, err = rd.NewIterator(o)
	must(r.t, err)
	r.iters = append(r.iters, h)
}

// checkHeld checks a kept iterator: random moves, and a full scan half
// the time.
func (r *modelRun) checkHeld(what string, h heldIter) {
	r.t.Helper()
	what = fmt.Sprintf("%s: %s", what, h.what)
	r.walkIter(what, h.it, h.keys, h.view, 20)
	if r.rng.IntN(2) == 0 {
		r.checkScan(what, h.it, h.keys, h.view)
	}
}

// closeIters closes every kept iterator.
func (r *modelRun) closeIters() {
	for _, h := range r.iters {
		must(r.t, h.it.Close())
	}
	r.iters = nil
}

// flush flushes every memtable and checks that only the active one is
// left.
func (r *modelRun) flush(step int) {
	must(r.t, r.db.Flush())
	r.m.settle() // a Flush makes every commit durable, even with NoSync
	if m := r.db.Metrics(); !r.opts.InMemory && m.MemTables != 1 {
		r.t.Fatalf("step %d: %d memtables after Flush, want 1", step, m.MemTables)
	}
	r.noteLevels()
}

// compact runs a full compaction, half the time with one more iterator
// kept across it, and checks every kept iterator and snapshot, and the
// whole store, right after it.
func (r *modelRun) compact(step int) {
	what := fmt.Sprintf("step %d after Compact", step)
	if len(r.iters) < 3 && r.rng.IntN(2) == 0 {
		r.holdIter(step)
	}
	must(r.t, r.db.Compact())
	r.m.settle() // as does a Compact
	r.checkCompacted(what)
	r.noteLevels()
	for _, h := range r.iters {
		r.checkHeld(what, h)
	}
	for _, ms := range r.snaps {
		r.checkSnapshot(what+" snapshot", ms)
	}
	r.checkAll(what)
}

// checkCompacted checks the shape of the tree right after Compact: level 0
// is empty and, without background compactions to move tables further
// down, at most one level holds tables.
func (r *modelRun) checkCompacted(what string) {
	if r.opts.InMemory {
		return
	}
	m := r.db.Metrics()
	if m.Levels[0].Tables != 0 {
		r.t.Fatalf("%s: level 0 holds %d tables\n%s", what, m.Levels[0].Tables, m)
	}
	if !r.opts.DisableAutomaticCompactions {
		return
	}
	levels := 0
	for _, l := range m.Levels {
		if l.Tables > 0 {
			levels++
		}
	}
	if levels > 1 {
		r.t.Fatalf("%s: %d levels hold tables, want at most 1\n%s", what, levels, m)
	}
}

// noteLevels records the deepest level holding tables.
func (r *modelRun) noteLevels() {
	m := r.db.Metrics()
	for level, l := range m.Levels {
		if l.Tables > 0 {
			r.deepest = max(r.deepest, level)
		}
	}
}
