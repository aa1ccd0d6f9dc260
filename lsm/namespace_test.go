package lsm

import (
	"errors"
	"fmt"
	"testing"
)

func TestNamespaces(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		t.Run(fmt.Sprintf("inmemory=%v", inMemory), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{InMemory: inMemory, MemTableSize: 64 << 10}
			d := openTest(t, dir, o)
			if _, err := d.Namespace(""); err == nil {
				t.Fatal("a namespace without a name was created")
			}
			a, err := d.Namespace("a")
			must(t, err)
			b, err := d.Namespace("b")
			must(t, err)
			if a2, _ := d.Namespace("a"); a2.id != a.id {
				t.Fatalf("reopening namespace a gave id %d, want %d", a2.id, a.id)
			}
			// One commit spans the default namespace, a, b and an offset.
			tx := d.Begin(nil)
			must(t, tx.Set([]byte("k"), []byte("default")))
			must(t, tx.In(a).Set([]byte("k"), []byte("in a")))
			must(t, tx.In(b).Set([]byte("k"), []byte("in b")))
			must(t, tx.In(b).Set([]byte("only-b"), []byte("1")))
			must(t, tx.SetOffset("topic-0", 7))
			mustGet(t, tx.In(a), "k", "in a")
			mustGet(t, a, "k", "") // not committed yet
			must(t, tx.Commit())
			mustGet(t, d, "k", "default")
			mustGet(t, a, "k", "in a")
			mustGet(t, b, "k", "in b")
			mustGet(t, a, "only-b", "")
			if got := scan(t, b, nil); got != "k=in b only-b=1 " {
				t.Fatalf("scan of b: %q", got)
			}
			if got := scan(t, d, nil); got != "k=default " {
				t.Fatalf("scan of the default namespace: %q", got)
			}
			must(t, a.Set([]byte("x"), []byte("1")))
			must(t, a.Delete([]byte("k")))
			mustGet(t, a, "k", "")
			snap, err := d.NewSnapshot()
			must(t, err)
			defer snap.Close()
			must(t, b.Set([]byte("k"), []byte("later")))
			mustGet(t, snap.In(b), "k", "in b")

			// Drop b: at once, reads and writes through its handles fail.
			must(t, d.DropNamespace("b"))
			if _, err := b.Get([]byte("k")); !errors.Is(err, ErrNamespaceDropped) {
				t.Fatalf("Get in a dropped namespace: %v", err)
			}
			if err := b.Set([]byte("k"), nil); !errors.Is(err, ErrNamespaceDropped) {
				t.Fatalf("Set in a dropped namespace: %v", err)
			}
			if _, err := snap.In(b).NewIterator(nil); !errors.Is(err, ErrNamespaceDropped) {
				t.Fatalf("iterator of a dropped namespace: %v", err)
			}
			if err := d.DropNamespace("b"); err == nil {
				t.Fatal("dropping a dropped namespace succeeded")
			}
			if got := d.Namespaces(); len(got) != 1 || got[0] != "a" {
				t.Fatalf("namespaces %q", got)
			}
			// A namespace created again under the name starts empty.
			b2, err := d.Namespace("b")
			must(t, err)
			mustGet(t, b2, "k", "")
			if got := scan(t, b2, nil); got != "" {
				t.Fatalf("recreated namespace holds %q", got)
			}
			if inMemory {
				return
			}
			must(t, d.Close())
			d = openTest(t, dir, o)
			a, err = d.Namespace("a")
			must(t, err)
			mustGet(t, a, "x", "1")
			mustGet(t, d, "k", "default")
			if got := d.Namespaces(); len(got) != 2 {
				t.Fatalf("namespaces after reopen %q", got)
			}
			if off, err := d.CommittedOffset("topic-0"); err != nil || off != 7 {
				t.Fatalf("offset %d %v", off, err)
			}
		})
	}
}

// TestDropNamespaceReclaimsSpace fills a namespace, drops it and checks
// that compaction removes its tables' bytes.
func TestDropNamespaceReclaimsSpace(t *testing.T) {
	d := openTest(t, t.TempDir(), &Options{MemTableSize: 64 << 10, NoSync: true})
	big, err := d.Namespace("segment-1")
	must(t, err)
	keep, err := d.Namespace("segment-2")
	must(t, err)
	value := make([]byte, 200)
	for i := 0; i < 2000; i++ {
		must(t, big.Set([]byte(fmt.Sprintf("k%05d", i)), value))
		if i%100 == 0 {
			must(t, keep.Set([]byte(fmt.Sprintf("k%05d", i)), []byte("kept")))
		}
	}
	must(t, d.Compact())
	before := totalTableBytes(d.Metrics())
	must(t, d.DropNamespace("segment-1"))
	must(t, d.Compact())
	after := totalTableBytes(d.Metrics())
	if after*10 > before {
		t.Fatalf("tables hold %d bytes after the drop and a compaction, %d before", after, before)
	}
	mustGet(t, keep, "k01900", "kept")
	t.Logf("tables: %d bytes before the drop, %d after", before, after)

	// Tables holding only a dropped namespace go by a manifest edit alone.
	alone, err := d.Namespace("segment-3")
	must(t, err)
	for i := 0; i < 500; i++ {
		must(t, alone.Set([]byte(fmt.Sprintf("k%05d", i)), value))
	}
	must(t, d.Flush())
	m := d.Metrics()
	must(t, d.DropNamespace("segment-3"))
	must(t, d.Compact())
	m2 := d.Metrics()
	if got := totalTableBytes(m2); got != after || m2.CompactionBytesOut != m.CompactionBytesOut || m2.TablesDeleted <= m.TablesDeleted {
		t.Fatalf("dropping a namespace with tables of its own: %d table bytes (want %d), compactions wrote %d bytes (want %d), %d tables deleted (was %d)",
			got, after, m2.CompactionBytesOut, m.CompactionBytesOut, m2.TablesDeleted, m.TablesDeleted)
	}
}

func totalTableBytes(m Metrics) int64 {
	var n int64
	for _, l := range m.Levels {
		n += l.Bytes
	}
	return n
}
