package sstable

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

// TestWriterRejects checks Add's argument checks; a rejected Add leaves the
// Writer usable.
func TestWriterRejects(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f, 1, WriterOptions{})
	if err := w.Add(ikey("b", 5, base.KindSet), []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []base.InternalKey{
		ikey("b", 5, base.KindSet),             // equal
		ikey("b", 6, base.KindSet),             // newer version after older: smaller
		ikey("a", 9, base.KindSet),             // smaller user key
		{UserKey: []byte("c"), Trailer: 0x102}, // unknown kind
	} {
		if err := w.Add(k, nil); err == nil {
			t.Errorf("Add(%s) after b#5 succeeded", k)
		}
	}
	w.maxEntrySize = 100
	if err := w.Add(ikey("c", 1, base.KindSet), make([]byte, 100)); err == nil {
		t.Error("Add of an entry larger than MaxEntrySize succeeded")
	}
	w.maxEntrySize = MaxEntrySize
	if err := w.Add(ikey("b", 4, base.KindDelete), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.closed || f.syncs != 1 {
		t.Fatalf("after Close: file closed %v, %d syncs", f.closed, f.syncs)
	}
	if err := w.Add(ikey("z", 1, base.KindSet), nil); err == nil {
		t.Fatal("Add after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m := w.Metadata(); m.NumEntries != 2 || m.NumDeletions != 1 || m.FileNum != 1 {
		t.Fatalf("metadata %+v", m)
	}
}

// TestWriterIOErrors injects write, sync and close failures: Close reports
// them, the file is closed, and the error is sticky.
func TestWriterIOErrors(t *testing.T) {
	for _, op := range []string{"write", "sync", "close"} {
		f := &memFile{failOn: op}
		w := NewWriter(f, 1, WriterOptions{})
		if err := w.Add(ikey("a", 1, base.KindSet), []byte("v")); err != nil {
			t.Fatal(err)
		}
		err := w.Close()
		if !errors.Is(err, errInjected) || !f.closed {
			t.Fatalf("%s failure: Close = %v, file closed %v", op, err, f.closed)
		}
		if err := w.Add(ikey("b", 1, base.KindSet), nil); err == nil {
			t.Fatalf("%s failure: Add after failed Close succeeded", op)
		}
		if m := w.Metadata(); m.Size != 0 {
			t.Fatalf("%s failure: metadata %+v", op, m)
		}
	}
	// A failure while adding (the write buffer fills) is sticky too.
	f := &memFile{failOn: "write"}
	w := NewWriter(f, 1, WriterOptions{Compression: NoCompression})
	var err error
	for i := 0; err == nil && i < 1<<16; i++ {
		err = w.Add(ikey(fmt.Sprintf("k%08d", i), 1, base.KindSet), make([]byte, 100))
	}
	if !errors.Is(err, errInjected) || !errors.Is(w.Add(ikey("zzz", 1, base.KindSet), nil), errInjected) || !errors.Is(w.Close(), errInjected) {
		t.Fatalf("write failure during Add: %v", err)
	}
}

// TestWriterOptions checks option validation.
func TestWriterOptions(t *testing.T) {
	for _, o := range []WriterOptions{
		{BlockSize: -1}, {BlockSize: MaxBlockSize + 1}, {BlockRestartInterval: -2},
		{Compression: ZstdCompression + 1}, {FilterBitsPerKey: 1001},
	} {
		w := NewWriter(&memFile{}, 1, o)
		if err := w.Add(ikey("a", 1, base.KindSet), nil); err == nil {
			t.Errorf("options %+v accepted", o)
		}
		w.Close()
	}
	if s := (ZstdCompression + 1).String(); s != "Compression(4)" {
		t.Errorf("String of an unknown compression: %q", s)
	}
}

// TestWriterOnMemFS writes through a vfs.MemFS file and survives a crash
// clone: Close syncs the table.
func TestWriterOnMemFS(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.Create("000001.sst")
	if err != nil {
		t.Fatal(err)
	}
	kvs := smallKVs(500, 'a')
	w := NewWriter(f, 1, WriterOptions{})
	for _, e := range kvs {
		if err := w.Add(e.key, e.val); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneConfig{})
	f, err = crashed.Open("000001.sst")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(f, 1, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkScan(t, r, kvs)
}

// TestIterLifecycle checks Init reuse, Close, and use after the Reader is
// closed.
func TestIterLifecycle(t *testing.T) {
	kvs := smallKVs(100, 'a')
	r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{BlockSize: 128}), 1, ReaderOptions{})
	var it Iter
	for range 3 {
		it.Init(r)
		if !it.SeekGE(kvs[50].key.UserKey) || sameEntry(&it, kvs[50]) != nil {
			t.Fatal("SeekGE after Init")
		}
		if it.Close() != nil || it.Next() || it.First() || it.Prev() {
			t.Fatal("closed iterator moves")
		}
	}
	it.Init(r)
	if it.Next() || it.Prev() {
		t.Fatal("unpositioned iterator moves")
	}
	if !it.Last() || it.Next() || it.Next() {
		t.Fatal("Next past the end")
	}
	if !it.First() || it.Prev() {
		t.Fatal("Prev before the start")
	}
	if err := r.Close(); err != nil || r.Close() != nil {
		t.Fatal(err)
	}
	if it.SeekGE([]byte("key")) || !errors.Is(it.Error(), ErrClosed) {
		t.Fatalf("iterator over a closed reader: %v", it.Error())
	}
	if _, _, _, err := r.Get([]byte("key0001"), 100000); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed reader: %v", err)
	}
}
