package lsm

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// benchKey writes the key of n into buf: 16 bytes, so that keys sort in
// numeric order.
func benchKey(buf []byte, n uint64) []byte {
	buf = append(buf[:0], "key-"...)
	return binary.BigEndian.AppendUint64(append(buf, "0000"...), n)
}

// scramble spreads consecutive numbers over the key space.
func scramble(i uint64) uint64 { return mix(i) }

var benchValue = make([]byte, 100)

func benchDB(b *testing.B, o *Options) *DB {
	b.Helper()
	d, err := Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// loadDB commits n keys 0..n-1 in transactions of 1,000, in key order.
func loadDB(b *testing.B, d *DB, n int) {
	loadKeys(b, d, n, func(i int) uint64 { return uint64(i) })
}

// loadKeys commits the keys keyOf(0..n-1) in transactions of 1,000.
func loadKeys(b *testing.B, d *DB, n int, keyOf func(i int) uint64) {
	b.Helper()
	var kb []byte
	for i := 0; i < n; {
		t := d.Begin(nil)
		for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
			kb = benchKey(kb, keyOf(i))
			if err := t.Set(kb, benchValue); err != nil {
				b.Fatal(err)
			}
		}
		if err := t.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTxnSet(b *testing.B) {
	d := benchDB(b, &Options{InMemory: true, MaxUncommittedBytes: 1 << 30})
	t := d.Begin(nil)
	var kb []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%100_000 == 0 && i > 0 {
			b.StopTimer()
			t.Rollback()
			t = d.Begin(nil)
			b.StartTimer()
		}
		kb = benchKey(kb, scramble(uint64(i)))
		if err := t.Set(kb, benchValue); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	t.Rollback()
}

func BenchmarkTxnGet(b *testing.B) {
	d := benchDB(b, &Options{InMemory: true})
	const n = 100_000
	loadDB(b, d, n)
	t := d.Begin(nil)
	var kb []byte
	for i := 0; i < 10_000; i++ {
		t.Set(benchKey(kb, uint64(n+i)), benchValue)
	}
	overlayKey := func(i int) uint64 { return uint64(n + i%10_000) }
	storeKey := func(i int) uint64 { return scramble(uint64(i)) % n }
	b.Run("overlay-hit", func(b *testing.B) { benchGets(b, t, overlayKey, false) })
	b.Run("store-hit", func(b *testing.B) { benchGets(b, t, storeKey, false) })
	b.Run("overlay-hit-append", func(b *testing.B) { benchGets(b, t, overlayKey, true) })
	b.Run("store-hit-append", func(b *testing.B) { benchGets(b, t, storeKey, true) })
}

func BenchmarkDBGet(b *testing.B) {
	d := benchDB(b, &Options{InMemory: true})
	const n = 1_000_000
	loadDB(b, d, n)
	key := func(i int) uint64 { return scramble(uint64(i)) % n }
	b.Run("copy", func(b *testing.B) { benchGets(b, d, key, false) })
	b.Run("append", func(b *testing.B) { benchGets(b, d, key, true) })
}

// BenchmarkDBGetTables reads 1M keys from tables (compacted into one level,
// the block cache holding them all after warm-up) and misses (keys the
// Bloom filters rule out).
func BenchmarkDBGetTables(b *testing.B) {
	d := benchDB(b, &Options{NoSync: true})
	const n = 1_000_000
	loadDB(b, d, n)
	if err := d.Compact(); err != nil {
		b.Fatal(err)
	}
	key := func(i int) uint64 { return scramble(uint64(i)) % n }
	b.Run("hit", func(b *testing.B) { benchGets(b, d, key, true) })
	b.Run("miss", func(b *testing.B) {
		var kb, vb []byte
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			kb = benchKey(kb, n+scramble(uint64(i))%n)
			if _, err := d.AppendValue(vb[:0], kb); err != ErrNotFound {
				b.Fatal(err)
			}
		}
	})
}

// valueAppender is a reader with the allocation-free read.
type valueAppender interface {
	Reader
	AppendValue(dst, key []byte) ([]byte, error)
}

// benchGets reads the keys keyOf(0..b.N-1), with Get (a copy per read) or
// with AppendValue into one reused buffer.
func benchGets(b *testing.B, r valueAppender, keyOf func(int) uint64, appendValue bool) {
	var kb, vb []byte
	var err error
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		kb = benchKey(kb, keyOf(i))
		if appendValue {
			vb, err = r.AppendValue(vb[:0], kb)
		} else {
			_, err = r.Get(kb)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommit commits transactions of 100 and 10,000 writes of 100-byte
// values to a WAL on disk, with and without fdatasync; writes/s is the
// figure to compare.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{100, 10_000} {
		for _, noSync := range []bool{false, true} {
			b.Run(fmt.Sprintf("writes=%d/nosync=%v", size, noSync), func(b *testing.B) {
				d := benchDB(b, &Options{NoSync: noSync})
				var kb []byte
				next := uint64(0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t := d.Begin(nil)
					for j := 0; j < size; j++ {
						kb = benchKey(kb, scramble(next))
						next++
						t.Set(kb, benchValue)
					}
					t.SetOffset("p", int64(i))
					if err := t.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}

// BenchmarkIndexedBatch is the stream-processor commit: 100 writes per
// transaction with a read through the transaction for every tenth, over a
// store that already holds the keys read. Pebble does about 263k writes/s
// on this machine class (batch with index, WAL without sync).
func BenchmarkIndexedBatch(b *testing.B) {
	for _, noSync := range []bool{true, false} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			d := benchDB(b, &Options{NoSync: noSync})
			const n = 100_000
			loadDB(b, d, n)
			var kb []byte
			next := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := d.Begin(nil)
				for j := 0; j < 100; j++ {
					kb = benchKey(kb, scramble(next)%n)
					next++
					if j%10 == 0 {
						t.Get(kb)
					}
					t.Set(kb, benchValue)
				}
				if err := t.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkTxnIterate scans a transaction of 10,000 writes merged over a
// store of 1,000,000 keys. Pebble scans this at about 6.6M keys/s on this
// machine class. "sequential" loads the store in key order (memtable nodes
// and key bytes lie in key order); "random" loads it in scrambled order, the
// worst case for a memtable scan.
func BenchmarkTxnIterate(b *testing.B) {
	for _, order := range []string{"sequential", "random"} {
		b.Run(order, func(b *testing.B) {
			d := benchDB(b, &Options{InMemory: true})
			const n = 1_000_000
			if order == "sequential" {
				loadDB(b, d, n)
			} else {
				loadDBScrambled(b, d, n)
			}
			t := d.Begin(nil)
			var kb []byte
			for i := 0; i < 10_000; i++ {
				t.Set(benchKey(kb, scramble(uint64(i))%(2*n)), benchValue)
			}
			b.ReportAllocs()
			b.ResetTimer()
			keys := 0
			for i := 0; i < b.N; i++ {
				it, _ := t.NewIterator(nil)
				for ok := it.First(); ok; ok = it.Next() {
					keys++
				}
				it.Close()
			}
			b.ReportMetric(float64(keys)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// loadDBScrambled commits the keys 0..n-1 in a scrambled order.
func loadDBScrambled(b *testing.B, d *DB, n int) {
	b.Helper()
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := n - 1; i > 0; i-- {
		j := int(scramble(uint64(i)) % uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	loadKeys(b, d, n, func(i int) uint64 { return uint64(perm[i]) })
}

// BenchmarkSmallCommit commits one write, through DB.Set and through a
// transaction, to an in-memory store (no WAL I/O): the allocations are the
// commit path's own.
func BenchmarkSmallCommit(b *testing.B) {
	d := benchDB(b, &Options{InMemory: true})
	var kb []byte
	b.Run("DB.Set", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			kb = benchKey(kb, scramble(uint64(i)))
			if err := d.Set(kb, benchValue); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Txn", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			kb = benchKey(kb, scramble(uint64(i)))
			t := d.Begin(nil)
			t.Set(kb, benchValue)
			t.SetOffset("p", int64(i))
			if err := t.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
