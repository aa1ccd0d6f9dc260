package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/testseed"
)

// ciEntry is one internal key and its value.
type ciEntry struct {
	key   base.InternalKey
	value []byte
}

// ciSliceIter is an internalIterator over sorted entries. Like sstable.Iter
// it rebuilds each key in a buffer it reuses, so that a caller keeping a key
// past the next move reads garbage. failAt >= 0 makes the move onto entry
// failAt fail with failErr.
type ciSliceIter struct {
	entries []ciEntry
	pos     int
	buf     []byte
	key     base.InternalKey
	failAt  int
	failErr error
	err     error
}

func newCISliceIter(entries []ciEntry) *ciSliceIter {
	return &ciSliceIter{entries: entries, failAt: -1}
}

func (s *ciSliceIter) at(i int) bool {
	s.pos = i
	if i < 0 || i >= len(s.entries) || s.err != nil {
		return false
	}
	if i == s.failAt {
		s.err = s.failErr
		return false
	}
	e := s.entries[i].key
	for j := range s.buf {
		s.buf[j] = 0xee // scribble over the previous key
	}
	s.buf = append(s.buf[:0], e.UserKey...)
	s.key = base.InternalKey{UserKey: s.buf, Trailer: e.Trailer}
	return true
}

func (s *ciSliceIter) First() bool { return s.at(0) }
func (s *ciSliceIter) Last() bool  { return s.at(len(s.entries) - 1) }
func (s *ciSliceIter) Next() bool  { return s.at(s.pos + 1) }
func (s *ciSliceIter) Prev() bool  { return s.at(s.pos - 1) }
func (s *ciSliceIter) SeekGE(key []byte) bool {
	i, _ := slices.BinarySearchFunc(s.entries, key, func(e ciEntry, k []byte) int { return bytes.Compare(e.key.UserKey, k) })
	return s.at(i)
}
func (s *ciSliceIter) SeekLT(key []byte) bool {
	i, _ := slices.BinarySearchFunc(s.entries, key, func(e ciEntry, k []byte) int { return bytes.Compare(e.key.UserKey, k) })
	return s.at(i - 1)
}
func (s *ciSliceIter) Key() base.InternalKey { return s.key }
func (s *ciSliceIter) Value() []byte         { return s.entries[s.pos].value }
func (s *ciSliceIter) Error() error          { return s.err }

// ciParseKey reads "ns/rest" as rest under namespace ns, "!rest" as rest
// behind an invalid prefix byte, and anything else as raw bytes.
func ciParseKey(t testing.TB, s string) []byte {
	if strings.HasPrefix(s, "!") {
		return append([]byte{0xf0}, s[1:]...)
	}
	if ns, rest, ok := strings.Cut(s, "/"); ok {
		id, err := strconv.ParseUint(ns, 10, 32)
		if err != nil {
			t.Fatalf("bad namespace in %q", s)
		}
		return append(base.AppendNamespace(nil, base.NamespaceID(id)), rest...)
	}
	return []byte(s)
}

// ciParse reads entries written "key#seq:value" (a set) or "key#seq,DEL",
// separated by spaces; "key#seq,K5" makes a key of unknown kind 5.
func ciParse(t testing.TB, s string) []ciEntry {
	var out []ciEntry
	for _, f := range strings.Fields(s) {
		f, value, isSet := strings.Cut(f, ":")
		f, kindStr, _ := strings.Cut(f, ",")
		k, seqStr, ok := strings.Cut(f, "#")
		seq, err := strconv.ParseUint(seqStr, 10, 56)
		if !ok || err != nil {
			t.Fatalf("bad entry %q", f)
		}
		kind := base.KindDelete
		switch {
		case isSet:
			kind = base.KindSet
		case strings.HasPrefix(kindStr, "K"):
			n, _ := strconv.Atoi(kindStr[1:])
			kind = base.Kind(n)
		}
		out = append(out, ciEntry{base.InternalKey{UserKey: ciParseKey(t, k), Trailer: base.MakeTrailer(seq, kind)}, []byte(value)})
	}
	return out
}

