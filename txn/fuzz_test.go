package txn

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// FuzzCommitRecordDecode feeds arbitrary bytes to the decoder: it must never
// panic, must keep every slice within the input, and when it accepts the
// input, re-encoding the entries must give the same bytes.
func FuzzCommitRecordDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 'k', 2, 'v', 'v', 0, 1, 'a'})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0x00, 0})
	var b Batch
	_ = b.Set([]byte("key"), bytes.Repeat([]byte("v"), 200))
	_ = b.Delete(nil)
	f.Add(bytes.Clone(b.Repr()))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, entries, err := decodeAll(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if int(e.KeyOff)+len(e.Key) > len(data) || int(e.ValOff)+len(e.Value) > len(data) {
				t.Fatalf("entry %d reaches past the input", e.Index)
			}
		}
		if re := reencode(seq, entries); !bytes.Equal(re, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, data)
		}
	})
}

// FuzzOverlayMerge runs op bytes against an overlay and a map model:
// writes, re-puts, deletes, snapshots taken and later checked in both
// directions with seeks, range scans of the overlay merged over a fixed
// base store, and point reads. Compaction is made frequent.
func FuzzOverlayMerge(f *testing.F) {
	saved := compactFloor
	compactFloor = 256
	f.Cleanup(func() { compactFloor = saved })
	f.Add([]byte{0, 1, 2, 3, 4, 1, 0, 0, 2, 200, 1, 6, 0, 30})
	f.Add([]byte{0, 5, 9, 9, 0, 5, 9, 9, 0, 5, 9, 9, 4, 0, 3, 5, 0, 0, 5, 0, 1, 2, 6, 1, 9, 7, 5, 0})
	f.Add(bytes.Repeat([]byte{0, 7, 40, 1, 4, 3, 9, 3, 7, 5, 0, 7}, 20))
	f.Fuzz(func(t *testing.T, ops []byte) {
		runOverlayOps(t, ops)
	})
}

// fuzzBase is the committed store the overlay is merged over.
var fuzzBase = func() map[string]string {
	m := map[string]string{}
	for i := 0; i < 48; i += 3 {
		m[fuzzKey(byte(i))] = "base" + fuzzKey(byte(i))
	}
	return m
}()

func fuzzKey(b byte) string {
	k := fmt.Sprintf("k%02d", b%48)
	if b >= 200 {
		k = k[:1+int(b)%3] // some keys are prefixes of others
	}
	return k
}

func runOverlayOps(t *testing.T, ops []byte) {
	o := NewOverlay()
	m := model{}
	type taken struct {
		s *Snapshot
		m model
	}
	var snaps []taken
	arg := func(i int) byte {
		if i < len(ops) {
			return ops[i]
		}
		return 0
	}
	for i, stamp := 0, uint64(1); i < len(ops); i, stamp = i+4, stamp+1 {
		a, b, c := arg(i+1), arg(i+2), arg(i+3)
		switch ops[i] % 8 {
		case 0, 1, 2:
			k, v := fuzzKey(a), bytes.Repeat([]byte{'a' + byte(stamp%26)}, int(b)*int(c%8))
			if err := o.Set([]byte(k), v, stamp); err != nil {
				t.Fatal(err)
			}
			m[k] = modelEntry{kind: base.KindSet, value: string(v), stamp: stamp}
		case 3:
			k := fuzzKey(a)
			if err := o.Delete([]byte(k), stamp); err != nil {
				t.Fatal(err)
			}
			m[k] = modelEntry{kind: base.KindDelete, stamp: stamp}
		case 4:
			if len(snaps) == 8 {
				snaps = snaps[1:]
			}
			snaps = append(snaps, taken{o.Snapshot(), m.clone()})
		case 5:
			if len(snaps) > 0 {
				s := snaps[int(a)%len(snaps)]
				r := rand.New(rand.NewPCG(uint64(b), uint64(c)))
				checkSeekWalk(t, r, s.s.NewIter(), s.m, s.m.sortedKeys())
			}
		case 6:
			checkMergedScan(t, o.Snapshot(), m, fuzzKey(a), fuzzKey(b))
		case 7:
			k := fuzzKey(a)
			v, kind, st, found := o.SharedGet([]byte(k))
			want, ok := m[k]
			if found != ok || ok && (kind != want.kind || string(v) != want.value || st != want.stamp) {
				t.Fatalf("SharedGet(%q) = %q %s %d %v, want %+v", k, v, kind, st, found, want)
			}
		}
	}
	checkOverlay(t, o, m)
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range snaps {
		checkIter(t, r, s.s.NewIter(), s.m, 3)
	}
}

// checkMergedScan scans [lo, hi) of the overlay snapshot merged over
// fuzzBase (overlay wins, tombstones hide), as the engine's iterator does,
// and compares it with the model applied to the base.
func checkMergedScan(t *testing.T, s *Snapshot, m model, lo, hi string) {
	t.Helper()
	want := map[string]string{}
	for k, v := range fuzzBase {
		want[k] = v
	}
	for k, e := range m {
		if e.kind == base.KindDelete {
			delete(want, k)
		} else {
			want[k] = e.value
		}
	}
	var wantKeys []string
	for k := range want {
		if lo <= k && k < hi {
			wantKeys = append(wantKeys, k)
		}
	}
	slices.Sort(wantKeys)

	baseKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range fuzzBase {
			if !yield(k) {
				return
			}
		}
	})
	bi, _ := slices.BinarySearch(baseKeys, lo)
	it := s.NewIter()
	ok := it.SeekGE([]byte(lo))
	var got []string
	for {
		ov := ok && string(it.Key()) < hi
		bv := bi < len(baseKeys) && baseKeys[bi] < hi
		if !ov && !bv {
			break
		}
		switch {
		case ov && (!bv || string(it.Key()) <= baseKeys[bi]):
			if bv && string(it.Key()) == baseKeys[bi] {
				bi++ // shadowed by the overlay
			}
			if it.Kind() == base.KindSet {
				if want[string(it.Key())] != string(it.Value()) {
					t.Fatalf("merged scan: %q = %q, want %q", it.Key(), it.Value(), want[string(it.Key())])
				}
				got = append(got, string(it.Key()))
			}
			ok = it.Next()
		default:
			got = append(got, baseKeys[bi])
			bi++
		}
	}
	if !slices.Equal(got, wantKeys) {
		t.Fatalf("merged scan [%q, %q): got %q, want %q", lo, hi, got, wantKeys)
	}
}
