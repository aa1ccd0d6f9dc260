package memtable

import (
	"errors"
	"fmt"
	"github.com/stratadb/strata/internal/testseed"
	"math/rand"
	"sort"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// newRand returns the generator of a randomized test, logging its seed.
func newRand(t testing.TB) *rand.Rand {
	return rand.New(rand.NewSource(int64(testseed.Seed(t))))
}

// entry is one internal key and value of the model.
type entry struct {
	key     string
	trailer uint64
	value   string
}

func (e entry) ikey() base.InternalKey {
	return base.InternalKey{UserKey: []byte(e.key), Trailer: e.trailer}
}

// model is the reference: a slice sorted by base.CompareInternal.
type model struct{ entries []entry }

// search returns the index of the first entry >= (key, trailer).
func (md *model) search(key string, trailer uint64) int {
	k := base.InternalKey{UserKey: []byte(key), Trailer: trailer}
	return sort.Search(len(md.entries), func(i int) bool {
		return base.CompareInternal(md.entries[i].ikey(), k) >= 0
	})
}

// insert adds e and reports false if its internal key was present.
func (md *model) insert(e entry) bool {
	i := md.search(e.key, e.trailer)
	if i < len(md.entries) && md.entries[i].key == e.key && md.entries[i].trailer == e.trailer {
		return false
	}
	md.entries = append(md.entries, entry{})
	copy(md.entries[i+1:], md.entries[i:])
	md.entries[i] = e
	return true
}

// remove deletes e, which is present.
func (md *model) remove(e entry) {
	i := md.search(e.key, e.trailer)
	md.entries = append(md.entries[:i], md.entries[i+1:]...)
}

func (md *model) get(key string, seq uint64) (entry, bool) {
	seq = min(seq, base.MaxSeqNum)
	i := md.search(key, seq<<8|0xff)
	if i < len(md.entries) && md.entries[i].key == key {
		return md.entries[i], true
	}
	return entry{}, false
}

// seekGE returns the index of the first entry with user key >= key.
func (md *model) seekGE(key string) int { return md.search(key, seekUser) }

// checkEntry fails unless the iterator is at model entry i (or invalid when
// i is out of range), given that valid is what the move returned.
func checkEntry(t testing.TB, md *model, it *Iter, valid bool, i int, what string) {
	t.Helper()
	want := i >= 0 && i < len(md.entries)
	if valid != want || it.Valid() != want {
		t.Fatalf("%s: valid %v/%v, want %v (index %d of %d)", what, valid, it.Valid(), want, i, len(md.entries))
	}
	if !want {
		return
	}
	e := md.entries[i]
	if k := it.Key(); string(k.UserKey) != e.key || k.Trailer != e.trailer || string(it.Value()) != e.value {
		t.Fatalf("%s: at %s=%q, want %s=%q", what, k, it.Value(), e.ikey(), e.value)
	}
}

// checkAll compares m with the model: counts, a full forward and backward
// walk, and the skiplist invariants.
func checkAll(t testing.TB, m *MemTable, md *model) {
	t.Helper()
	if m.Count() != len(md.entries) || m.Empty() != (len(md.entries) == 0) {
		t.Fatalf("Count %d Empty %v, model has %d", m.Count(), m.Empty(), len(md.entries))
	}
	var it Iter
	m.InitIter(&it)
	ok := it.First()
	for i := range md.entries {
		checkEntry(t, md, &it, ok, i, "forward")
		ok = it.Next()
	}
	checkEntry(t, md, &it, ok, len(md.entries), "forward end")
	ok = it.Last()
	for i := len(md.entries) - 1; i >= 0; i-- {
		checkEntry(t, md, &it, ok, i, "backward")
		ok = it.Prev()
	}
	checkEntry(t, md, &it, ok, -1, "backward end")
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

// checkSeeks compares Get, SeekGE and SeekLT for one user key.
func checkSeeks(t testing.TB, m *MemTable, md *model, key string, seq uint64) {
	t.Helper()
	v, kind, found := m.Get([]byte(key), seq)
	e, wantFound := md.get(key, seq)
	if found != wantFound || (found && (string(v) != e.value || kind != base.TrailerKind(e.trailer))) {
		t.Fatalf("Get(%q, %d) = %q,%v,%v; want %q,%v,%v", key, seq, v, kind, found,
			e.value, base.TrailerKind(e.trailer), wantFound)
	}
	it := m.NewIter()
	i := md.seekGE(key)
	checkEntry(t, md, it, it.SeekGE([]byte(key)), i, "SeekGE("+key+")")
	checkEntry(t, md, it, it.SeekLT([]byte(key)), i-1, "SeekLT("+key+")")
	if it.Valid() {
		checkEntry(t, md, it, it.Next(), i, "SeekLT+Next")
	}
}

// check verifies the skiplist invariants: every level is strictly sorted,
// only holds nodes tall enough for it and ends at tail; level-0 prev links
// mirror next links; the count matches.
func (m *MemTable) check() error {
	d := *m.dir.Load()
	for l := maxHeight - 1; l >= 0; l-- {
		var prevKey base.InternalKey
		n, prev := 0, headNode
		for off := m.arena.node(headNode).loadNext(l); off != tailNode; off = m.arena.node(off).loadNext(l) {
			nd := m.arena.node(off)
			if off < arenaStart || off >= m.w.used || int(nd.height) <= l || nd.height > maxHeight {
				return fmt.Errorf("level %d: bad node offset %d or height %d", l, off, nd.height)
			}
			k := base.InternalKey{UserKey: m.userKey(&d, nd), Trailer: nd.trailer}
			if n > 0 && base.CompareInternal(prevKey, k) >= 0 {
				return fmt.Errorf("level %d: %s after %s", l, k, prevKey)
			}
			if l == 0 && nd.loadPrev() != prev {
				return fmt.Errorf("prev link broken at %s", k)
			}
			prevKey, prev = k, off
			n++
		}
		if l == 0 && (n != m.Count() || m.arena.node(tailNode).loadPrev() != prev) {
			return fmt.Errorf("level 0 has %d nodes, Count %d, or tail prev link broken", n, m.Count())
		}
		if l >= int(m.height.Load()) && n != 0 {
			return fmt.Errorf("%d nodes at level %d, above the list height", n, l)
		}
	}
	return nil
}

// insertSet adds e through Set and fails on an unexpected outcome.
func insertSet(t testing.TB, m *MemTable, md *model, e entry) {
	t.Helper()
	err := m.Set([]byte(e.key), []byte(e.value), e.trailer)
	if fresh := md.insert(e); fresh != (err == nil) || (!fresh && !errors.Is(err, ErrRecordExists)) {
		t.Fatalf("Set(%s): %v, model fresh=%v", e.ikey(), err, fresh)
	}
}
