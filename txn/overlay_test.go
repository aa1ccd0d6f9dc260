package txn

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/btree"

	"github.com/stratadb/strata/internal/base"
)

// randomValue returns a value of 0..maxLen bytes that names its write.
func randomValue(r *rand.Rand, stamp uint64, maxLen int) string {
	v := strings.Repeat("v", r.IntN(maxLen+1))
	return string(rune('a'+stamp%26)) + v
}

// applyRandom makes one random write to o and the model, checking that the
// growth of ApproximateBytes stays within EstimateWrite. It returns whether
// the batch was rewritten (compacted).
func applyRandom(t *testing.T, r *rand.Rand, o *Overlay, m model, stamp uint64, keySpace, maxVal int) bool {
	t.Helper()
	key := randomKey(r, keySpace)
	before, count := o.ApproximateBytes(), o.Count()
	var est int64
	if r.IntN(4) == 0 {
		est = o.EstimateWrite([]byte(key), nil)
		if err := o.Delete([]byte(key), stamp); err != nil {
			t.Fatal(err)
		}
		m[key] = modelEntry{kind: base.KindDelete, stamp: stamp}
	} else {
		v := randomValue(r, stamp, maxVal)
		est = o.EstimateWrite([]byte(key), []byte(v))
		if err := o.Set([]byte(key), []byte(v), stamp); err != nil {
			t.Fatal(err)
		}
		m[key] = modelEntry{kind: base.KindSet, value: v, stamp: stamp}
	}
	if grew := o.ApproximateBytes() - before; grew > est {
		t.Fatalf("write of %q grew ApproximateBytes by %d, EstimateWrite said %d", key, grew, est)
	}
	return o.Count() <= count
}

func TestOverlayModel(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	m := model{}
	compactions := 0
	for i := range 4000 {
		if applyRandom(t, r, o, m, uint64(i+1), 48, 3000) {
			compactions++
		}
		if i%97 == 0 {
			checkOverlay(t, o, m)
		}
		// Reads of keys the overlay never saw.
		if _, _, found := o.Get([]byte("missing" + key(i))); found {
			t.Fatal("Get found a key never written")
		}
	}
	checkOverlay(t, o, m)
	if compactions == 0 {
		t.Fatal("the workload never compacted the batch")
	}
	if o.DeadBytes() > compactFloor && o.DeadBytes() > o.liveBytes() {
		t.Fatalf("dead bytes %d dominate live %d after a write", o.DeadBytes(), o.liveBytes())
	}
	t.Logf("%d compactions; %d entries in %d bytes, %d dead", compactions, o.Count(), o.Len(), o.DeadBytes())
}

func key(i int) string { return string(rune('0'+i%10)) + string(rune('a'+i/10%26)) }

// TestOverlayDeleteMissing checks that deleting a key the overlay does not
// hold records a tombstone (the store may hold the key).
func TestOverlayDeleteMissing(t *testing.T) {
	o := NewOverlay()
	if err := o.Delete([]byte("gone"), 5); err != nil {
		t.Fatal(err)
	}
	v, kind, found := o.Get([]byte("gone"))
	if !found || kind != base.KindDelete || v != nil {
		t.Fatalf("Get = %q %s %v", v, kind, found)
	}
	v, kind, stamp, found := o.SharedGet([]byte("gone"))
	if !found || kind != base.KindDelete || v != nil || stamp != 5 {
		t.Fatalf("SharedGet = %q %s %d %v", v, kind, stamp, found)
	}
	checkOverlay(t, o, model{"gone": {kind: base.KindDelete, stamp: 5}})
}

// TestOverlayRejectedWriteChangesNothing checks the limits.
func TestOverlayRejectedWriteChangesNothing(t *testing.T) {
	o := NewOverlay()
	if err := o.Set([]byte("k"), []byte("v"), 1); err != nil {
		t.Fatal(err)
	}
	repr, bytesBefore := bytes.Clone(o.Repr()), o.ApproximateBytes()
	if err := o.Set(make([]byte, MaxKeySize+1), nil, 2); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	if err := o.Delete(make([]byte, MaxKeySize+1), 2); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	if err := o.Set([]byte("k"), oversizeValue(), 2); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversize value: %v", err)
	}
	if !bytes.Equal(o.Repr(), repr) || o.ApproximateBytes() != bytesBefore || o.Entries() != 1 {
		t.Fatal("a rejected write changed the overlay")
	}
	checkOverlay(t, o, model{"k": {kind: base.KindSet, value: "v", stamp: 1}})
}

// TestOverlayValuesNeverChange checks that returned slices keep their
// bytes through overwrites, growth, compaction and Reset.
func TestOverlayValuesNeverChange(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	type kept struct{ got, want []byte }
	var keep []kept
	for i := range 3000 {
		k := []byte(randomKey(r, 16))
		v := []byte(randomValue(r, uint64(i), 2000))
		if err := o.Set(k, v, uint64(i)); err != nil {
			t.Fatal(err)
		}
		got, _, _ := o.Get(k)
		keep = append(keep, kept{got, v})
		if i == 2000 {
			o.Reset()
		}
	}
	for i, k := range keep {
		if !bytes.Equal(k.got, k.want) {
			t.Fatalf("value %d changed to %q", i, k.got)
		}
	}
}

