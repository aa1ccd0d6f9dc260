package memtable

import (
	"encoding/binary"
	"math/rand"
	"slices"
	"sync"
	"testing"
)

// Benchmark entries are 16-byte keys (8 random bytes, then the index, so
// keys are unique) with 16-byte values, laid out key, value, key, value in
// one retained buffer as a committed batch would hold them.
const (
	benchEntry = 32
	benchBase  = 1 << 20 // entries of the "large table"
)

// benchKeys returns a buffer of n entries with random keys, optionally in
// ascending key order.
func benchKeys(rng *rand.Rand, n int, sorted bool) []byte {
	hi := make([]uint64, n)
	for i := range hi {
		hi[i] = rng.Uint64()
	}
	if sorted {
		slices.Sort(hi)
	}
	buf := make([]byte, 0, n*benchEntry)
	for i, h := range hi {
		buf = binary.BigEndian.AppendUint64(buf, h)
		buf = binary.BigEndian.AppendUint64(buf, uint64(i))
		buf = append(buf, "value-0123456789"...)
	}
	return buf
}

// addAll adds every entry of buf (retained as ref) at seq.
func addAll(tb testing.TB, m *MemTable, ref BufRef, n int, seq uint64) {
	for i := range n {
		off := uint32(i * benchEntry)
		if err := m.Add(ref, off, 16, off+16, 16, seq<<8|1); err != nil {
			tb.Fatal(err)
		}
	}
}

// largeTable returns a table of benchBase entries (added in ascending order,
// which is fast) with room for n more.
func largeTable(b *testing.B, n int) *MemTable {
	m := New(int64(benchBase+n) * (benchEntry + 64))
	buf := benchKeys(rand.New(rand.NewSource(1)), benchBase, true)
	addAll(b, m, m.Retain(buf), benchBase, 1)
	return m
}

// benchAdd times adding b.N entries to a large table; batch > 0 sorts each
// run of batch entries, as a committed batch would be; batch < 0 sorts all.
func benchAdd(b *testing.B, batch int) {
	b.ReportAllocs()
	m := largeTable(b, b.N)
	buf := benchKeys(rand.New(rand.NewSource(2)), b.N, batch < 0)
	if batch > 0 {
		for i := 0; i < b.N; i += batch {
			sortEntries(buf[i*benchEntry : min(i+batch, b.N)*benchEntry])
		}
	}
	ref := m.Retain(buf)
	b.ResetTimer()
	addAll(b, m, ref, b.N, 2)
}

// sortEntries sorts the 32-byte entries of buf by key.
func sortEntries(buf []byte) {
	es := make([][benchEntry]byte, len(buf)/benchEntry)
	for i := range es {
		copy(es[i][:], buf[i*benchEntry:])
	}
	slices.SortFunc(es, func(a, b [benchEntry]byte) int { return slices.Compare(a[:16], b[:16]) })
	for i := range es {
		copy(buf[i*benchEntry:], es[i][:])
	}
}

func BenchmarkAddRandom(b *testing.B)         { benchAdd(b, 0) }
func BenchmarkAddSortedBatch100(b *testing.B) { benchAdd(b, 100) }
func BenchmarkAddAscending(b *testing.B)      { benchAdd(b, -1) }

var readTable struct {
	once sync.Once
	m    *MemTable
	keys [][]byte
}

// readFixture returns a table of benchBase entries added in random order and
// its keys.
func readFixture(b *testing.B) (*MemTable, [][]byte) {
	readTable.once.Do(func() {
		buf := benchKeys(rand.New(rand.NewSource(3)), benchBase, false)
		m := New(benchBase * (benchEntry + 64))
		addAll(b, m, m.Retain(buf), benchBase, 1)
		keys := make([][]byte, benchBase)
		for i := range keys {
			keys[i] = buf[i*benchEntry : i*benchEntry+16]
		}
		rand.New(rand.NewSource(4)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		readTable.m, readTable.keys = m, keys
	})
	return readTable.m, readTable.keys
}

func BenchmarkGet1M(b *testing.B) {
	m, keys := readFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, ok := m.Get(keys[i%len(keys)], 1); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkSeekGE1M(b *testing.B) {
	m, keys := readFixture(b)
	var it Iter
	m.InitIter(&it)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if !it.SeekGE(keys[i%len(keys)]) {
			b.Fatal("miss")
		}
	}
}

// BenchmarkNext1M reports the cost of one Next (ns per key).
func BenchmarkNext1M(b *testing.B) {
	m, _ := readFixture(b)
	var it Iter
	m.InitIter(&it)
	it.First()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !it.Next() {
			it.First()
		}
	}
}

// BenchmarkPrev1M reports the cost of one Prev (ns per key).
func BenchmarkPrev1M(b *testing.B) {
	m, _ := readFixture(b)
	var it Iter
	m.InitIter(&it)
	it.Last()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !it.Prev() {
			it.Last()
		}
	}
}