func ciFormat(entries []ciEntry) string {
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%q#%d,%s", e.key.UserKey, e.key.Seq(), e.key.Kind())
		if e.key.Kind() == base.KindSet {
			fmt.Fprintf(&b, ":%s", e.value)
		}
	}
	return b.String()
}

// ciDrain runs a whole compaction and copies its output.
func ciDrain(c *compactionIter) []ciEntry {
	var out []ciEntry
	for ok := c.First(); ok; ok = c.Next() {
		k := c.Key()
		out = append(out, ciEntry{base.InternalKey{UserKey: slices.Clone(k.UserKey), Trailer: k.Trailer}, c.Value()})
	}
	return out
}

func ciDropSet(ids ...base.NamespaceID) func(base.NamespaceID) bool {
	return func(id base.NamespaceID) bool { return slices.Contains(ids, id) }
}

func TestCompactionIterTable(t *testing.T) {
	cases := []struct {
		name       string
		in         string
		snaps      []base.SeqNum
		bottommost bool
		dropped    func(base.NamespaceID) bool
		want       string
		stats      compactionStats
	}{
		{name: "empty", want: ""},
		{name: "newest version wins", in: "a#5:v5 a#3:v3 a#1,DEL b#4,DEL b#2:x",
			want: "a#5:v5 b#4,DEL", stats: compactionStats{In: 5, Kept: 2, DroppedVersions: 3}},
		{name: "bottommost elides tombstones", in: "a#5:v5 a#3:v3 a#1,DEL b#4,DEL b#2:x c#9,DEL",
			bottommost: true, want: "a#5:v5", stats: compactionStats{In: 6, Kept: 1, DroppedVersions: 3, DroppedTombstones: 2}},
		{name: "one snapshot", in: "a#5:v5 a#3:v3 a#1,DEL b#4,DEL b#2:x",
			snaps: []base.SeqNum{2}, want: "a#5:v5 a#1,DEL b#4,DEL b#2:x"},
		{name: "one snapshot bottommost", in: "a#5:v5 a#3:v3 a#1,DEL b#4,DEL b#2:x",
			snaps: []base.SeqNum{2}, bottommost: true, want: "a#5:v5 b#4,DEL b#2:x",
			stats: compactionStats{In: 5, Kept: 3, DroppedVersions: 1, DroppedTombstones: 1}},
		{name: "snapshot at a version's seq sees it", in: "a#5:v5 a#3:v3 a#1:v1",
			snaps: []base.SeqNum{3}, want: "a#5:v5 a#3:v3"},
		{name: "snapshot above every version", in: "a#5:v5 a#3:v3",
			snaps: []base.SeqNum{9}, want: "a#5:v5"},
		{name: "snapshot below every version", in: "a#5:v5 a#3:v3",
			snaps: []base.SeqNum{1}, want: "a#5:v5"},
		{name: "many stripes", in: "a#8:8 a#7:7 a#6:6 a#5:5 a#4:4 a#3:3 a#2:2 a#1:1",
			snaps: []base.SeqNum{1, 3, 5, 7}, want: "a#8:8 a#7:7 a#5:5 a#3:3 a#1:1"},
		{name: "unsorted duplicate snapshots", in: "a#8:8 a#7:7 a#6:6 a#5:5 a#4:4 a#1:1",
			snaps: []base.SeqNum{5, 1, 5}, want: "a#8:8 a#5:5 a#1:1"},
		{name: "tombstone in lowest stripe under a newer set", in: "a#9:v9 a#4,DEL a#2:v2",
			snaps: []base.SeqNum{5}, bottommost: true, want: "a#9:v9"},
		{name: "tombstone above a snapshot is kept", in: "a#9,DEL a#4:v4",
			snaps: []base.SeqNum{5}, bottommost: true, want: "a#9,DEL a#4:v4"},
		{name: "set and delete share a seq", in: "a#4:v a#4,DEL", want: "a#4:v"},
		{name: "dropped namespaces", in: "#8:empty 1/a#3:x 1/b#2,DEL 2/b#4:y 2/c#2,DEL 3/d#1:z 300/e#5:e 70000/f#6:f !g#7:g",
			dropped: ciDropSet(2, 300, 70000), want: "#8:empty 1/a#3:x 1/b#2,DEL 3/d#1:z !g#7:g",
			stats: compactionStats{In: 9, Kept: 5, DroppedNamespace: 4}},
		{name: "dropped namespace under snapshots", in: "1/a#3:x 1/a#2:w 2/a#5:y 2/a#1:z",
			snaps: []base.SeqNum{2}, bottommost: true, dropped: ciDropSet(2), want: "1/a#3:x 1/a#2:w",
			stats: compactionStats{In: 4, Kept: 2, DroppedNamespace: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCompactionIter(newCISliceIter(ciParse(t, tc.in)), tc.snaps, tc.bottommost, tc.dropped)
			got := ciFormat(ciDrain(c))
			if err := c.Error(); err != nil {
				t.Fatal(err)
			}
			if want := ciFormat(ciParse(t, tc.want)); got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if tc.stats != (compactionStats{}) && c.Stats() != tc.stats {
				t.Fatalf("stats %+v, want %+v", c.Stats(), tc.stats)
			}
			// A second pass gives the same output.
			if again := ciFormat(ciDrain(c)); again != got {
				t.Fatalf("second pass %s, first %s", again, got)
			}
		})
	}
}

