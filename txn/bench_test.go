package txn

import (
	"math/rand/v2"
	"testing"
)

const benchTxnSize = 10000 // writes per overlay before it is reset

// startCPU resets the timer and starts measuring the process's CPU time;
// the returned function reports it as cpu-ns/op (for iteration benchmarks
// an op is a key). Run with GOMAXPROCS=1 for a
// figure that ignores the noise of a shared machine.
func startCPU(b *testing.B) func() {
	b.ReportAllocs()
	b.ResetTimer()
	c0 := processCPU()
	return func() {
		b.StopTimer()
		if c := processCPU() - c0; c > 0 {
			b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// benchKeys returns n distinct random 16-byte keys and a 100-byte value.
func benchKeys(n int) (keys [][]byte, value []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for len(keys) < n {
		k := make([]byte, 16)
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, k)
		}
	}
	value = make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	return keys, value
}

func filledOverlay(b *testing.B, keys [][]byte, value []byte) *Overlay {
	o := NewOverlay()
	for i, k := range keys {
		if err := o.Set(k, value, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
	return o
}

// BenchmarkOverlaySet writes distinct 16-byte keys with 100-byte values,
// resetting the overlay every 10,000 writes (the cost is amortized).
func BenchmarkOverlaySet(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := NewOverlay()
	b.SetBytes(int64(len(keys[0]) + len(value)))
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		j := i % benchTxnSize
		if j == 0 && i > 0 {
			o.Reset()
		}
		if err := o.Set(keys[j], value, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOverlayOverwrite rewrites the keys of a 10,000-key overlay
// (with compactions as dead bytes pile up).
func BenchmarkOverlayOverwrite(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		if err := o.Set(keys[i%benchTxnSize], value, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOverlaySetAfterSnapshot takes a snapshot before every write, the
// worst case of copy-on-write (an iterator opened between any two writes).
func BenchmarkOverlaySetAfterSnapshot(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		o.Snapshot()
		if err := o.Set(keys[i%benchTxnSize], value, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOverlayGet(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		if _, _, found := o.Get(keys[i%benchTxnSize]); !found {
			b.Fatal("miss")
		}
	}
}

func BenchmarkOverlaySharedGet(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		if _, _, _, found := o.SharedGet(keys[i%benchTxnSize]); !found {
			b.Fatal("miss")
		}
	}
}

// BenchmarkSnapshotIter scans a 10,000-entry snapshot; one op is one key.
func BenchmarkSnapshotIter(b *testing.B) {
	benchIter(b, true)
}

// BenchmarkSnapshotIterReverse scans it backwards.
func BenchmarkSnapshotIterReverse(b *testing.B) {
	benchIter(b, false)
}

func benchIter(b *testing.B, forward bool) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	it := o.Snapshot().NewIter()
	defer startCPU(b)()
	ok := false
	for i := 0; i < b.N; i++ {
		switch {
		case !ok && forward:
			ok = it.First()
		case !ok:
			ok = it.Last()
		case forward:
			ok = it.Next()
		default:
			ok = it.Prev()
		}
		if ok && len(it.Key()) != 16 {
			b.Fatal("bad key")
		}
	}
}

// BenchmarkIterSeekGE seeks to random existing keys of a 10,000-entry
// snapshot, then steps once.
func BenchmarkIterSeekGE(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	o := filledOverlay(b, keys, value)
	it := o.Snapshot().NewIter()
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		if !it.SeekGE(keys[(i*7919)%benchTxnSize]) {
			b.Fatal("miss")
		}
		it.Next()
	}
}

// BenchmarkBatchSet appends 16-byte keys with 100-byte values to a plain
// batch, resetting it every 10,000 writes.
func BenchmarkBatchSet(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	var batch Batch
	b.SetBytes(int64(len(keys[0]) + len(value)))
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		j := i % benchTxnSize
		if j == 0 && i > 0 {
			batch.Reset()
		}
		if err := batch.Set(keys[j], value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchDecode decodes a 10,000-entry batch; one op is one entry.
func BenchmarkBatchDecode(b *testing.B) {
	keys, value := benchKeys(benchTxnSize)
	var batch Batch
	for _, k := range keys {
		_ = batch.Set(k, value)
	}
	repr := batch.Repr()
	defer startCPU(b)()
	var r Reader
	for i := 0; i < b.N; i++ {
		if i%benchTxnSize == 0 {
			r, _ = NewReader(repr)
		}
		if _, ok, err := r.Next(); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