func TestOverlayReset(t *testing.T) {
	o := NewOverlay()
	for i := range 100 {
		if err := o.Set([]byte(key(i)), []byte("v"), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	snap := o.Snapshot()
	repr := bytes.Clone(o.Repr())
	old := o.Repr()
	o.Reset()
	if o.Entries() != 0 || o.Count() != 0 || o.Len() != HeaderSize || o.ApproximateBytes() != OverlayOverhead+HeaderSize {
		t.Fatalf("after Reset: %d entries, count %d, len %d", o.Entries(), o.Count(), o.Len())
	}
	if err := o.Set([]byte("new"), []byte("value"), 1000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, repr) || snap.Len() != 100 {
		t.Fatal("Reset disturbed the old batch or snapshot")
	}
	checkOverlay(t, o, model{"new": {kind: base.KindSet, value: "value", stamp: 1000}})
}

// TestSnapshotCached checks that Snapshot reuses its clone while nothing
// was written, and takes a new one after a write.
func TestSnapshotCached(t *testing.T) {
	o := NewOverlay()
	s1 := o.Snapshot()
	if s2 := o.Snapshot(); s2 != s1 {
		t.Fatal("a second Snapshot with no write in between cloned again")
	}
	if n := testing.AllocsPerRun(100, func() { o.Snapshot() }); n != 0 {
		t.Fatalf("a cached Snapshot allocates %v times", n)
	}
	if err := o.Set([]byte("k"), nil, 1); err != nil {
		t.Fatal(err)
	}
	s3 := o.Snapshot()
	if s3 == s1 || s1.Len() != 0 || s3.Len() != 1 {
		t.Fatalf("after a write: same %v, lens %d %d", s3 == s1, s1.Len(), s3.Len())
	}
}

func TestOverlayGetAllocs(t *testing.T) {
	o := NewOverlay()
	for i := range 1000 {
		_ = o.Set([]byte(key(i)+"xyz"), []byte("value"), uint64(i))
	}
	k := []byte(key(7) + "xyz")
	if n := testing.AllocsPerRun(100, func() { o.Get(k) }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { o.SharedGet(k) }); n != 0 {
		t.Fatalf("SharedGet allocates %v times", n)
	}
	s := o.Snapshot()
	if n := testing.AllocsPerRun(100, func() { s.Get(k) }); n != 0 {
		t.Fatalf("Snapshot.Get allocates %v times", n)
	}
}

// TestItemOverhead measures the memory the index spends per distinct key
// (btree nodes and out-of-line entries, not the batch bytes), for random
// and for ascending inserts, and checks that ItemOverhead is close to it.
func TestItemOverhead(t *testing.T) {
	const n = 50000
	keys, _ := benchKeys(n)
	random := indexBytesPerKey(keys)
	slices.SortFunc(keys, bytes.Compare)
	ascending := indexBytesPerKey(keys)
	t.Logf("index memory per key: %.1f bytes (random inserts), %.1f (ascending); ItemOverhead = %d", random, ascending, ItemOverhead)
	for _, per := range []float64{random, ascending} {
		if per > ItemOverhead*1.25 || per < ItemOverhead*0.75 {
			t.Fatalf("ItemOverhead %d is far from the measured %.1f bytes per key", ItemOverhead, per)
		}
	}
}

func indexBytesPerKey(keys [][]byte) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tree := btree.NewG(btreeDegree, elemLess)
	var s slab
	for _, k := range keys {
		tree.ReplaceOrInsert(elem{key: k, e: s.alloc()})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tree)
	runtime.KeepAlive(keys)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(keys))
}

// TestOverlayChunks writes past the contiguous first chunk, then values
// larger than a chunk, and checks the contents, the parts, the joined Repr,
// and the memory held by the chunks: close to the batch's length with small
// values; with large ones, a sealed chunk's unused tail is smaller than the
// entry that did not fit, so at most twice the length.
func TestOverlayChunks(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	m := model{}
	var kept [][]byte
	for i := 0; o.Len() < 6<<20; i++ {
		k := fmt.Sprintf("key%06d", r.IntN(4000))
		n := r.IntN(2000)
		big := o.Len() > 3<<20
		if big && i%50 == 0 {
			n = r.IntN(2 * maxChunk)
		}
		v := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		if err := o.Set([]byte(k), v, uint64(i)); err != nil {
			t.Fatal(err)
		}
		m[k] = modelEntry{kind: base.KindSet, value: string(v), stamp: uint64(i)}
		got, _, _ := o.Get([]byte(k))
		kept = append(kept, got[:min(len(got), 8)])
		limit := int64(o.Len()) + int64(o.Len())/100 + maxChunk + copyGrowLimit
		if big {
			limit = 2*int64(o.Len()) + maxChunk + copyGrowLimit
		}
		if held := heldBytes(o); held > limit {
			t.Fatalf("chunks hold %d bytes for a %d-byte batch (big values: %v)", held, o.Len(), big)
		}
	}
	if len(o.buf.chunks) < 3 {
		t.Fatalf("only %d chunks", len(o.buf.chunks))
	}
	checkOverlay(t, o, m) // joins the chunks
	if len(o.buf.chunks) != 1 {
		t.Fatalf("%d chunks after Repr", len(o.buf.chunks))
	}
	if err := o.Set([]byte("after"), []byte("repr"), 1<<40); err != nil {
		t.Fatal(err)
	}
	m["after"] = modelEntry{kind: base.KindSet, value: "repr", stamp: 1 << 40}
	checkOverlay(t, o, m)
	for i, v := range kept {
		if len(v) > 0 && v[0] != byte('a'+i%26) {
			t.Fatalf("value %d changed", i)
		}
	}
}

// heldBytes is the capacity of the chunks the overlay holds now.
func heldBytes(o *Overlay) int64 {
	var n int64
	for _, c := range o.buf.chunks {
		n += int64(cap(c))
	}
	return n
}
