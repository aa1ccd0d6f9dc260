package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func openTest(t testing.TB, dir string, o *Options) *DB {
	t.Helper()
	d, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustGet(t testing.TB, r Reader, key, want string) {
	t.Helper()
	v, err := r.Get([]byte(key))
	if want == "" {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
		}
		return
	}
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}

func scan(t testing.TB, r Reader, o *IterOptions) string {
	t.Helper()
	it, err := r.NewIterator(o)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var b bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&b, "%s=%s ", it.Key(), it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReadYourWritesAndIsolation(t *testing.T) {
	d := openTest(t, t.TempDir(), nil)
	if err := d.Set([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	tx := d.Begin(nil)
	tx.Set([]byte("b"), []byte("2"))
	tx.Delete([]byte("a"))
	mustGet(t, tx, "a", "")
	mustGet(t, tx, "b", "2")
	mustGet(t, d, "a", "1")
	mustGet(t, d, "b", "")
	mustGet(t, d.Reader(ReadCommitted), "b", "")
	mustGet(t, d.Reader(ReadUncommitted), "b", "2")
	mustGet(t, d.Reader(ReadUncommitted), "a", "")
	if got := scan(t, tx, nil); got != "b=2 " {
		t.Fatalf("txn scan = %q", got)
	}
	if got := scan(t, d, nil); got != "a=1 " {
		t.Fatalf("db scan = %q", got)
	}
	if got := scan(t, d.Reader(ReadUncommitted), nil); got != "b=2 " {
		t.Fatalf("read-uncommitted scan = %q", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, d, "a", "")
	mustGet(t, d, "b", "2")
	if err := tx.Set([]byte("c"), nil); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Set after Commit: %v", err)
	}
	if _, err := tx.Get([]byte("b")); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Get after Commit: %v", err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("second Commit: %v", err)
	}
	if err := tx.Rollback(); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Rollback after Commit: %v", err)
	}
}

func TestIteratorStableWhileTxnWrites(t *testing.T) {
	d := openTest(t, "", &Options{InMemory: true})
	for i := 0; i < 10; i += 2 {
		d.Set([]byte{'k', byte('0' + i)}, []byte("c"))
	}
	tx := d.Begin(nil)
	tx.Set([]byte("k1"), []byte("t"))
	it, _ := tx.NewIterator(nil)
	defer it.Close()
	tx.Set([]byte("k3"), []byte("t"))
	tx.Delete([]byte("k0"))
	d.Set([]byte("k9"), []byte("c"))
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	want := "[k0=c k1=t k2=c k4=c k6=c k8=c]"
	if fmt.Sprint(got) != want {
		t.Fatalf("iterator saw %v, want %s", got, want)
	}
	got = got[:0]
	for ok := it.Last(); ok; ok = it.Prev() {
		got = append(got, string(it.Key()))
	}
	if fmt.Sprint(got) != "[k8 k6 k4 k2 k1 k0]" {
		t.Fatalf("reverse: %v", got)
	}
	if got := scan(t, tx, nil); got != "k1=t k2=c k3=t k4=c k6=c k8=c k9=c " {
		t.Fatalf("new iterator: %q", got)
	}
}

func TestIteratorBoundsAndSeeks(t *testing.T) {
	d := openTest(t, "", &Options{InMemory: true})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		d.Set([]byte(k), []byte(k))
	}
	if got := scan(t, d, &IterOptions{LowerBound: []byte("b"), UpperBound: []byte("d")}); got != "b=b c=c " {
		t.Fatalf("bounded scan: %q", got)
	}
	it, _ := d.NewIterator(&IterOptions{LowerBound: []byte("b"), UpperBound: []byte("e")})
	defer it.Close()
	check := func(ok bool, want string) {
		t.Helper()
		if want == "" {
			if ok || it.Valid() {
				t.Fatalf("want invalid, at %q", it.Key())
			}
			return
		}
		if !ok || string(it.Key()) != want {
			t.Fatalf("at %q (%v), want %q", it.Key(), ok, want)
		}
	}
	check(it.SeekGE([]byte("a")), "b")
	check(it.SeekGE([]byte("bb")), "c")
	check(it.Prev(), "b")
	check(it.Prev(), "")
	check(it.SeekLT([]byte("z")), "d")
	check(it.Next(), "")
	check(it.SeekLT([]byte("c")), "b")
	check(it.Next(), "c")
	check(it.Next(), "d")
	check(it.Prev(), "c")
	check(it.Last(), "d")
	check(it.First(), "b")
}

