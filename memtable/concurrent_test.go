package memtable

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// TestConcurrentReaders runs one writer adding small batches while four
// readers iterate both ways, seek and Get. Every reader pass must see a
// sorted sequence containing every entry added before the pass began.
func TestConcurrentReaders(t *testing.T) {
	rng := newRand(t)
	const n = 20000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = binary.BigEndian.AppendUint64(nil, rng.Uint64())
	}
	m := New(8 << 20)
	var published atomic.Int64
	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readLoop(m, keys, &published, done, r)
		}()
	}
	for i := 0; i < n; {
		batch := min(n-i, 1+rng.Intn(8)) // small buffers make the directory grow often
		var buf []byte
		for _, k := range keys[i : i+batch] {
			buf = append(append(buf, k...), k...) // the value repeats the key
		}
		ref := m.Retain(buf)
		for j := range batch {
			off := uint32(16 * j)
			if err := m.Add(ref, off, 8, off+8, 8, base.MakeTrailer(uint64(i+j), base.KindSet)); err != nil {
				t.Fatal(err)
			}
			published.Store(int64(i + j + 1))
		}
		i += batch
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

// readLoop checks passes until done is closed (and at least a few passes).
func readLoop(m *MemTable, keys [][]byte, published *atomic.Int64, done chan struct{}, r int) error {
	var seen [][]byte
	for pass := 0; ; pass++ {
		select {
		case <-done:
			if pass >= 3 {
				return nil
			}
		default:
		}
		var err error
		seen, err = readPass(m, keys, published, seen[:0], pass+r)
		if err != nil {
			return fmt.Errorf("reader %d pass %d: %w", r, pass, err)
		}
	}
}

// readPass walks the table forward or backward, then checks that the walk
// holds every key published before it began, that Get finds them, and that
// seeks land on them.
func readPass(m *MemTable, keys [][]byte, published *atomic.Int64, seen [][]byte, pass int) ([][]byte, error) {
	want := keys[:published.Load()]
	var it Iter
	m.InitIter(&it)
	forward := pass%2 == 0
	ok := it.First()
	if !forward {
		ok = it.Last()
	}
	for ; ok; ok = step(&it, forward) {
		k := it.Key().UserKey
		if !bytes.Equal(it.Value(), k) {
			return seen, fmt.Errorf("value %x under key %x", it.Value(), k)
		}
		seen = append(seen, k)
	}
	if !forward {
		for i, j := 0, len(seen)-1; i < j; i, j = i+1, j-1 {
			seen[i], seen[j] = seen[j], seen[i]
		}
	}
	for i := 1; i < len(seen); i++ {
		if bytes.Compare(seen[i-1], seen[i]) >= 0 {
			return seen, fmt.Errorf("walk (forward %v) out of order: %x then %x", forward, seen[i-1], seen[i])
		}
	}
	for i, k := range want {
		j := sort.Search(len(seen), func(j int) bool { return bytes.Compare(seen[j], k) >= 0 })
		if j == len(seen) || !bytes.Equal(seen[j], k) {
			return seen, fmt.Errorf("walk (forward %v, %d keys) misses key %d of %d published", forward, len(seen), i, len(want))
		}
		if i%97 != 0 {
			continue
		}
		if v, _, found := m.Get(k, math.MaxUint64); !found || !bytes.Equal(v, k) {
			return seen, fmt.Errorf("Get misses published key %d", i)
		}
		if !it.SeekGE(k) || !bytes.Equal(it.Key().UserKey, k) {
			return seen, fmt.Errorf("SeekGE misses published key %d", i)
		}
		if it.SeekLT(k) && bytes.Compare(it.Key().UserKey, k) >= 0 {
			return seen, fmt.Errorf("SeekLT(%x) gave %x", k, it.Key().UserKey)
		}
	}
	return seen, nil
}

func step(it *Iter, forward bool) bool {
	if forward {
		return it.Next()
	}
	return it.Prev()
}
