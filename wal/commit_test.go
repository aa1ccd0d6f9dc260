package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestFlushAndSync checks the I/O each Flush does, and SyncedOffset.
func TestFlushAndSync(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f, 1)
	end1, _ := w.Append([]byte("one"))
	end2, _ := w.Append([]byte("two"))
	if end2 != w.Size() || end1 != 30 || end2 != 60 {
		t.Fatalf("ends %d %d, Size %d", end1, end2, w.Size())
	}
	steps := []struct {
		end            int64
		sync           bool
		writes, syncs  int
		synced         int64
		fileLen, durLn int
	}{
		{end1, false, 1, 0, 0, 60, 0}, // one write takes everything appended
		{end2, false, 1, 0, 0, 60, 0}, // already written: no I/O
		{end1, true, 1, 1, 60, 60, 60},
		{end2, true, 1, 1, 60, 60, 60},
		{0, true, 1, 1, 60, 60, 60},
	}
	for i, s := range steps {
		if err := w.Flush(s.end, s.sync); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		writes, syncs, _ := f.counts()
		if writes != s.writes || syncs != s.syncs || w.SyncedOffset() != s.synced ||
			len(f.bytes()) != s.fileLen || f.durableLen() != s.durLn {
			t.Fatalf("step %d: writes %d syncs %d synced %d len %d durable %d, want %+v",
				i, writes, syncs, w.SyncedOffset(), len(f.bytes()), f.durableLen(), s)
		}
	}
	if err := w.Flush(w.Size()+1, false); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Fatalf("Flush beyond Size: %v", err)
	}
}

// TestClose checks Close, its idempotence and the writer after it.
func TestClose(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f, 1)
	end, _ := w.Append([]byte("rec"))
	for range 2 {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	writes, syncs, closes := f.counts()
	if writes != 1 || syncs != 1 || closes != 1 || f.durableLen() != int(end) {
		t.Fatalf("writes %d syncs %d closes %d durable %d", writes, syncs, closes, f.durableLen())
	}
	if _, err := w.Append([]byte("late")); err != ErrClosed {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := w.Flush(end, true); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
	if w.Size() != end || w.SyncedOffset() != end {
		t.Fatalf("Size %d SyncedOffset %d, want %d", w.Size(), w.SyncedOffset(), end)
	}
	if writes2, syncs2, _ := f.counts(); writes2 != writes || syncs2 != syncs {
		t.Fatal("I/O after Close")
	}

	// A file Close error is reported, by every Close.
	f = &memFile{closeErr: errors.New("close failed")}
	w = NewWriter(f, 2)
	for range 2 {
		if err := w.Close(); !errors.Is(err, f.closeErr) {
			t.Fatalf("Close: %v", err)
		}
	}
}

var errInjected = errors.New("injected I/O error")

// TestPoison checks that a failed write, short write or sync poisons the
// writer: the error reaches the flusher, every later Append and Flush, and
// Close; the sync is never retried and the file is still closed.
func TestPoison(t *testing.T) {
	tests := []struct {
		name string
		file *memFile
		want error
	}{
		{"write", &memFile{writeErr: errInjected}, errInjected},
		{"short write", &memFile{shortWrite: true}, io.ErrShortWrite},
		{"sync", &memFile{syncErr: errInjected}, errInjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file
			w := NewWriter(f, 3)
			end, _ := w.Append([]byte("doomed"))
			if err := w.Flush(end, true); !errors.Is(err, tt.want) {
				t.Fatalf("Flush: %v, want %v", err, tt.want)
			}
			_, syncs, _ := f.counts()
			if _, err := w.Append([]byte("more")); !errors.Is(err, tt.want) {
				t.Fatalf("Append after failure: %v", err)
			}
			for _, sync := range []bool{false, true} {
				if err := w.Flush(end, sync); !errors.Is(err, tt.want) {
					t.Fatalf("Flush(sync=%v) after failure: %v", sync, err)
				}
				if err := w.Flush(0, sync); !errors.Is(err, tt.want) {
					t.Fatalf("Flush(0) after failure: %v", err)
				}
			}
			if err := w.Close(); !errors.Is(err, tt.want) {
				t.Fatalf("Close: %v", err)
			}
			if _, syncs2, closes := f.counts(); syncs2 != syncs || closes != 1 {
				t.Fatalf("syncs %d then %d (retried), closes %d", syncs, syncs2, closes)
			}
			if f.durableLen() != 0 {
				t.Fatalf("durable %d bytes after a failure", f.durableLen())
			}
		})
	}
}

// gate blocks the first call of a File hook until it is opened, and tells
// when that call has started.
type gate struct {
	once    sync.Once
	started chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) hook() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.started)
		<-g.open
	}
}

// waitSize waits until w has n bytes appended.
func waitSize(w *Writer, n int64) {
	for w.Size() < n {
		runtime.Gosched()
	}
}

// TestPoisonWaiters fails the write of a group while committers wait: each
// of them gets the error.
func TestPoisonWaiters(t *testing.T) {
	g := newGate()
	f := &memFile{onWrite: g.hook, writeErr: errInjected}
	w := NewWriter(f, 4)
	const n = 8
	errs := make(chan error, n)
	commit := func() {
		end, err := w.Append([]byte("rec"))
		if err == nil {
			err = w.Flush(end, true)
		}
		errs <- err
	}
	go commit()
	<-g.started // the leader is inside Write
	for range n - 1 {
		go commit()
	}
	waitSize(w, n*(headerSize+3))
	close(g.open)
	for range n {
		if err := <-errs; !errors.Is(err, errInjected) {
			t.Fatalf("committer: %v, want the write error", err)
		}
	}
	if writes, syncs, _ := f.counts(); writes != 1 || syncs != 0 {
		t.Fatalf("writes %d syncs %d, want 1 0", writes, syncs)
	}
}

