package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The readers and the checker of TestIsolationS7 (isolation_s7_test.go).

// --- readers ---

// s7Reader is the checker of one reader goroutine.
type s7Reader struct {
	s     *s7
	rng   *rand.Rand
	floor [s7Writers]int64 // newest version of each writer this reader saw committed
}

// s7View is what one point-in-time read showed of one writer's keys.
type s7View struct {
	has       [2]bool // namespaces read
	hasMirror bool
	data      [2][s7Keys][]byte
	mirror    []byte
}

type s7Views [s7Writers]s7View

func (r *s7Reader) check(kind int) {
	r.s.checks[kind].Add(1)
	switch kind {
	case s7IterRC, s7IterNS:
		r.checkIter(kind - s7IterRC)
	case s7Snapshot:
		r.checkSnapshot()
	case s7GetRC:
		r.checkGets()
	case s7IterRU:
		r.checkIterRU()
	case s7GetRU:
		r.checkGetsRU()
	}
}

// loads returns the writers' counters (committed or ended) as of now.
func s7Load(c *[s7Writers]atomic.Int64) (v [s7Writers]int64) {
	for w := range c {
		v[w] = c[w].Load()
	}
	return v
}

// pause lets the writers, flushes and compactions move on, sometimes.
func (r *s7Reader) pause() {
	switch r.rng.IntN(4) {
	case 0:
		time.Sleep(time.Duration(r.rng.IntN(2000)) * time.Microsecond)
	case 1:
		runtime.Gosched()
	}
}

// parseKey decodes a key of the default namespace or of s7NS.
func s7ParseKey(key []byte) (w, k int, mirror, ok bool) {
	var err1, err2 error
	switch {
	case len(key) == 8 && string(key[:3]) == "d/w" && string(key[5:7]) == "/k":
		w, err1 = strconv.Atoi(string(key[3:5]))
		k, err2 = strconv.Atoi(string(key[7:]))
	case len(key) == 5 && string(key[:3]) == "o/w":
		w, err1 = strconv.Atoi(string(key[3:5]))
		mirror = true
	default:
		return 0, 0, false, false
	}
	ok = err1 == nil && err2 == nil && w >= 0 && w < s7Writers && k >= 0 && k < s7Keys
	return w, k, mirror, ok
}

// scan reads a whole namespace (ns 0: the default one) through it into v,
// pausing halfway now and then, and closes it.
func (r *s7Reader) scan(it *Iterator, ns int, v *s7Views, where string) bool {
	s := r.s
	var prev []byte
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			s.violation("iterator order", "%s: key %q after %q", where, key, prev)
		}
		prev = append(prev[:0], key...)
		w, k, mirror, good := s7ParseKey(key)
		if !good || mirror && ns != 0 {
			s.violation("unexpected key", "%s: namespace %d holds %q", where, ns, key)
			continue
		}
		if mirror {
			v[w].mirror = bytes.Clone(it.Value())
		} else {
			v[w].data[ns][k] = bytes.Clone(it.Value())
		}
		if n++; n == s7Writers*s7Keys/2 {
			r.pause()
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		s.failed("%s: iterator: %v", where, err)
		return false
	}
	for w := range v {
		v[w].has[ns] = true
		v[w].hasMirror = v[w].hasMirror || ns == 0
	}
	return true
}

// decodeAs decodes b, read as writer w's key (tag, k), and checks it is a
// value the writer wrote there.
func (r *s7Reader) decodeAs(b []byte, w int, tag byte, k int, where string) (s7Val, bool) {
	s := r.s
	s.values.Add(1)
	v, ok := s.decode(b)
	switch {
	case !ok:
		s.violation("garbage value", "%s: %q", where, s7Short(b))
	case v.w != w || v.tag != tag || v.k != k:
		s.violation("misplaced value", "%s: key of w%02d %c%d holds %s", where, w, tag, k, v)
	case v.t > s.started[w].Load():
		s.violation("read from the future", "%s: %s was never written", where, v)
	default:
		return v, true
	}
	return v, false
}