func TestCompactionIterNamespaceLookups(t *testing.T) {
	calls := 0
	dropped := func(id base.NamespaceID) bool { calls++; return id == 2 }
	in := ciParse(t, "1/a#1:a 1/b#1:b 2/a#3:a 2/a#2:a 2/b#1:b 2/c#1:c 3/a#1:a 3/b#1:b")
	c := newCompactionIter(newCISliceIter(in), nil, false, dropped)
	if got := len(ciDrain(c)); got != 4 {
		t.Fatalf("kept %d entries, want 4", got)
	}
	if calls != 3 {
		t.Fatalf("dropped called %d times, want once per namespace run (3)", calls)
	}
}

func TestCompactionIterBadInput(t *testing.T) {
	for _, in := range []string{
		"b#1:x a#2:y",         // user keys out of order
		"a#1:x a#2:y",         // versions oldest first
		"a#2:x a#2:y",         // duplicate trailer
		"a#2:x b#3,K5 c#1:z",  // unknown kind
		"a#3:x a#1,DEL a#1:y", // versions out of order by kind
	} {
		c := newCompactionIter(newCISliceIter(ciParse(t, in)), nil, false, nil)
		out := ciDrain(c)
		if err := c.Error(); !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("%s: error %v, want corruption (output %s)", in, err, ciFormat(out))
		}
		if c.Next() || c.First() {
			t.Fatalf("%s: iterator moved after an error", in)
		}
	}
}

func TestCompactionIterSourceError(t *testing.T) {
	src := newCISliceIter(ciParse(t, "a#1:a b#1:b c#1:c d#1:d"))
	boom := errors.New("boom")
	src.failAt, src.failErr = 2, boom
	c := newCompactionIter(src, nil, true, nil)
	if out := ciFormat(ciDrain(c)); out != ciFormat(ciParse(t, "a#1:a b#1:b")) {
		t.Fatalf("output %s", out)
	}
	if !errors.Is(c.Error(), boom) {
		t.Fatalf("error %v, want the source's", c.Error())
	}
}

