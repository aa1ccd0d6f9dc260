package sstable

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

var seed = flag.Int64("seed", 0, "seed for randomized tests (0 = time-based)")

// newRand returns the RNG of a randomized test and logs its seed.
func newRand(t testing.TB) *rand.Rand {
	s := *seed
	if s == 0 {
		s = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -seed=%d)", s, s)
	return rand.New(rand.NewSource(s))
}

// newRandFrom returns an RNG for a goroutine of a randomized test, seeded
// from the test's RNG.
func newRandFrom(s int64) *rand.Rand { return rand.New(rand.NewSource(s)) }

// memFile is a vfs.File over a byte slice, for tables built and damaged in
// memory. It is safe for concurrent ReadAt.
type memFile struct {
	mu      sync.Mutex
	data    []byte
	closed  bool
	syncs   int
	failOn  string // "write", "sync" or "close": that call fails
	readErr error  // returned by ReadAt when set
}

var _ vfs.File = (*memFile)(nil)

var errInjected = errors.New("injected failure")

func (f *memFile) Read(p []byte) (int, error) { return 0, io.EOF }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	if f.readErr != nil {
		return 0, f.readErr
	}
	if off < 0 || off > int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn == "write" {
		return 0, errInjected
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.failOn == "close" {
		return errInjected
	}
	return nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn == "sync" {
		return errInjected
	}
	f.syncs++
	return nil
}

func (f *memFile) Truncate(size int64) error { f.data = f.data[:size]; return nil }

func (f *memFile) Size() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.data)), nil
}

// kv is an entry of a test table.
type kv struct {
	key base.InternalKey
	val []byte
}

// ikey makes an internal key.
func ikey(uk string, seq uint64, kind base.Kind) base.InternalKey {
	return base.InternalKey{UserKey: []byte(uk), Trailer: base.MakeTrailer(seq, kind)}
}

// buildTable writes kvs (sorted) as table fileNum and returns its bytes.
func buildTable(t testing.TB, fileNum uint64, kvs []kv, o WriterOptions) []byte {
	t.Helper()
	f := &memFile{}
	w := NewWriter(f, fileNum, o)
	for _, e := range kvs {
		if err := w.Add(e.key, e.val); err != nil {
			t.Fatalf("Add(%s): %v", e.key, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if m := w.Metadata(); m.Size != uint64(len(f.data)) || m.NumEntries != uint64(len(kvs)) {
		t.Fatalf("metadata %+v for a %d-byte table of %d entries", m, len(f.data), len(kvs))
	}
	return f.data
}

// openBytes opens a table held in memory.
func openBytes(data []byte, fileNum uint64, o ReaderOptions) (*Reader, error) {
	return Open(&memFile{data: data}, fileNum, o)
}

// mustOpen opens a table held in memory or fails the test.
func mustOpen(t testing.TB, data []byte, fileNum uint64, o ReaderOptions) *Reader {
	t.Helper()
	r, err := openBytes(data, fileNum, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// randomKVs returns n sorted entries over about n/versions user keys of the
// given length range, with several versions per key and some deletions.
func randomKVs(rng *rand.Rand, n, maxVersions, maxKeyLen, maxValLen int) []kv {
	var kvs []kv
	seen := map[string]bool{}
	for len(kvs) < n {
		uk := make([]byte, 1+rng.Intn(maxKeyLen))
		for i := range uk {
			uk[i] = byte('a' + rng.Intn(4)) // small alphabet: long shared prefixes
		}
		if seen[string(uk)] {
			continue
		}
		seen[string(uk)] = true
		for v := 1 + rng.Intn(maxVersions); v > 0 && len(kvs) < n; v-- {
			kind := base.KindSet
			if rng.Intn(5) == 0 {
				kind = base.KindDelete
			}
			var val []byte
			if kind == base.KindSet {
				val = make([]byte, rng.Intn(maxValLen+1))
				rng.Read(val)
			}
			seq := uint64(rng.Int63n(1 << 20))
			kvs = append(kvs, kv{key: base.InternalKey{UserKey: uk, Trailer: base.MakeTrailer(seq, kind)}, val: val})
		}
	}
	sortKVs(kvs)
	return dedupTrailers(kvs)
}

// sortKVs sorts entries in internal-key order.
func sortKVs(kvs []kv) {
	slices.SortFunc(kvs, func(a, b kv) int { return base.CompareInternal(a.key, b.key) })
}

// dedupTrailers drops entries equal to the previous one's key.
func dedupTrailers(kvs []kv) []kv {
	return slices.CompactFunc(kvs, func(a, b kv) bool { return base.CompareInternal(a.key, b.key) == 0 })
}

// modelGet is Get computed over the sorted entries.
func modelGet(kvs []kv, uk []byte, seq uint64) (kv, bool) {
	target := base.InternalKey{UserKey: uk, Trailer: base.MakeTrailer(min(seq, base.MaxSeqNum), base.KindMax)}
	i, _ := slices.BinarySearchFunc(kvs, target, func(e kv, t base.InternalKey) int { return base.CompareInternal(e.key, t) })
	if i < len(kvs) && bytes.Equal(kvs[i].key.UserKey, uk) {
		return kvs[i], true
	}
	return kv{}, false
}

// sameEntry reports whether the iterator's entry equals e.
func sameEntry(it *Iter, e kv) error {
	if k := it.Key(); base.CompareInternal(k, e.key) != 0 || !bytes.Equal(it.Value(), e.val) {
		return fmt.Errorf("got %s=%q, want %s=%q", k, it.Value(), e.key, e.val)
	}
	return nil
}