// committedValue decodes b, read at ReadCommitted as writer w's key (tag,
// k), and checks it is the final value of a commit.
func (r *s7Reader) committedValue(b []byte, w int, tag byte, k int, where string) (s7Val, bool) {
	s := r.s
	v, ok := r.decodeAs(b, w, tag, k, where)
	switch {
	case !ok:
	case !v.final():
		s.violation("G1b intermediate read", "%s: %s was overwritten before its commit", where, v)
	case s.rollsBack(w, v.t):
		s.violation("G1a aborted read", "%s: %s belongs to a rolled-back transaction", where, v)
	default:
		return v, true
	}
	return v, false
}

// checkView checks that a point-in-time view of writer w's keys shows one
// commit, o, as new as floor (or none, o = 0), and returns o. The mirror
// gives o; without it, key k0 (never deleted) does.
func (r *s7Reader) checkView(w int, v *s7View, floor int64, where string) int64 {
	s := r.s
	floor = max(floor, r.floor[w])
	where = fmt.Sprintf("%s w%02d", where, w)
	var o int64
	src := "the mirror"
	switch {
	case v.hasMirror && v.mirror != nil:
		m, ok := r.committedValue(v.mirror, w, 'o', 0, where+" mirror")
		if !ok {
			return -1
		}
		o = m.t
	case !v.hasMirror:
		ns := 0
		if !v.has[0] {
			ns = 1
		}
		src = fmt.Sprintf("k0 of namespace %d", ns)
		if b := v.data[ns][0]; b != nil {
			m, ok := r.committedValue(b, w, s7Tags[ns], 0, where)
			if !ok {
				return -1
			}
			o = m.t
		}
	}
	if o < floor {
		s.violation("stale read", "%s: %s shows version %d, but %d had committed before the read", where, src, o, floor)
	}
	bad := false
	for ns := 0; ns < 2; ns++ {
		if !v.has[ns] {
			continue
		}
		for k := 0; k < s7Keys; k++ {
			b := v.data[ns][k]
			if b == nil {
				if o > 0 && !s.deletes(w, o, ns, k) {
					bad = true
				}
				continue
			}
			if val, ok := r.committedValue(b, w, s7Tags[ns], k, where); ok && val.t != o {
				bad = true
			}
		}
	}
	if bad {
		s.violation("fractured read", "%s: %s shows version %d, the view holds %s", where, src, o, v)
	}
	r.floor[w] = max(r.floor[w], o)
	return o
}

func (v *s7View) String() string {
	var b strings.Builder
	if v.hasMirror {
		fmt.Fprintf(&b, "mirror=%s ", s7OrAbsent(v.mirror))
	}
	for ns := 0; ns < 2; ns++ {
		if v.has[ns] {
			for k := 0; k < s7Keys; k++ {
				fmt.Fprintf(&b, "%c%d=%s ", s7Tags[ns], k, s7OrAbsent(v.data[ns][k]))
			}
		}
	}
	return b.String()
}

func s7OrAbsent(b []byte) string {
	if b == nil {
		return "-"
	}
	return s7Short(b)
}

// checkIter checks a ReadCommitted iterator over namespace ns (0: the
// default one, with the mirrors; 1: s7NS).
func (r *s7Reader) checkIter(ns int) {
	floor := s7Load(&r.s.committed)
	it, err := [2]Reader{r.s.d.Reader(ReadCommitted), r.s.nsB}[ns].NewIterator(nil)
	if err != nil {
		r.s.failed("NewIterator: %v", err)
		return
	}
	var v s7Views
	where := fmt.Sprintf("iterator of namespace %d", ns)
	if r.scan(it, ns, &v, where) {
		for w := range v {
			r.checkView(w, &v[w], floor[w], where)
		}
	}
}

// checkSnapshot checks a snapshot: its iterators over both namespaces show
// one commit per writer, its Gets agree with them after a pause, and the
// committed offsets read between it and a second snapshot lie between the
// two snapshots' mirrors.
func (r *s7Reader) checkSnapshot() {
	s := r.s
	floor := s7Load(&s.committed)
	s1, err1 := s.d.NewSnapshot()
	offs, err2 := s7Offsets(s.d)
	s2, err3 := s.d.NewSnapshot()
	defer s1.Close()
	defer s2.Close()
	if err := errors.Join(err1, err2, err3); err != nil {
		s.failed("snapshot: %v", err)
		return
	}
	var v s7Views
	var o [s7Writers]int64
	for ns, rd := range [2]Reader{s1, s1.In(s.nsB)} {
		it, err := rd.NewIterator(nil)
		if err != nil {
			s.failed("snapshot NewIterator: %v", err)
			return
		}
		if !r.scan(it, ns, &v, "snapshot") {
			return
		}
	}
	for w := range v {
		if o[w] = r.checkView(w, &v[w], floor[w], "snapshot"); o[w] < 0 {
			return
		}
	}
	r.pause()
	w := r.rng.IntN(s7Writers)
	r.checkSnapshotGets(s1, w, &v[w])
	for w := range v {
		r.checkOffset(w, o[w], s1.Seq() == s2.Seq(), s2, offs)
	}
}

