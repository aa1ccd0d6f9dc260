package sstable

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// TestHash64Golden pins the filter hash: it is part of the file format.
// The values were computed by an independent implementation of the
// algorithm documented in writer.go.
func TestHash64Golden(t *testing.T) {
	for _, c := range []struct {
		key  string
		want uint64
	}{
		{"", 0x0},
		{"a", 0x577fd0f5c31a0a2f},
		{"abcdefgh", 0xbd9fd4bdd6cfb4bc},
		{"abcdefghi", 0x841498a4c83cf187},
		{"\x01user-key-000042", 0x0d6bb342754fb701},
	} {
		if got := hash64([]byte(c.key)); got != c.want {
			t.Errorf("hash64(%q) = %#x, want %#x", c.key, got, c.want)
		}
	}
}

// TestBloomFalsePositiveRate measures the filter's false-positive rate at
// several sizes and checks it has no false negatives.
func TestBloomFalsePositiveRate(t *testing.T) {
	const n, probes = 10000, 100000
	key := func(i int) []byte { return strconv.AppendInt([]byte("\x01user-key-"), int64(i), 10) }
	for _, c := range []struct {
		bits    int
		maxRate float64 // generous: the expected rate is about half
	}{{5, 0.15}, {10, 0.02}, {20, 0.002}} {
		var b bloomBuilder
		for i := range n {
			b.add(key(i))
		}
		f, err := decodeFilter(b.finish(c.bits))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !f.mayContain(key(i)) {
				t.Fatalf("bits %d: false negative for key %d", c.bits, i)
			}
		}
		fp := 0
		for i := range probes {
			if f.mayContain(key(n + i)) {
				fp++
			}
		}
		rate := float64(fp) / probes
		t.Logf("bits/key %d, k %d: false-positive rate %.3f%% (%d bytes for %d keys)", c.bits, f.k, 100*rate, len(f.lines), n)
		if rate > c.maxRate {
			t.Errorf("bits/key %d: false-positive rate %.3f%% above %.3f%%", c.bits, 100*rate, 100*c.maxRate)
		}
	}
}

// TestBloomSkips checks that Get counts filter skips and that a table
// without a filter never skips.
func TestBloomSkips(t *testing.T) {
	kvs := smallKVs(1000, 'a')
	for _, bits := range []int{-1, 10} {
		st := &Stats{}
		r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{FilterBitsPerKey: bits}), 1, ReaderOptions{Stats: st})
		for i := range 1000 {
			if _, _, found, err := r.Get([]byte(fmt.Sprintf("absent%d", i)), base.MaxSeqNum); found || err != nil {
				t.Fatal(found, err)
			}
		}
		skips := st.BloomSkips.Load()
		t.Logf("bits %d: %d of 1000 absent keys skipped", bits, skips)
		if (bits < 0 && skips != 0) || (bits > 0 && skips < 950) || r.Stats() != st {
			t.Errorf("bits %d: %d skips", bits, skips)
		}
		r.Close()
	}
}
