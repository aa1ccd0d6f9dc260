package txn

import (
	"fmt"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// TestSnapshotStability takes snapshots while writing (with compactions in
// between) and checks that each still shows exactly its model copy.
func TestSnapshotStability(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	m := model{}
	type taken struct {
		s *Snapshot
		m model
	}
	var snaps []taken
	compactions := 0
	for i := range 5000 {
		if applyRandom(t, r, o, m, uint64(i+1), 200, 1500) {
			compactions++
		}
		if i%250 == 0 {
			s := o.Snapshot()
			snaps = append(snaps, taken{s, m.clone()})
			checkIter(t, r, s.NewIter(), m, 5)
		}
	}
	if compactions == 0 {
		t.Fatal("the workload never compacted the batch")
	}
	it := new(Iter)
	for i, s := range snaps {
		if s.s.Len() != len(s.m) {
			t.Fatalf("snapshot %d: Len %d, want %d", i, s.s.Len(), len(s.m))
		}
		it.Init(s.s)
		checkIter(t, r, it, s.m, 30)
		for k, want := range s.m {
			v, kind, stamp, found := s.s.Get([]byte(k))
			if !found || kind != want.kind || string(v) != want.value || stamp != want.stamp {
				t.Fatalf("snapshot %d: Get(%q) = %q %s %d %v", i, k, v, kind, stamp, found)
			}
		}
	}
	t.Logf("%d snapshots, %d compactions", len(snaps), compactions)
}

// TestIterEdges walks snapshots of sizes around the iterator's buffer size
// and checks the behaviour at both ends.
func TestIterEdges(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{0, 1, 2, seekFill - 1, seekFill, seekFill + 1, 2*seekFill + 1, iterBufSize - 1, iterBufSize, iterBufSize + 1, 2 * iterBufSize, 3*iterBufSize + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			o := NewOverlay()
			m := model{}
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				if err := o.Set([]byte(k), []byte("v"+k), uint64(i)); err != nil {
					t.Fatal(err)
				}
				m[k] = modelEntry{kind: base.KindSet, value: "v" + k, stamp: uint64(i)}
			}
			it := o.Snapshot().NewIter()
			checkIter(t, r, it, m, 40)
			if n == 0 {
				if it.First() || it.Last() || it.SeekGE(nil) || it.SeekLT([]byte("z")) || it.Next() || it.Prev() {
					t.Fatal("an empty snapshot produced an item")
				}
				return
			}
			first, last := fmt.Sprintf("k%03d", 0), fmt.Sprintf("k%03d", n-1)
			// Off the end and back.
			it.Last()
			if it.Next() || it.Valid() || it.Next() {
				t.Fatal("Next past the last item")
			}
			if !it.Prev() || string(it.Key()) != last {
				t.Fatalf("Prev after the end: %v", it.Valid())
			}
			it.First()
			if it.Prev() || it.Valid() || it.Prev() {
				t.Fatal("Prev before the first item")
			}
			if !it.Next() || string(it.Key()) != first {
				t.Fatal("Next after the start")
			}
			if it.SeekGE([]byte("z")) || !it.Prev() || string(it.Key()) != last {
				t.Fatal("SeekGE past the end, then Prev")
			}
			if it.SeekLT([]byte("a")) || !it.Next() || string(it.Key()) != first {
				t.Fatal("SeekLT before the start, then Next")
			}
			if !it.SeekGE([]byte(last)) || string(it.Key()) != last {
				t.Fatal("SeekGE of the last key")
			}
			if !it.SeekLT([]byte(first+"\x00")) || string(it.Key()) != first {
				t.Fatal("SeekLT just above the first key")
			}
		})
	}
}

// TestIterAllocs checks that an iterator allocates nothing once it has
// been positioned, over many refills.
func TestIterAllocs(t *testing.T) {
	o := NewOverlay()
	for i := range 1000 {
		_ = o.Set(fmt.Appendf(nil, "key%05d", i), []byte("value"), uint64(i))
	}
	it := o.Snapshot().NewIter()
	it.First()
	// Keys escape (google/btree calls its less function dynamically), so
	// they are made once, outside the measured function.
	k1, k2 := []byte("key00500"), []byte("key00100")
	n := testing.AllocsPerRun(20, func() {
		for ok := it.First(); ok; ok = it.Next() {
		}
		for ok := it.Last(); ok; ok = it.Prev() {
		}
		it.SeekGE(k1)
		it.SeekLT(k2)
	})
	if n != 0 {
		t.Fatalf("iteration allocates %v times", n)
	}
}

// TestSnapshotAcrossReuse checks that Init repositions a used iterator on
// another snapshot.
func TestSnapshotAcrossReuse(t *testing.T) {
	o := NewOverlay()
	_ = o.Set([]byte("a"), []byte("1"), 1)
	s1 := o.Snapshot()
	_ = o.Set([]byte("b"), []byte("2"), 2)
	s2 := o.Snapshot()
	it := s2.NewIter()
	if !it.Last() || string(it.Key()) != "b" {
		t.Fatal("s2 lacks b")
	}
	it.Init(s1)
	if it.Valid() || !it.Last() || string(it.Key()) != "a" || it.Prev() {
		t.Fatal("s1 should hold exactly a")
	}
}
