package memtable

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// randEntry draws an entry from a small key space so that user keys repeat,
// prefix one another and are sometimes empty.
func randEntry(rng *rand.Rand) entry {
	k := make([]byte, rng.Intn(5))
	for i := range k {
		k[i] = 'a' + byte(rng.Intn(4))
	}
	kind := base.KindSet
	if rng.Intn(4) == 0 {
		kind = base.KindDelete
	}
	seq := uint64(rng.Intn(1000))
	return entry{key: string(k), trailer: base.MakeTrailer(seq, kind), value: fmt.Sprintf("v%d", rng.Intn(1e6))}
}

// addBatch lays entries out in one buffer the way a committed batch holds
// them (key, value, key, value...), retains it and adds every entry.
func addBatch(t testing.TB, m *MemTable, md *model, es []entry) {
	t.Helper()
	var buf []byte
	offs := make([]uint32, len(es))
	for i, e := range es {
		offs[i] = uint32(len(buf))
		buf = append(append(buf, e.key...), e.value...)
	}
	ref := m.Retain(buf)
	for i, e := range es {
		kl := uint32(len(e.key))
		err := m.Add(ref, offs[i], kl, offs[i]+kl, uint32(len(e.value)), e.trailer)
		if fresh := md.insert(e); fresh != (err == nil) || (!fresh && !errors.Is(err, ErrRecordExists)) {
			t.Fatalf("Add(%s): %v, model fresh=%v", e.ikey(), err, fresh)
		}
	}
}

// randSeq draws a read sequence number, sometimes an extreme one.
func randSeq(rng *rand.Rand) uint64 {
	switch rng.Intn(10) {
	case 0:
		return base.MaxSeqNum
	case 1:
		return math.MaxUint64
	}
	return uint64(rng.Intn(1100))
}

func TestRandomModel(t *testing.T) {
	rng := newRand(t)
	m := New(16 << 20)
	md := &model{}
	var old Iter
	m.InitIter(&old) // made before any insert, must see them all
	for round := range 40 {
		es := make([]entry, 1+rng.Intn(150))
		for i := range es {
			es[i] = randEntry(rng)
		}
		switch round % 3 {
		case 0: // ascending, as a sorted batch would be
			sort.Slice(es, func(i, j int) bool { return base.CompareInternal(es[i].ikey(), es[j].ikey()) < 0 })
		case 1: // descending
			sort.Slice(es, func(i, j int) bool { return base.CompareInternal(es[i].ikey(), es[j].ikey()) > 0 })
		}
		addBatch(t, m, md, es)
		for range 10 {
			if rng.Intn(2) == 0 && len(md.entries) > 0 {
				insertSet(t, m, md, md.entries[rng.Intn(len(md.entries))]) // duplicate
			} else {
				insertSet(t, m, md, randEntry(rng))
			}
		}
		checkAll(t, m, md)
		for range 100 {
			checkSeeks(t, m, md, randEntry(rng).key, randSeq(rng))
		}
		checkEntry(t, md, &old, old.First(), 0, "iterator made before the inserts")
	}
}

func TestDuplicates(t *testing.T) {
	m := New(1 << 16)
	tr := base.MakeTrailer(7, base.KindSet)
	if err := m.Set([]byte("k"), []byte("first"), tr); err != nil {
		t.Fatal(err)
	}
	size, count := m.Size(), m.Count()
	if err := m.Set([]byte("k"), []byte("second"), tr); !errors.Is(err, ErrRecordExists) {
		t.Fatalf("second Set: %v, want ErrRecordExists", err)
	}
	ref := m.Retain([]byte("kthird"))
	if err := m.Add(ref, 0, 1, 1, 5, tr); !errors.Is(err, ErrRecordExists) {
		t.Fatalf("Add of a duplicate: %v, want ErrRecordExists", err)
	}
	if m.Size() != size+6 || m.Count() != count {
		t.Fatalf("duplicate changed the table: size %d->%d, count %d->%d", size, m.Size(), count, m.Count())
	}
	// Other kinds and sequence numbers of the same user key are distinct.
	for _, tr2 := range []uint64{base.MakeTrailer(7, base.KindDelete), base.MakeTrailer(8, base.KindSet)} {
		if err := m.Set([]byte("k"), nil, tr2); err != nil {
			t.Fatalf("Set with trailer %x: %v", tr2, err)
		}
	}
	if v, kind, ok := m.Get([]byte("k"), 7); !ok || kind != base.KindSet || string(v) != "first" {
		t.Fatalf("Get(k, 7) = %q %v %v, want first SET", v, kind, ok)
	}
	if v, kind, ok := m.Get([]byte("k"), 8); !ok || kind != base.KindSet || len(v) != 0 {
		t.Fatalf("Get(k, 8) = %q %v %v, want empty SET", v, kind, ok)
	}
}