// ciRead returns what a reader at snapshot snap sees for key in the union
// of the given entry sets: the value of the newest version with seq <= snap,
// or found false.
func ciRead(key []byte, snap base.SeqNum, sets ...[]ciEntry) (value []byte, found bool) {
	var best base.InternalKey
	have := false
	for _, set := range sets {
		for _, e := range set {
			if bytes.Equal(e.key.UserKey, key) && e.key.Seq() <= snap && (!have || e.key.Trailer > best.Trailer) {
				best, value, have = e.key, e.value, true
			}
		}
	}
	if !have || best.Kind() != base.KindSet {
		return nil, false
	}
	return value, true
}

// ciHistory is a random multi-version history: the entries of a
// compaction's input (sorted), the older entries below the output level,
// the user keys, the snapshots and the dropped namespaces.
type ciHistory struct {
	input, below []ciEntry
	keys         [][]byte
	snaps        []base.SeqNum
	dropped      []base.NamespaceID
}

func ciRandomKeys(rng *rand.Rand) [][]byte {
	namespaces := []base.NamespaceID{1, 2, 3, 300, 70000}
	n := 1 + rng.IntN(25)
	var keys [][]byte
	for len(keys) < n {
		var k []byte
		switch r := rng.IntN(20); {
		case r == 0:
			k = []byte{}
		case r == 1:
			k = []byte{0xf0, byte('a' + rng.IntN(3))}
		default:
			k = base.AppendNamespace(nil, namespaces[rng.IntN(len(namespaces))])
			k = append(k, byte('a'+rng.IntN(8)))
		}
		if !slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			keys = append(keys, k)
		}
	}
	return keys
}

func ciRandomWrites(rng *rand.Rand, keys [][]byte, seq *base.SeqNum, n int) []ciEntry {
	var out []ciEntry
	for range n {
		*seq++
		kind := base.KindSet
		if rng.IntN(10) < 3 {
			kind = base.KindDelete
		}
		v := []byte(nil)
		if kind == base.KindSet {
			v = []byte("v" + strconv.FormatUint(*seq, 10))
		}
		out = append(out, ciEntry{base.InternalKey{UserKey: keys[rng.IntN(len(keys))], Trailer: base.MakeTrailer(*seq, kind)}, v})
	}
	slices.SortFunc(out, func(a, b ciEntry) int { return base.CompareInternal(a.key, b.key) })
	return out
}

func ciRandomHistory(rng *rand.Rand) *ciHistory {
	h := &ciHistory{keys: ciRandomKeys(rng)}
	var seq base.SeqNum
	h.below = ciRandomWrites(rng, h.keys, &seq, rng.IntN(40))
	h.input = ciRandomWrites(rng, h.keys, &seq, rng.IntN(120))
	for range rng.IntN(6) {
		h.snaps = append(h.snaps, rng.Uint64N(seq+2))
	}
	slices.Sort(h.snaps)
	for _, id := range []base.NamespaceID{2, 300} {
		if rng.IntN(3) == 0 {
			h.dropped = append(h.dropped, id)
		}
	}
	return h
}

// ciSources deals the input to 1-4 sorted sources merged by a mergingIter.
func ciSources(rng *rand.Rand, input []ciEntry) internalIterator {
	parts := make([][]ciEntry, 1+rng.IntN(4))
	for _, e := range input {
		i := rng.IntN(len(parts))
		parts[i] = append(parts[i], e)
	}
	iters := make([]internalIterator, len(parts))
	for i, p := range parts {
		iters[i] = newCISliceIter(p)
	}
	m := &mergingIter{}
	m.init(iters)
	return m
}

func (h *ciHistory) isDropped(key []byte) bool {
	id, _, ok := base.SplitNamespace(key)
	return ok && slices.Contains(h.dropped, id)
}

func (h *ciHistory) stripe(seq base.SeqNum) int {
	i, _ := slices.BinarySearch(h.snaps, seq)
	return i
}

