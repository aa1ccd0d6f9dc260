package lsm

import (
	"errors"
	"testing"
)

func TestSnapshot(t *testing.T) {
	d := openTest(t, t.TempDir(), &Options{MemTableSize: 64 << 10})
	d.Set([]byte("a"), []byte("1"))
	d.Set([]byte("b"), []byte("1"))
	s, err := d.NewSnapshot()
	must(t, err)
	d.Set([]byte("a"), []byte("2"))
	d.Delete([]byte("b"))
	d.Set([]byte("c"), []byte("2"))
	for i := 0; i < 200; i++ { // rotate memtables under the snapshot
		d.Set([]byte("x"), make([]byte, 1000))
	}
	mustGet(t, s, "a", "1")
	mustGet(t, s, "b", "1")
	mustGet(t, s, "c", "")
	if got := scan(t, s, nil); got != "a=1 b=1 " {
		t.Fatalf("snapshot scan %q", got)
	}
	mustGet(t, d, "a", "2")
	if got := d.snapshots.list(); len(got) != 1 || got[0] != s.Seq() {
		t.Fatalf("pinned %v, want [%d]", got, s.Seq())
	}
	it, _ := d.NewIterator(nil)
	if got := d.snapshots.list(); len(got) != 2 {
		t.Fatalf("an open iterator is not pinned: %v", got)
	}
	it.Close()
	it.Close()
	must(t, s.Close())
	must(t, s.Close())
	if got := d.snapshots.list(); len(got) != 0 {
		t.Fatalf("pins left after Close: %v", got)
	}
	if _, err := s.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed snapshot: %v", err)
	}
	if _, err := s.NewIterator(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewIterator on a closed snapshot: %v", err)
	}
	s2, _ := d.NewSnapshot()
	d.Close()
	if _, err := s2.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after DB.Close: %v", err)
	}
	if _, err := d.NewSnapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSnapshot after Close: %v", err)
	}
}