func TestFull(t *testing.T) {
	rng := newRand(t)
	m := New(4096)
	md := &model{}
	fulls := 0
	for i := 0; fulls < 50; i++ {
		e := entry{key: fmt.Sprintf("k%05d", rng.Intn(1e5)), trailer: base.MakeTrailer(uint64(i), base.KindSet), value: "v"}
		size, count := m.Size(), m.Count()
		err := m.Set([]byte(e.key), []byte(e.value), e.trailer)
		if errors.Is(err, ErrFull) {
			fulls++
			if m.Size() != size || m.Count() != count {
				t.Fatalf("ErrFull changed the table: size %d->%d, count %d->%d", size, m.Size(), count, m.Count())
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		md.insert(e)
		if m.Size() > m.Capacity() {
			t.Fatalf("size %d exceeds capacity %d", m.Size(), m.Capacity())
		}
	}
	checkAll(t, m, md)
	for range 50 {
		checkSeeks(t, m, md, fmt.Sprintf("k%05d", rng.Intn(1e5)), math.MaxUint64)
	}
	// Add fails on a retained buffer that does not fit; the buffer stays.
	size := m.Size()
	ref := m.Retain(make([]byte, m.Capacity()))
	if err := m.Add(ref, 0, 1, 0, 0, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("Add with an oversize buffer: %v, want ErrFull", err)
	}
	if m.Size() != size+m.Capacity() {
		t.Fatalf("size %d, want %d", m.Size(), size+m.Capacity())
	}
	checkAll(t, m, md)
}

func TestFits(t *testing.T) {
	m := New(64 << 10)
	if !m.Fits(0, 0) || m.Fits(-1, 0) || m.Fits(0, -1) || m.Fits(math.MaxInt64, 1) || m.Fits(0, math.MaxInt) {
		t.Fatal("Fits accepts nonsense or refuses nothing")
	}
	md := &model{}
	seq := uint64(0)
	for {
		n := 1 + int(seq%37)
		es := make([]entry, n)
		bytes := 0
		for i := range es {
			seq++
			es[i] = entry{key: fmt.Sprintf("key%06d", seq*7919%100000), trailer: base.MakeTrailer(seq, base.KindSet), value: "value"}
			bytes += len(es[i].key) + len(es[i].value)
		}
		if !m.Fits(int64(bytes), n) {
			break
		}
		addBatch(t, m, md, es) // fails on ErrFull
	}
	if m.Size() > m.Capacity() {
		t.Fatalf("size %d exceeds capacity %d", m.Size(), m.Capacity())
	}
	checkAll(t, m, md)
}

func TestInvalidRef(t *testing.T) {
	m := New(1 << 16)
	ref := m.Retain([]byte("keyvalue"))
	for _, c := range []struct{ ref, ko, kl, vo, vl uint32 }{
		{ref: 1, kl: 1},
		{ko: 0, kl: 9},
		{ko: 8, kl: 1},
		{vo: 3, vl: 6},
		{ko: math.MaxUint32, kl: 2},
		{vo: 1, vl: math.MaxUint32},
	} {
		err := m.Add(BufRef(c.ref)+ref, c.ko, c.kl, c.vo, c.vl, 1)
		if !errors.Is(err, ErrInvalidRef) {
			t.Errorf("Add(%+v) = %v, want ErrInvalidRef", c, err)
		}
	}
	if m.Count() != 0 {
		t.Fatalf("count %d after invalid adds", m.Count())
	}
	if err := m.Add(ref, 0, 3, 3, 5, 1); err != nil {
		t.Fatal(err)
	}
	if v, _, ok := m.Get([]byte("key"), 0); !ok || string(v) != "value" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
}

func TestEmpty(t *testing.T) {
	for _, capacity := range []int64{0, 1 << 12} {
		m := New(capacity)
		if !m.Empty() || m.Count() != 0 || m.Size() != arenaStart || m.Capacity() < arenaStart {
			t.Fatalf("new table: empty %v count %d size %d capacity %d", m.Empty(), m.Count(), m.Size(), m.Capacity())
		}
		it := m.NewIter()
		if it.First() || it.Last() || it.SeekGE(nil) || it.SeekLT([]byte("z")) || it.Next() || it.Prev() || it.Valid() {
			t.Fatal("iterator over an empty table is valid")
		}
		if it.Key().UserKey != nil || it.Value() != nil {
			t.Fatal("invalid iterator has a key or value")
		}
		if _, _, ok := m.Get(nil, math.MaxUint64); ok {
			t.Fatal("Get found something in an empty table")
		}
	}
	m := New(0)
	if err := m.Set(nil, nil, 1); !errors.Is(err, ErrFull) || m.Size() != arenaStart {
		t.Fatalf("Set into a minimum table: %v, size %d", err, m.Size())
	}
}

// TestAliasing checks that keys and values alias the retained buffer.
func TestAliasing(t *testing.T) {
	m := New(1 << 16)
	buf := []byte("keyvalue")
	ref := m.Retain(buf)
	if err := m.Add(ref, 0, 3, 3, 5, 1); err != nil {
		t.Fatal(err)
	}
	it := m.NewIter()
	it.First()
	v, _, _ := m.Get([]byte("key"), 1)
	if &it.Key().UserKey[0] != &buf[0] || &it.Value()[0] != &buf[3] || &v[0] != &buf[3] {
		t.Fatal("key or value was copied")
	}
	if cap(it.Key().UserKey) != 3 || cap(v) != 5 {
		t.Fatal("returned slices may be appended into the buffer")
	}
}

func TestHeights(t *testing.T) {
	var w writer
	w.rng = 1
	var hist [maxHeight + 1]int
	for range 1 << 16 {
		h := w.randomHeight()
		if h < 1 || h > maxHeight {
			t.Fatalf("height %d", h)
		}
		hist[h]++
	}
	// With p = 1/e, 1-1/e (63%) of the nodes have height 1, 23% height 2.
	if hist[1] < 1<<16*58/100 || hist[1] > 1<<16*68/100 || hist[2] < 1<<16*20/100 || hist[2] > 1<<16*27/100 {
		t.Fatalf("implausible height histogram %v", hist)
	}
}

func TestZeroAllocs(t *testing.T) {
	m := New(1 << 20)
	buf := make([]byte, 0, 16*1000)
	for i := range 1000 {
		buf = fmt.Appendf(buf, "key%05dval%05d", i, i)
	}
	ref := m.Retain(buf)
	i := 0
	add := func() {
		if err := m.Add(ref, uint32(16*(i%1000)), 8, uint32(16*(i%1000)+8), 8, uint64(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	if n := testing.AllocsPerRun(500, add); n != 0 {
		t.Errorf("Add allocates %v times", n)
	}
	var it Iter
	ops := map[string]func(){
		"Get":      func() { m.Get([]byte("key00123"), 1000) },
		"InitIter": func() { m.InitIter(&it) },
		"SeekGE":   func() { it.SeekGE([]byte("key00500")) },
		"SeekLT":   func() { it.SeekLT([]byte("key00500")) },
		"Next":     func() { it.First(); it.Next() },
		"Prev":     func() { it.Last(); it.Prev() },
	}
	for name, op := range ops {
		m.InitIter(&it)
		if n := testing.AllocsPerRun(100, op); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
}