// check compares reads of the input and of the output at every snapshot and
// at the latest sequence number, and checks that the output is minimal.
func (h *ciHistory) check(t *testing.T, out []ciEntry, below []ciEntry, bottommost bool) {
	t.Helper()
	inputs := map[string][]byte{}
	for _, e := range h.input {
		inputs[fmt.Sprintf("%q#%d", e.key.UserKey, e.key.Trailer)] = e.value
	}
	for i, e := range out {
		v, ok := inputs[fmt.Sprintf("%q#%d", e.key.UserKey, e.key.Trailer)]
		if !ok || !bytes.Equal(v, e.value) {
			t.Fatalf("output entry %s is not an input entry", e.key)
		}
		if h.isDropped(e.key.UserKey) {
			t.Fatalf("output entry %s belongs to a dropped namespace", e.key)
		}
		if bottommost && e.key.Kind() == base.KindDelete && h.stripe(e.key.Seq()) == 0 {
			t.Fatalf("bottommost output keeps tombstone %s in the lowest stripe", e.key)
		}
		if i == 0 {
			continue
		}
		p := out[i-1].key
		if base.CompareInternal(p, e.key) >= 0 {
			t.Fatalf("output out of order: %s then %s", p, e.key)
		}
		if bytes.Equal(p.UserKey, e.key.UserKey) && h.stripe(p.Seq()) == h.stripe(e.key.Seq()) {
			t.Fatalf("output keeps %s and %s in one stripe", p, e.key)
		}
	}
	for _, snap := range append(slices.Clone(h.snaps), base.MaxSeqNum) {
		for _, k := range h.keys {
			if h.isDropped(k) {
				continue
			}
			wv, wok := ciRead(k, snap, h.input, below)
			gv, gok := ciRead(k, snap, out, below)
			if wok != gok || !bytes.Equal(wv, gv) {
				t.Fatalf("key %q at snapshot %d: compacted reads (%q, %v), input reads (%q, %v)\ninput %s\nbelow %s\nout   %s\nsnaps %v dropped %v",
					k, snap, gv, gok, wv, wok, ciFormat(h.input), ciFormat(below), ciFormat(out), h.snaps, h.dropped)
			}
		}
	}
}

func TestCompactionIterModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0xc0))
	for range 1500 {
		h := ciRandomHistory(rng)
		for _, bottommost := range []bool{false, true} {
			below := h.below
			if bottommost {
				below = nil // nothing may lie below a bottommost output
			}
			var dropped func(base.NamespaceID) bool
			if len(h.dropped) > 0 {
				dropped = ciDropSet(h.dropped...)
			}
			c := newCompactionIter(ciSources(rng, h.input), h.snaps, bottommost, dropped)
			out := ciDrain(c)
			if err := c.Error(); err != nil {
				t.Fatal(err)
			}
			h.check(t, out, below, bottommost)
			st := c.Stats()
			if st.In != int64(len(h.input)) || st.Kept != int64(len(out)) ||
				st.In != st.Kept+st.DroppedVersions+st.DroppedTombstones+st.DroppedNamespace {
				t.Fatalf("stats %+v for %d inputs and %d outputs", st, len(h.input), len(out))
			}
		}
	}
}

func TestCompactionSplitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0x5b))
	for range 300 {
		h := ciRandomHistory(rng)
		c := newCompactionIter(ciSources(rng, h.input), h.snaps, false, nil)
		out := ciDrain(c)
		target := int64(rng.IntN(120))
		s := splitter{targetSize: target}
		tables, sizes := [][]ciEntry{nil}, []int64{0}
		for _, e := range out {
			if s.shouldSplitBefore(e.key, sizes[len(sizes)-1]) {
				if sizes[len(sizes)-1] == 0 {
					t.Fatal("split an empty table")
				}
				tables, sizes = append(tables, nil), append(sizes, 0)
			}
			tables[len(tables)-1] = append(tables[len(tables)-1], e)
			sizes[len(sizes)-1] += int64(e.key.EncodedLen() + len(e.value))
		}
		ciCheckSplit(t, tables, sizes, target)
	}
}

