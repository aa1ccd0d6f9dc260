package txn

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// checkParts checks Parts against the model without joining the chunks:
// the layout guarantees (header wholly in part 0, no empty part, no entry
// spanning two parts), that the concatenation decodes to the model's last
// writes, and that every Live item's Part and offsets slice its key and
// value out of the parts. It returns the concatenation.
func checkParts(t *testing.T, o *Overlay, m model) []byte {
	t.Helper()
	parts := o.Parts()
	if len(parts) == 0 || len(parts[0]) < HeaderSize {
		t.Fatalf("%d parts, the first of %d bytes: no whole header", len(parts), len(parts[0]))
	}
	starts := make([]int, len(parts)+1) // starts[len(parts)] is the total
	for i, p := range parts {
		if len(p) == 0 {
			t.Fatalf("part %d of %d is empty", i, len(parts))
		}
		starts[i+1] = starts[i] + len(p)
	}
	joined := bytes.Join(parts, nil)
	if len(joined) != o.Len() {
		t.Fatalf("parts hold %d bytes, Len() = %d", len(joined), o.Len())
	}
	entries := checkReprLastWrites(t, joined, o.Count(), m)
	checkNoEntrySpans(t, entries, starts)
	n := 0
	o.Live(func(it Item) bool {
		n++
		if err := m.checkItem(it); err != nil {
			t.Fatal(err)
		}
		if int(it.Part) >= len(parts) || int(it.Index) >= len(entries) {
			t.Fatalf("item %q: part %d of %d, index %d of %d", it.Key, it.Part, len(parts), it.Index, len(entries))
		}
		p, e := parts[it.Part], entries[it.Index]
		if int(it.KeyOff)+len(it.Key) > len(p) || int(it.ValOff)+len(it.Value) > len(p) {
			t.Fatalf("item %q: offsets %d/%d past part %d (%d bytes)", it.Key, it.KeyOff, it.ValOff, it.Part, len(p))
		}
		if !bytes.Equal(p[it.KeyOff:int(it.KeyOff)+len(it.Key)], it.Key) ||
			!bytes.Equal(p[it.ValOff:int(it.ValOff)+len(it.Value)], it.Value) {
			t.Fatalf("item %q: part %d at %d/%d does not hold its key and value", it.Key, it.Part, it.KeyOff, it.ValOff)
		}
		start := uint32(starts[it.Part])
		wantVal := e.ValOff
		if e.Kind == base.KindSet {
			wantVal -= start
		}
		if e.KeyOff-start != it.KeyOff || wantVal != it.ValOff || e.Kind != it.Kind {
			t.Fatalf("item %q (part %d at %d/%d) is not entry %d (%+v) of the parts", it.Key, it.Part, it.KeyOff, it.ValOff, it.Index, e)
		}
		return true
	})
	if n != len(m) {
		t.Fatalf("Live gave %d items, want %d", n, len(m))
	}
	return joined
}

// checkNoEntrySpans checks that each entry (from the header's end, or the
// previous entry's end, to its key or value's end) lies within one part.
func checkNoEntrySpans(t *testing.T, entries []Entry, starts []int) {
	t.Helper()
	part, begin := 0, HeaderSize
	for _, e := range entries {
		end := int(e.KeyOff) + len(e.Key)
		if e.Kind == base.KindSet {
			end = int(e.ValOff) + len(e.Value)
		}
		for begin >= starts[part+1] {
			part++
		}
		if end > starts[part+1] {
			t.Fatalf("entry %d (bytes %d..%d) spans parts %d and %d (boundary %d)", e.Index, begin, end, part, part+1, starts[part+1])
		}
		begin = end
	}
}

