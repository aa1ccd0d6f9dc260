package lsm

import (
	"errors"
	"slices"
	"strings"
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
	// An iterator holds its read state: it keeps its view through a flush
	// and a compaction, which delete the tables it reads only once it is
	// closed.
	it, _ := d.NewIterator(nil)
	must(t, d.Set([]byte("a"), []byte("3")))
	must(t, d.Compact())
	var got []string
	for k, v := range it.All() {
		got = append(got, string(k)+"="+string(v[:min(len(v), 1)]))
	}
	if strings.Join(got, " ") != "a=2 c=2 x=\x00" || it.Error() != nil {
		t.Fatalf("iterator over a compacted store: %q, %v", got, it.Error())
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
	if got, err := s.AppendValue([]byte("dst"), []byte("a")); !errors.Is(err, ErrClosed) || string(got) != "dst" {
		t.Fatalf("AppendValue on a closed snapshot: %q, %v", got, err)
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

// TestSnapshotCloseWaitsForReads checks that Close waits for a read that
// has checked the snapshot is open: until the read has loaded what it
// reads, the snapshot's sequence number stays pinned, so a compaction
// cannot drop a version the read needs (found by review: a Get racing
// Close could read with the pin gone and miss its version).
func TestSnapshotCloseWaitsForReads(t *testing.T) {
	d := openTest(t, t.TempDir(), nil)
	must(t, d.Set([]byte("a"), []byte("1")))
	s, err := d.NewSnapshot()
	must(t, err)
	must(t, s.hold()) // what Get, AppendValue and NewIterator do first
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if !stackShows(20000, "(*Snapshot).Close", "sync.runtime_SemacquireRWMutex") {
		t.Fatal("Close did not wait for the read")
	}
	if !slices.Contains(d.snapshots.list(), s.seq) {
		t.Fatal("Close unpinned the snapshot while a read held it")
	}
	s.mu.RUnlock()
	must(t, <-closed)
	if got := d.snapshots.list(); len(got) != 0 {
		t.Fatalf("pins left after Close: %v", got)
	}
	if _, err := s.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