// checkSnapshotGets checks that Gets on snapshot sn of writer w's keys
// return what its iterators showed (v), however long ago.
func (r *s7Reader) checkSnapshotGets(sn *Snapshot, w int, v *s7View) {
	s := r.s
	for ns, rd := range [2]Reader{sn, sn.In(s.nsB)} {
		for k := 0; k < s7Keys; k++ {
			got, err := rd.Get(s7DataKey(w, k))
			r.sameAsView(got, err, v.data[ns][k], fmt.Sprintf("w%02d %c%d", w, s7Tags[ns], k))
		}
	}
	got, err := sn.Get(s7MirrorKey(w))
	r.sameAsView(got, err, v.mirror, fmt.Sprintf("w%02d mirror", w))
}

func (r *s7Reader) sameAsView(got []byte, err error, want []byte, where string) {
	r.s.values.Add(1)
	switch {
	case err != nil && !errors.Is(err, ErrNotFound):
		r.s.failed("snapshot Get %s: %v", where, err)
	case err != nil && want == nil:
	case err != nil || !bytes.Equal(got, want):
		r.s.violation("snapshot not repeatable", "%s: Get returns %s, its iterator showed %s",
			where, s7OrAbsent(got), s7OrAbsent(want))
	}
}

// checkOffset checks writer w's committed offset, read between snapshot
// s1 (where the writer's mirror showed version o1) and s2: it lies between
// the mirrors, and equals o1 if no commit came between the snapshots.
func (r *s7Reader) checkOffset(w int, o1 int64, sameSeq bool, s2 *Snapshot, offs map[string]int64) {
	s := r.s
	s.values.Add(1)
	var o2 int64
	b, err := s2.Get(s7MirrorKey(w))
	switch {
	case err == nil:
		m, ok := r.committedValue(b, w, 'o', 0, fmt.Sprintf("second snapshot w%02d mirror", w))
		if !ok {
			return
		}
		o2 = m.t
	case !errors.Is(err, ErrNotFound):
		s.failed("snapshot Get: %v", err)
		return
	}
	off, ok := offs[s7OffsetName(w)]
	switch {
	case ok && (off < 1 || s.rollsBack(w, off)):
		s.violation("G1a/G1b offset", "w%02d: committed offset %d was never committed", w, off)
	case !ok && o1 > 0 || ok && (off < o1 || off > o2) || sameSeq && off != o1:
		s.violation("fractured read", "w%02d: committed offset %d (present %v) read between snapshots whose mirrors show %d and %d (same seq %v)",
			w, off, ok, o1, o2, sameSeq)
	}
	r.floor[w] = max(r.floor[w], o2)
}

// checkGets checks plain ReadCommitted Gets of one writer's keys, mirror
// and offset, in random order: commits may land between them, but versions
// never go back, and a key is missing only if a commit since deleted it.
func (r *s7Reader) checkGets() {
	s := r.s
	w := r.rng.IntN(s7Writers)
	floor := max(s.committed[w].Load(), r.floor[w])
	n := 2*s7Keys + 2
	for _, i := range r.rng.Perm(n) {
		ns, k := i/s7Keys, i%s7Keys
		where := fmt.Sprintf("Get w%02d %d", w, i)
		var b []byte
		var err error
		switch {
		case i == n-1:
			off, ok, err := s7Offset(s.d, s7OffsetName(w))
			if err != nil {
				s.failed("%s: CommittedOffset: %v", where, err)
				return
			}
			floor = r.checkGetOffset(w, off, ok, floor)
			continue
		case i == n-2:
			ns, k = 2, 0
			b, err = s.d.Get(s7MirrorKey(w))
		case ns == 0:
			b, err = s.d.Get(s7DataKey(w, k))
		default:
			b, err = s.nsB.Get(s7DataKey(w, k))
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.failed("%s: %v", where, err)
			return
		}
		s.values.Add(1)
		if err != nil {
			if (ns == 2 || k == 0 || !r.deletedSince(w, ns, k, floor)) && floor > 0 {
				s.violation("stale read", "%s: missing, but version %d (which sets it) had committed before", where, floor)
			}
			continue
		}
		if v, ok := r.committedValue(b, w, s7Tags[ns], k, where); ok {
			if v.t < floor {
				s.violation("non-monotonic read", "%s: version %d after version %d was seen", where, v.t, floor)
			}
			floor = max(floor, v.t)
		}
	}
	r.floor[w] = floor
}