// TestOverlayParts writes a random mix of small and large sets and deletes,
// empty keys and values among them, across many parts, checking the parts
// as it goes; then Repr joins them, and Live's items index the one buffer.
func TestOverlayParts(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	m := model{}
	for i := 0; o.Len() < 5<<20; i++ {
		k := fmt.Sprintf("k%04d", r.IntN(3000))[:r.IntN(6)]
		if r.IntN(5) == 0 {
			if err := o.Delete([]byte(k), uint64(i)); err != nil {
				t.Fatal(err)
			}
			m[k] = modelEntry{kind: base.KindDelete, stamp: uint64(i)}
			continue
		}
		n := r.IntN(1500)
		if r.IntN(40) == 0 {
			n = r.IntN(3 * maxChunk / 2)
		}
		v := bytes.Repeat([]byte{byte('a' + i%26)}, n)
		if err := o.Set([]byte(k), v, uint64(i)); err != nil {
			t.Fatal(err)
		}
		m[k] = modelEntry{kind: base.KindSet, value: string(v), stamp: uint64(i)}
		if i%500 == 0 {
			checkParts(t, o, m)
		}
	}
	parts := o.Parts()
	if len(parts) < 4 {
		t.Fatalf("only %d parts", len(parts))
	}
	joined := checkParts(t, o, m)
	SetSeqParts(parts, 1<<40+5)
	if seq, _, err := DecodeHeader(o.Repr()); err != nil || seq != 1<<40+5 {
		t.Fatalf("Repr's header: seq %d, %v; want %d", seq, err, uint64(1<<40+5))
	}
	SetSeq(joined, 1<<40+5)
	if !bytes.Equal(o.Repr(), joined) {
		t.Fatal("Repr differs from the concatenation of the parts")
	}
	if got := o.Parts(); len(got) != 1 || &got[0][0] != &o.Repr()[0] {
		t.Fatalf("after Repr, Parts gave %d parts, not Repr's buffer", len(got))
	}
	checkOverlay(t, o, m)
	if !bytes.Equal(bytes.Join(parts, nil), joined) {
		t.Fatal("the parts changed after Repr joined them")
	}
}

// TestOverlayPartsEdges builds the layouts at the edges of the chunking: an
// entry too large for the growable first chunk, which leaves part 0 with
// the header only; an entry that fills its chunk exactly; and an empty-key
// tombstone that ends a part, whose key offset is the part's length (so
// the part is found by the entry's own bytes, not by that offset).
func TestOverlayPartsEdges(t *testing.T) {
	o := NewOverlay()
	m := model{}
	set := func(k string, n int, stamp uint64) {
		t.Helper()
		v := bytes.Repeat([]byte{'x'}, n)
		if err := o.Set([]byte(k), v, stamp); err != nil {
			t.Fatal(err)
		}
		m[k] = modelEntry{kind: base.KindSet, value: string(v), stamp: stamp}
	}
	set("big", copyGrowLimit+100, 1)
	if parts := o.Parts(); len(parts) != 2 || len(parts[0]) != HeaderSize {
		t.Fatalf("after a large first entry: %d parts, the first of %d bytes", len(parts), len(parts[0]))
	}
	set("next", 10, 2) // a new chunk: "big"'s is full
	// Fill the last chunk but for 2 bytes, then write a 2-byte tombstone.
	last := o.buf.chunks[len(o.buf.chunks)-1]
	room := cap(last) - len(last) - 2
	n := room - entrySize(base.KindSet, 1, 0)
	for entrySize(base.KindSet, 1, n) > room {
		n--
	}
	set("f", n, 3)
	if err := o.Delete(nil, 4); err != nil {
		t.Fatal(err)
	}
	m[""] = modelEntry{kind: base.KindDelete, stamp: 4}
	nparts := len(o.buf.chunks)
	if last := o.buf.chunks[nparts-1]; len(last) != cap(last) {
		t.Fatalf("the chunk is not full: %d of %d bytes", len(last), cap(last))
	}
	set("g", 0, 5) // empty value at the start of a new chunk
	parts := o.Parts()
	if len(parts) != nparts+1 {
		t.Fatalf("%d parts, want %d", len(parts), nparts+1)
	}
	checkParts(t, o, m)
	o.Live(func(it Item) bool {
		if len(it.Key) == 0 && (it.Part != uint32(nparts-1) || int(it.KeyOff) != len(parts[nparts-1])) {
			t.Fatalf("empty key: part %d at %d, want part %d at %d", it.Part, it.KeyOff, nparts-1, len(parts[nparts-1]))
		}
		return true
	})
	checkOverlay(t, o, m)
}

// TestPartsSmallBatch checks that a batch within the first chunk is one
// part, the same bytes as Repr, and that Parts and Live allocate nothing.
func TestPartsSmallBatch(t *testing.T) {
	o := NewOverlay()
	m := model{}
	for i := range 100 {
		k, v := fmt.Sprintf("key%03d", i*7%100), fmt.Sprintf("value%d", i)
		if err := o.Set([]byte(k), []byte(v), uint64(i)); err != nil {
			t.Fatal(err)
		}
		m[k] = modelEntry{kind: base.KindSet, value: v, stamp: uint64(i)}
	}
	parts := o.Parts()
	if len(parts) != 1 || &parts[0][0] != &o.Repr()[0] || len(parts[0]) != o.Len() {
		t.Fatalf("%d parts for a small batch, or not Repr's bytes", len(parts))
	}
	checkParts(t, o, m)
	fn := func(Item) bool { return true }
	if a := testing.AllocsPerRun(100, func() { o.Parts(); o.Live(fn) }); a != 0 {
		t.Fatalf("Parts and Live allocate %v times", a)
	}
}