// ciCheckSplit checks that no user key spans two tables, that every table
// but the last reached the target, and that none went on past a user-key
// boundary after reaching it.
func ciCheckSplit(t *testing.T, tables [][]ciEntry, sizes []int64, target int64) {
	t.Helper()
	if target <= 0 && len(tables) > 1 {
		t.Fatalf("target %d split into %d tables", target, len(tables))
	}
	for i, tab := range tables {
		if i > 0 && bytes.Equal(tables[i-1][len(tables[i-1])-1].key.UserKey, tab[0].key.UserKey) {
			t.Fatalf("user key %q spans tables %d and %d", tab[0].key.UserKey, i-1, i)
		}
		if i < len(tables)-1 && sizes[i] < target {
			t.Fatalf("table %d of %d bytes split before the target %d", i, sizes[i], target)
		}
		var w int64
		for j, e := range tab {
			if j > 0 && target > 0 && w >= target && !bytes.Equal(tab[j-1].key.UserKey, e.key.UserKey) {
				t.Fatalf("table %d went past the target %d at a user-key boundary (%d bytes)", i, target, w)
			}
			w += int64(e.key.EncodedLen() + len(e.value))
		}
	}
}

func TestCompactionSplitterVersions(t *testing.T) {
	s := splitter{targetSize: 1}
	in := ciParse(t, "a#3:x a#2:y a#1:z b#5:w b#4,DEL c#1:q")
	var got []bool
	for _, e := range in {
		got = append(got, s.shouldSplitBefore(e.key, 100))
	}
	want := []bool{false, false, false, true, false, true}
	if !slices.Equal(got, want) {
		t.Fatalf("splits %v, want %v", got, want)
	}
}

// ciBenchInput builds keys*versions entries of 16-byte keys and 100-byte
// values, the last tenth of the keys in namespace 2.
func ciBenchInput(keys, versions int) []ciEntry {
	value := bytes.Repeat([]byte{'v'}, 100)
	out := make([]ciEntry, 0, keys*versions)
	for i := range keys {
		k := base.AppendNamespace(nil, base.NamespaceID(1+i/(keys*9/10)))
		k = fmt.Appendf(k, "key%012d", i)
		for v := versions; v > 0; v-- {
			kind := base.KindSet
			if v == versions && i%7 == 0 {
				kind = base.KindDelete
			}
			out = append(out, ciEntry{base.InternalKey{UserKey: k, Trailer: base.MakeTrailer(base.SeqNum(v*keys+i), kind)}, value})
		}
	}
	return out
}

func TestCompactionIterAllocs(t *testing.T) {
	in := ciBenchInput(1000, 4)
	snaps := []base.SeqNum{1500, 3500}
	c := newCompactionIter(newCISliceIter(in), snaps, true, ciDropSet(2))
	allocs := testing.AllocsPerRun(5, func() {
		for ok := c.First(); ok; ok = c.Next() {
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per pass, want 0", allocs)
	}
}

func BenchmarkCompactionIter(b *testing.B) {
	in := ciBenchInput(100_000, 4)
	snaps := []base.SeqNum{150_000, 350_000}
	for _, sources := range []int{1, 4} {
		b.Run(fmt.Sprintf("sources=%d", sources), func(b *testing.B) {
			parts := make([][]ciEntry, sources)
			for i, e := range in {
				parts[i%sources] = append(parts[i%sources], e)
			}
			iters := make([]internalIterator, sources)
			for i, p := range parts {
				iters[i] = newCISliceIter(p)
			}
			var src internalIterator = iters[0]
			if sources > 1 {
				m := &mergingIter{}
				m.init(iters)
				src = m
			}
			c := newCompactionIter(src, snaps, true, ciDropSet(2))
			c.First()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for c.stats.In < int64(b.N) {
				if !c.Next() {
					c.First()
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
		})
	}
}