// TestGroupCommit runs n syncing committers while the first one's write is
// held: the rest share one write and one sync.
func TestGroupCommit(t *testing.T) {
	g := newGate()
	f := &memFile{onWrite: g.hook}
	w := NewWriter(f, 5)
	const n = 16
	var wg sync.WaitGroup
	commit := func(i int) {
		defer wg.Done()
		end, err := w.Append([]byte{byte(i)})
		if err == nil {
			err = w.Flush(end, true)
		}
		if err != nil {
			t.Error(err)
		}
		if f.durableLen() < int(end) {
			t.Errorf("Flush(%d, true) returned with %d bytes durable", end, f.durableLen())
		}
	}
	wg.Add(n)
	go commit(0)
	<-g.started
	for i := 1; i < n; i++ {
		go commit(i)
	}
	waitSize(w, n*(headerSize+1))
	close(g.open)
	wg.Wait()
	writes, syncs, _ := f.counts()
	t.Logf("%d syncing committers: %d writes, %d syncs", n, writes, syncs)
	if writes != 2 || syncs != 2 {
		t.Fatalf("%d writes and %d syncs for %d committers, want 2 and 2", writes, syncs, n)
	}
	res := readLog(bytes.NewReader(f.bytes()), 5, false)
	if res.err != io.EOF || len(res.recs) != n {
		t.Fatalf("read back %d records, %v", len(res.recs), res.err)
	}
}

// TestAppendDuringWrite checks that Append and Size do not wait for a write
// in flight, and that the bytes appended meanwhile go in the next write.
func TestAppendDuringWrite(t *testing.T) {
	g := newGate()
	f := &memFile{onWrite: g.hook}
	w := NewWriter(f, 6)
	end1, _ := w.Append([]byte("first"))
	done := make(chan error)
	go func() { done <- w.Flush(end1, false) }()
	<-g.started
	end2, err := w.Append([]byte("second"))
	if err != nil || w.Size() != end2 {
		t.Fatalf("Append during write: %v, Size %d want %d", err, w.Size(), end2)
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(end2, false); err != nil {
		t.Fatal(err)
	}
	if writes, _, _ := f.counts(); writes != 2 || int64(len(f.bytes())) != end2 {
		t.Fatalf("writes %d, file %d bytes, want 2 and %d", writes, len(f.bytes()), end2)
	}
}

// TestConcurrentCommits has many goroutines commit records of random sizes
// (some syncing, some not) at once; the log then holds every record, each
// goroutine's in its order, and each synced Flush found its bytes durable.
func TestConcurrentCommits(t *testing.T) {
	rng := newRand(t)
	const goroutines, perG = 16, 60
	sizes := make([][]int, goroutines)
	for g := range sizes {
		for range perG {
			n := 8 + rng.Intn(200)
			if rng.Intn(10) == 0 {
				n = rng.Intn(3 * blockSize)
			}
			sizes[g] = append(sizes[g], n)
		}
	}
	f := &memFile{}
	w := NewWriter(f, 9)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, n := range sizes[g] {
				rec := make([]byte, n)
				if n >= 8 {
					binary.LittleEndian.PutUint32(rec, uint32(g))
					binary.LittleEndian.PutUint32(rec[4:], uint32(i))
				}
				end, err := w.Append(rec)
				sync := (g+i)%3 != 0
				if err == nil {
					err = w.Flush(end, sync)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if sync && f.durableLen() < int(end) {
					t.Errorf("synced Flush(%d) returned with %d bytes durable", end, f.durableLen())
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkConcurrentLog(t, f.bytes(), sizes)
	writes, syncs, _ := f.counts()
	t.Logf("%d commits: %d writes, %d syncs", goroutines*perG, writes, syncs)
}

// checkConcurrentLog checks that data holds every record of sizes, each
// goroutine's in order.
func checkConcurrentLog(t *testing.T, data []byte, sizes [][]int) {
	res := readLog(bytes.NewReader(data), 9, false)
	if res.err != io.EOF {
		t.Fatal(res.err)
	}
	next := make([]int, len(sizes))
	total := 0
	for _, rec := range res.recs {
		if len(rec) < 8 {
			total++
			continue
		}
		g := binary.LittleEndian.Uint32(rec)
		i := binary.LittleEndian.Uint32(rec[4:])
		if int(g) >= len(sizes) || int(i) != next[g] || len(rec) != sizes[g][i] {
			t.Fatalf("record of goroutine %d #%d (%d bytes) out of order", g, i, len(rec))
		}
		next[g]++
		total++
	}
	want := 0
	for g := range sizes {
		want += len(sizes[g])
	}
	if total != want {
		t.Fatalf("%d records, want %d", total, want)
	}
}

// TestNoAllocs checks that a steady-state commit allocates nothing, with
// Append and with AppendParts.
func TestNoAllocs(t *testing.T) {
	rec := make([]byte, 100)
	parts := [][]byte{make([]byte, 12), nil, make([]byte, 300), make([]byte, 5000)}
	for name, appendRec := range map[string]func(*Writer) (int64, error){
		"Append":      func(w *Writer) (int64, error) { return w.Append(rec) },
		"AppendParts": func(w *Writer) (int64, error) { return w.AppendParts(parts) },
	} {
		w := NewWriter(nullFile{}, 1)
		commit := func() {
			end, err := appendRec(w)
			if err == nil {
				err = w.Flush(end, true)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 100 {
			commit()
		}
		if n := testing.AllocsPerRun(1000, commit); n != 0 {
			t.Fatalf("%s: %v allocations per commit, want 0", name, n)
		}
	}
}