// checkGetOffset checks writer w's committed offset read by Get against
// the floor and returns the new floor.
func (r *s7Reader) checkGetOffset(w int, off int64, ok bool, floor int64) int64 {
	s := r.s
	s.values.Add(1)
	switch {
	case !ok && floor > 0:
		s.violation("stale read", "w%02d: no committed offset, but version %d had committed", w, floor)
	case !ok:
	case off < 1 || s.rollsBack(w, off) || off > s.started[w].Load():
		s.violation("G1a/G1b offset", "w%02d: committed offset %d was never committed", w, off)
	case off < floor:
		s.violation("non-monotonic read", "w%02d: committed offset %d after version %d was seen", w, off, floor)
	default:
		floor = off
	}
	return floor
}

// deletedSince reports whether a commit of writer w at or after version
// from (and begun by now) deletes key k of namespace ns.
func (r *s7Reader) deletedSince(w, ns, k int, from int64) bool {
	for t := max(from, 1); t <= r.s.started[w].Load(); t++ {
		if !r.s.rollsBack(w, t) && r.s.deletes(w, t, ns, k) {
			return true
		}
	}
	return false
}

// uncommittedValue checks a value read at ReadUncommitted as writer w's key
// (tag, k): an open transaction's write, or a commit at least as new as
// committed; a transaction that had ended (ended) before the read shows
// only its final values, and only if it committed.
func (r *s7Reader) uncommittedValue(b []byte, w int, tag byte, k int, committed, ended int64, where string) {
	s := r.s
	v, ok := r.decodeAs(b, w, tag, k, where)
	switch {
	case !ok:
	case v.t <= ended && !v.final():
		s.violation("G1b intermediate read", "%s: %s read after its transaction ended (%d)", where, v, ended)
	case v.t <= ended && s.rollsBack(w, v.t):
		s.violation("G1a aborted read", "%s: %s read after its transaction rolled back", where, v)
	case v.t < committed:
		s.violation("stale read", "%s: %s read after version %d committed", where, v, committed)
	}
}

// checkIterRU checks a ReadUncommitted iterator over the default namespace.
func (r *s7Reader) checkIterRU() {
	s := r.s
	committed, ended := s7Load(&s.committed), s7Load(&s.ended)
	it, err := s.d.Reader(ReadUncommitted).NewIterator(nil)
	if err != nil {
		s.failed("NewIterator: %v", err)
		return
	}
	var v s7Views
	if !r.scan(it, 0, &v, "uncommitted iterator") {
		return
	}
	for w := range v {
		where := fmt.Sprintf("uncommitted iterator w%02d", w)
		for k, b := range v[w].data[0] {
			if b != nil {
				r.uncommittedValue(b, w, 'a', k, committed[w], ended[w], where)
			}
		}
		if b := v[w].mirror; b != nil {
			r.uncommittedValue(b, w, 'o', 0, committed[w], ended[w], where)
		}
	}
}

// checkGetsRU checks ReadUncommitted Gets of one writer's keys.
func (r *s7Reader) checkGetsRU() {
	s := r.s
	w := r.rng.IntN(s7Writers)
	committed, ended := s.committed[w].Load(), s.ended[w].Load()
	ru := s.d.Reader(ReadUncommitted)
	for _, k := range r.rng.Perm(s7Keys + 1) {
		key, tag := s7DataKey(w, k), byte('a')
		if k == s7Keys {
			key, tag, k = s7MirrorKey(w), 'o', 0
		}
		b, err := ru.Get(key)
		switch {
		case err == nil:
			r.uncommittedValue(b, w, tag, k, committed, ended, "uncommitted Get "+string(key))
		case !errors.Is(err, ErrNotFound):
			s.failed("uncommitted Get: %v", err)
			return
		}
	}
}

