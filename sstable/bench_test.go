package sstable

import (
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// discardFile is a vfs.File that drops what is written.
type discardFile struct{ memFile }

func (f *discardFile) Write(p []byte) (int, error) { return len(p), nil }

// benchKey writes the user key of entry i: namespace 1, then 16 bytes.
func benchKey(dst []byte, i int) []byte {
	dst = append(dst[:0], "\x01user000000000000"...)
	for j := len(dst) - 1; i > 0; j, i = j-1, i/10 {
		dst[j] = byte('0' + i%10)
	}
	return dst
}

// BenchmarkWriterAdd adds 100-byte values under 17-byte keys.
func BenchmarkWriterAdd(b *testing.B) {
	for name, c := range codecs {
		b.Run(name, func(b *testing.B) {
			w := NewWriter(&discardFile{}, 1, WriterOptions{Compression: c})
			val := make([]byte, 100)
			for i := range val {
				val[i] = byte(i % 7) // compressible
			}
			var key []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(val) + 17))
			for i := 0; b.Loop(); i++ {
				key = benchKey(key, i)
				binary.LittleEndian.PutUint32(val, uint32(i))
				if err := w.Add(base.InternalKey{UserKey: key, Trailer: base.MakeTrailer(uint64(i), base.KindSet)}, val); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

const benchKeys = 100000

// benchReader returns a Reader over benchKeys entries (even i only, so that
// odd keys are absent) with all its blocks in the cache.
func benchReader(b *testing.B, o WriterOptions) *Reader {
	b.Helper()
	f := &memFile{}
	w := NewWriter(f, 1, o)
	var key []byte
	val := make([]byte, 100)
	for i := 0; i < 2*benchKeys; i += 2 {
		key = benchKey(key, i)
		if err := w.Add(base.InternalKey{UserKey: key, Trailer: base.MakeTrailer(uint64(i+1), base.KindSet)}, val); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	r, err := Open(&memFile{data: f.data}, 1, ReaderOptions{Cache: NewCache(64 << 20)})
	if err != nil {
		b.Fatal(err)
	}
	it := r.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
	}
	it.Close()
	return r
}

// BenchmarkGet looks up present keys, absent keys the filter rejects, and
// absent keys in a table without a filter, all blocks cached; and present
// keys in a table without a cache (read, checksum, decode, check).
func BenchmarkGet(b *testing.B) {
	r := benchReader(b, WriterOptions{})
	defer r.Close()
	nofilter := benchReader(b, WriterOptions{FilterBitsPerKey: -1})
	defer nofilter.Close()
	uncached := benchReader(b, WriterOptions{})
	uncached.cache = nil
	defer uncached.Close()
	for _, c := range []struct {
		name string
		r    *Reader
		odd  int
	}{{"hit", r, 0}, {"miss-bloom", r, 1}, {"miss-nofilter", nofilter, 1}, {"hit-uncached", uncached, 0}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewSource(1))
			var key []byte
			b.ReportAllocs()
			found := 0
			for b.Loop() {
				key = benchKey(key, 2*rng.Intn(benchKeys)+c.odd)
				_, _, ok, err := c.r.Get(key, base.MaxSeqNum)
				if err != nil {
					b.Fatal(err)
				}
				if ok {
					found++
				}
			}
			if (c.odd == 0) != (found > 0) {
				b.Fatalf("found %d", found)
			}
		})
	}
}

// BenchmarkIterNext scans the table forward and backward: ns/op is per key.
func BenchmarkIterNext(b *testing.B) {
	r := benchReader(b, WriterOptions{})
	defer r.Close()
	for _, dir := range []string{"next", "prev"} {
		b.Run(dir, func(b *testing.B) {
			var it Iter
			it.Init(r)
			b.ReportAllocs()
			ok := false
			for b.Loop() {
				if !ok {
					if dir == "next" {
						ok = it.First()
					} else {
						ok = it.Last()
					}
					continue
				}
				if dir == "next" {
					ok = it.Next()
				} else {
					ok = it.Prev()
				}
			}
			it.Close()
		})
	}
}

// BenchmarkSeekGE seeks to random present keys.
func BenchmarkSeekGE(b *testing.B) {
	r := benchReader(b, WriterOptions{})
	defer r.Close()
	for _, op := range []string{"SeekGE", "SeekLT"} {
		b.Run(op, func(b *testing.B) {
			var it Iter
			it.Init(r)
			rng := rand.New(rand.NewSource(1))
			var key []byte
			b.ReportAllocs()
			for b.Loop() {
				key = benchKey(key, 2*rng.Intn(benchKeys)+1)
				var ok bool
				if op == "SeekGE" {
					ok = it.SeekGE(key)
				} else {
					ok = it.SeekLT(key)
				}
				if !ok && it.Error() != nil {
					b.Fatal(it.Error())
				}
			}
			it.Close()
		})
	}
}