func TestOffsetsCommitWithData(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, nil)
	if _, err := d.CommittedOffset("p0"); !errors.Is(err, ErrNotFound) {
		t.Fatal("offset before any commit")
	}
	tx := d.Begin(nil)
	tx.Set([]byte("k"), []byte("v"))
	tx.SetOffset("p0", 41)
	tx.SetOffset("p0", 42)
	tx.SetOffset("p1", 7)
	if _, err := d.CommittedOffset("p0"); !errors.Is(err, ErrNotFound) {
		t.Fatal("offset visible before commit")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rb := d.Begin(nil)
	rb.SetOffset("p0", 99)
	rb.Rollback()
	want := map[string]int64{"p0": 42, "p1": 7}
	if got, err := d.CommittedOffsets(); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	if scan(t, d, nil) != "k=v " {
		t.Fatal("offsets leaked into the default keyspace")
	}
	d.Close()
	d = openTest(t, dir, nil)
	if got, err := d.CommittedOffsets(); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen offsets %v, want %v", got, want)
	}
	mustGet(t, d, "k", "v")
}

func TestUncommittedBytesLimits(t *testing.T) {
	d := openTest(t, "", &Options{InMemory: true, MaxUncommittedBytes: 64 << 10})
	t1, t2 := d.Begin(nil), d.Begin(nil)
	val := make([]byte, 1000)
	for i := 0; !d.CommitNeeded(); i++ {
		if err := t1.Set([]byte(fmt.Sprint("a", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	if d.UncommittedBytes() != t1.ApproximateBytes()+t2.ApproximateBytes() {
		t.Fatalf("UncommittedBytes %d != txn bytes %d", d.UncommittedBytes(), t1.ApproximateBytes())
	}
	var err error
	for i := 0; err == nil; i++ {
		err = t2.Set([]byte(fmt.Sprint("b", i)), val)
	}
	if !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("want ErrTxnTooLarge, got %v", err)
	}
	entries, bytes := t2.ApproximateEntries(), t2.ApproximateBytes()
	if err := t2.Set([]byte("b-big"), make([]byte, 200<<10)); !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("want ErrTxnTooLarge, got %v", err)
	}
	if t2.ApproximateEntries() != entries || t2.ApproximateBytes() != bytes {
		t.Fatal("a rejected write changed the transaction")
	}
	if d.UncommittedBytes() > 4*(64<<10) {
		t.Fatalf("uncommitted %d past the hard limit", d.UncommittedBytes())
	}
	if err := t2.Commit(); err != nil {
		t.Fatal(err)
	}
	t1.Rollback()
	if n := d.UncommittedBytes(); n != 0 {
		t.Fatalf("bytes not given back: %d", n)
	}
	if d.CommitNeeded() {
		t.Fatal("CommitNeeded with no open transaction")
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, nil)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	if err := d.Set(make([]byte, MaxKeySize+1), nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	tx := d.Begin(nil)
	if err := tx.Set([]byte("k"), make([]byte, MaxValueSize+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversize value: %v", err)
	}
	d.Set([]byte("kept"), []byte("v"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Get([]byte("kept")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if got, err := d.AppendValue([]byte("dst"), []byte("kept")); !errors.Is(err, ErrClosed) || string(got) != "dst" {
		t.Fatalf("AppendValue after Close: %q, %v", got, err)
	}
	if err := d.Set([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close: %v", err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
	var nilDB *DB
	if _, err := nilDB.Get(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("nil DB: %v", err)
	}
	if err := nilDB.Begin(nil).Set([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("nil DB txn: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := Open(file, nil); err == nil {
		t.Fatal("Open of a file succeeded")
	}
	d = openTest(t, dir, nil)
	mustGet(t, d, "kept", "v")
}

func TestConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, &Options{MemTableSize: 256 << 10})
	const workers, per = 8, 60
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				tx := d.Begin(nil)
				tx.Set([]byte(fmt.Sprintf("w%d/%03d", w, i)), bytes.Repeat([]byte{byte(i)}, 2000))
				tx.SetOffset(fmt.Sprint("w", w), int64(i))
				if err := tx.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	check := func(d *DB) {
		for w := 0; w < workers; w++ {
			if off, err := d.CommittedOffset(fmt.Sprint("w", w)); err != nil || off != per-1 {
				t.Fatalf("worker %d offset %d %v", w, off, err)
			}
			for i := 0; i < per; i++ {
				v, err := d.Get([]byte(fmt.Sprintf("w%d/%03d", w, i)))
				if err != nil || len(v) != 2000 || v[0] != byte(i) {
					t.Fatalf("w%d/%03d: %v", w, i, err)
				}
			}
		}
	}
	check(d)
	d.Close()
	check(openTest(t, dir, &Options{MemTableSize: 256 << 10}))
}

func TestMetricsAndAll(t *testing.T) {
	d := openTest(t, t.TempDir(), &Options{MemTableSize: 64 << 10})
	for i := 0; i < 100; i++ {
		if err := d.Set([]byte(fmt.Sprintf("k%03d", i)), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	tx := d.Begin(nil)
	tx.Set([]byte("x"), nil)
	defer tx.Rollback()
	m := d.Metrics()
	if m.Commits != 100 || m.Rotations == 0 || m.MemTables < 1 || m.OpenTxns != 1 || m.UncommittedBytes == 0 {
		t.Fatalf("metrics:\n%s", m)
	}
	must(t, d.Flush())
	m = d.Metrics()
	if m.MemTables != 1 || m.Flushes != m.Rotations || m.Levels[0].Tables+m.Levels[1].Tables == 0 || m.FlushBytes == 0 {
		t.Fatalf("metrics after Flush:\n%s", m)
	}
	it, _ := d.NewIterator(&IterOptions{UpperBound: []byte("k010")})
	defer it.Close()
	n := 0
	for k := range it.All() {
		if string(k) != fmt.Sprintf("k%03d", n) {
			t.Fatalf("All yielded %q at %d", k, n)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("All yielded %d keys", n)
	}
}

// TestLargeCommitDoesNotStormRotations checks that a commit larger than
// the memtable, while in flight, does not make every concurrent small
// commit rotate the memtable and WAL.
func TestLargeCommitDoesNotStormRotations(t *testing.T) {
	d := openTest(t, t.TempDir(), &Options{MemTableSize: 1 << 20, NoSync: true})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if err := d.Set([]byte(fmt.Sprintf("small/%d/%d", w, i)), make([]byte, 500)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	big := d.Begin(nil)
	for i := 0; i < 30000; i++ {
		big.Set([]byte(fmt.Sprintf("big/%06d", i)), make([]byte, 100))
	}
	if err := big.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// 160 KB of small commits and one ~7 MB commit need a few memtables,
	// not one per small commit.
	if m := d.Metrics(); m.Rotations > 6 {
		t.Fatalf("%d rotations:\n%s", m.Rotations, m)
	}
}

func TestLoggerReportsRecovery(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, nil)
	d.Set([]byte("k"), []byte("v"))
	d.Close()
	// A torn tail: garbage appended to the newest WAL.
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	f, _ := os.OpenFile(logs[len(logs)-1], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("torn"))
	f.Close()
	var buf bytes.Buffer
	d = openTest(t, dir, &Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	mustGet(t, d, "k", "v")
	if out := buf.String(); !strings.Contains(out, "torn tail") || !strings.Contains(out, "replayed") {
		t.Fatalf("log:\n%s", out)
	}
}

// TestMemTableBytesCountWhatIsHeld checks that the memtables' reported size
// covers the memory they really keep alive (zero-copy memtables keep whole
// batch buffers, spare capacity included), for single-write commits through
// DB.Set and through transactions.
func TestMemTableBytesCountWhatIsHeld(t *testing.T) {
	for _, viaTxn := range []bool{false, true} {
		// One memtable holds it all: nothing is flushed to tables.
		d := openTest(t, "", &Options{InMemory: true, MemTableSize: 64 << 20})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < 50_000; i++ {
			k := []byte(fmt.Sprintf("key%08d", i))
			if viaTxn {
				tx := d.Begin(nil)
				tx.Set(k, []byte("value"))
				must(t, tx.Commit())
			} else {
				must(t, d.Set(k, []byte("value")))
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		reported := d.Metrics().MemTableBytes
		if held > 2*reported {
			t.Errorf("via txn %v: the heap grew by %d KiB, the memtables report %d KiB", viaTxn, held>>10, reported>>10)
		}
		runtime.KeepAlive(d)
	}
}