// TestIsolationS7Checker feeds the checker views with each anomaly (and
// without) and checks it names exactly the anomaly.
func TestIsolationS7Checker(t *testing.T) {
	const w = 3
	var got []string
	s := &s7{t: t, seed: 7, record: func(kind string) { got = append(got, kind) }}
	s.started[w].Store(100)
	var o, prev, rb int64 // two commits in a row, and a rollback
	for v := int64(2); v < 100 && (o == 0 || rb == 0); v++ {
		switch {
		case s.rollsBack(w, v):
			rb = v
		case !s.rollsBack(w, v-1) && o == 0:
			o, prev = v, v-1
		}
	}
	kept := 0 // a key version o keeps
	for k := 1; k < s7Keys; k++ {
		if !s.deletes(w, o, 0, k) {
			kept = k
		}
	}
	view := func(t int64, edit func(v *s7View)) *s7View {
		st := s.committedState(w, t)
		v := &s7View{has: [2]bool{true, true}, hasMirror: true, data: st.data, mirror: st.mirror}
		if edit != nil {
			edit(v)
		}
		return v
	}
	cases := []struct {
		name string
		want string
		run  func(r *s7Reader)
	}{
		{"consistent", "", func(r *s7Reader) { r.checkView(w, view(o, nil), o, "") }},
		{"none committed", "", func(r *s7Reader) { r.checkView(w, &s7View{has: [2]bool{true, true}, hasMirror: true}, 0, "") }},
		{"other namespace behind", "fractured read", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.data[1][0] = s.value(w, prev, 'b', 0, "F") }), 0, "")
		}},
		{"key missing", "fractured read", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.data[0][kept] = nil }), 0, "")
		}},
		{"one namespace, k0 missing", "fractured read", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.has[0], v.hasMirror, v.data[1][0] = false, false, nil }), 0, "")
		}},
		{"intermediate", "G1b intermediate read", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.mirror = s.value(w, o, 'o', 0, "I2") }), 0, "")
		}},
		{"aborted", "G1a aborted read", func(r *s7Reader) { r.checkView(w, view(rb, nil), 0, "") }},
		{"stale", "stale read", func(r *s7Reader) { r.checkView(w, view(prev, nil), o, "") }},
		{"reader went back", "stale read", func(r *s7Reader) {
			r.checkView(w, view(o, nil), 0, "")
			r.checkView(w, view(prev, nil), 0, "")
		}},
		{"misplaced", "misplaced value", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.data[0][0] = s.value(w, o, 'b', 0, "F") }), 0, "")
		}},
		{"garbage", "garbage value", func(r *s7Reader) {
			r.checkView(w, view(o, func(v *s7View) { v.mirror = append(v.mirror, 'x') }), 0, "")
		}},
		{"future", "read from the future", func(r *s7Reader) { r.checkView(w, view(200, nil), 0, "") }},
		{"open transaction", "", func(r *s7Reader) { r.uncommittedValue(s.value(w, o, 'a', 1, "I0"), w, 'a', 1, prev, prev, "") }},
		{"ended, intermediate", "G1b intermediate read", func(r *s7Reader) {
			r.uncommittedValue(s.value(w, prev, 'a', 1, "I0"), w, 'a', 1, prev, prev, "")
		}},
		{"rolled back", "G1a aborted read", func(r *s7Reader) { r.uncommittedValue(s.value(w, rb, 'o', 0, "F"), w, 'o', 0, 0, rb, "") }},
		{"offset of a rollback", "G1a/G1b offset", func(r *s7Reader) { r.checkGetOffset(w, rb, true, 0) }},
		{"offset intermediate", "G1a/G1b offset", func(r *s7Reader) { r.checkGetOffset(w, -o, true, 0) }},
		{"offset back", "non-monotonic read", func(r *s7Reader) { r.checkGetOffset(w, prev, true, o) }},
		{"offset lost", "stale read", func(r *s7Reader) { r.checkGetOffset(w, 0, false, o) }},
	}
	for _, c := range cases {
		got = nil
		c.run(&s7Reader{s: s})
		want := []string{c.want}
		if c.want == "" {
			want = nil
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s (o=%d prev=%d rollback=%d): checker reported %q, want %q", c.name, o, prev, rb, got, want)
		}
	}
}
