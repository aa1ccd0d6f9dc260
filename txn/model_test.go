package txn

import (
	"bytes"
	"fmt"
	"github.com/stratadb/strata/internal/testseed"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// newRand returns the generator of a randomized test, logging its seed.
func newRand(t testing.TB) *rand.Rand {
	s := testseed.Seed(t)
	return rand.New(rand.NewPCG(s, s>>32|1))
}

// modelEntry is the model's visible write of a key.
type modelEntry struct {
	kind  base.Kind
	value string
	stamp uint64
}

// model is the obvious implementation of an overlay: a map.
type model map[string]modelEntry

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m model) sortedKeys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkItem compares an item with the model's entry of its key.
func (m model) checkItem(it Item) error {
	want, ok := m[string(it.Key)]
	switch {
	case !ok:
		return fmt.Errorf("key %q is not in the model", it.Key)
	case it.Kind != want.kind || it.Stamp != want.stamp || string(it.Value) != want.value:
		return fmt.Errorf("key %q: got %s %q stamp %d, want %s %q stamp %d",
			it.Key, it.Kind, it.Value, it.Stamp, want.kind, want.value, want.stamp)
	case it.Kind == base.KindDelete && it.Value != nil:
		return fmt.Errorf("key %q: tombstone with a non-nil value", it.Key)
	}
	return nil
}

// checkIter walks it both ways over the whole snapshot and at random seeks
// and direction changes, against the model's sorted keys.
func checkIter(t *testing.T, r *rand.Rand, it *Iter, m model, seeks int) {
	t.Helper()
	keys := m.sortedKeys()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(keys) || string(it.Key()) != keys[i] {
			t.Fatalf("forward step %d: got %q, want %v", i, it.Key(), at(keys, i))
		}
		if err := m.checkItem(it.Item()); err != nil {
			t.Fatalf("forward step %d: %v", i, err)
		}
		i++
	}
	if i != len(keys) {
		t.Fatalf("forward iteration saw %d keys, want %d", i, len(keys))
	}
	i = len(keys) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		if i < 0 || string(it.Key()) != keys[i] {
			t.Fatalf("backward step at %d: got %q, want %v", i, it.Key(), at(keys, i))
		}
		i--
	}
	if i != -1 {
		t.Fatalf("backward iteration stopped at %d", i)
	}
	for range seeks {
		checkSeekWalk(t, r, it, m, keys)
	}
}

// checkSeekWalk seeks to a random key, then takes random steps in both
// directions, following along in keys.
func checkSeekWalk(t *testing.T, r *rand.Rand, it *Iter, m model, keys []string) {
	t.Helper()
	target := randomKey(r, 64)
	if len(keys) > 0 && r.IntN(2) == 0 {
		target = keys[r.IntN(len(keys))]
	}
	var pos int // position in keys; -1 = before the start, len(keys) = after the end
	var ok bool
	if r.IntN(2) == 0 {
		ok = it.SeekGE([]byte(target))
		pos, _ = slices.BinarySearch(keys, target)
	} else {
		ok = it.SeekLT([]byte(target))
		pos, _ = slices.BinarySearch(keys, target)
		pos--
	}
	for step := 0; step < 80; step++ {
		wantOK := pos >= 0 && pos < len(keys)
		if ok != wantOK || it.Valid() != wantOK {
			t.Fatalf("seek %q step %d: ok %v valid %v, want %v (pos %d of %d)", target, step, ok, it.Valid(), wantOK, pos, len(keys))
		}
		if wantOK {
			if string(it.Key()) != keys[pos] {
				t.Fatalf("seek %q step %d: got %q, want %q", target, step, it.Key(), keys[pos])
			}
			if err := m.checkItem(it.Item()); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(3) == 0 {
			ok = it.Prev()
			if pos >= 0 {
				pos--
			}
		} else {
			ok = it.Next()
			if pos < len(keys) {
				pos++
			}
		}
	}
}

func at(keys []string, i int) any {
	if i < 0 || i >= len(keys) {
		return "(none)"
	}
	return keys[i]
}

// randomKey returns a key out of a space of about n keys, some of them
// prefixes of others.
func randomKey(r *rand.Rand, n int) string {
	k := fmt.Sprintf("k%03d", r.IntN(n))
	if r.IntN(4) == 0 {
		k = k[:1+r.IntN(len(k))]
	}
	return k
}

// checkOverlay compares everything the owner can read with the model: the
// parts (checkParts), then Repr, which joins them, and Live's items, which
// then index Repr.
func checkOverlay(t *testing.T, o *Overlay, m model) {
	t.Helper()
	if o.Entries() != len(m) {
		t.Fatalf("Entries() = %d, want %d", o.Entries(), len(m))
	}
	for k, want := range m {
		v, kind, found := o.Get([]byte(k))
		if !found || kind != want.kind || string(v) != want.value {
			t.Fatalf("Get(%q) = %q %s %v, want %q %s", k, v, kind, found, want.value, want.kind)
		}
	}
	joined := checkParts(t, o, m) // before Repr joins them
	repr := o.Repr()
	if !bytes.Equal(repr, joined) {
		t.Fatal("Repr differs from the concatenation of Parts")
	}
	entries := checkReprLastWrites(t, repr, o.Count(), m)
	keys := m.sortedKeys()
	i := 0
	o.Live(func(it Item) bool {
		if i >= len(keys) || string(it.Key) != keys[i] {
			t.Fatalf("Live item %d: got %q, want %v", i, it.Key, at(keys, i))
		}
		if err := m.checkItem(it); err != nil {
			t.Fatal(err)
		}
		if int(it.Index) >= len(entries) {
			t.Fatalf("item %q: Index %d past the %d entries", it.Key, it.Index, len(entries))
		}
		e := entries[it.Index]
		if it.Part != 0 || e.KeyOff != it.KeyOff || e.ValOff != it.ValOff || e.Kind != it.Kind ||
			!bytes.Equal(e.Key, it.Key) || !bytes.Equal(e.Value, it.Value) {
			t.Fatalf("item %q (index %d, offsets %d/%d) differs from Repr's entry %+v", it.Key, it.Index, it.KeyOff, it.ValOff, e)
		}
		i++
		return true
	})
	if i != len(keys) {
		t.Fatalf("Live gave %d items, want %d", i, len(keys))
	}
}

// checkReprLastWrites decodes repr and checks that the last write of each
// key equals the model, and that the model has no other key. It returns
// the entries.
func checkReprLastWrites(t *testing.T, repr []byte, count uint32, m model) []Entry {
	t.Helper()
	r, err := NewReader(repr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count() != count {
		t.Fatalf("header count %d, Count() %d", r.Count(), count)
	}
	var entries []Entry
	last := map[string]Entry{}
	for {
		e, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if int(e.Index) != len(entries) {
			t.Fatalf("entry %d has Index %d", len(entries), e.Index)
		}
		entries = append(entries, e)
		last[string(e.Key)] = e
	}
	if len(last) != len(m) {
		t.Fatalf("Repr holds %d keys, model %d", len(last), len(m))
	}
	for k, e := range last {
		want := m[k]
		if e.Kind != want.kind || string(e.Value) != want.value {
			t.Fatalf("Repr's last write of %q is %s %q, want %s %q", k, e.Kind, e.Value, want.kind, want.value)
		}
	}
	return entries
}
