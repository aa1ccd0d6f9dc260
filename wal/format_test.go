package wal

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/v3.log")

// TestWorkedExample checks the exact bytes of the example in writer.go, with
// a CRC computed independently of the package.
func TestWorkedExample(t *testing.T) {
	data, _ := writeLog(t, [][]byte{[]byte("ab"), {}})
	crc := func(b ...byte) []byte {
		return binary.LittleEndian.AppendUint32(nil,
			crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	}
	var want []byte
	want = append(want, crc(1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 'b')...)
	want = append(want, 2, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'a', 'b')
	want = append(want, crc(1, 7, 0, 0, 0, 29, 0, 0, 0, 0, 0, 0, 0, 29, 0, 0, 0, 0, 0, 0, 0)...)
	want = append(want, 0, 0, 1, 7, 0, 0, 0, 29, 0, 0, 0, 0, 0, 0, 0, 29, 0, 0, 0, 0, 0, 0, 0)
	if !bytes.Equal(data, want) {
		t.Fatalf("log bytes\n got %x\nwant %x", data, want)
	}
}

// TestFraming checks how records are cut into chunks at block edges.
func TestFraming(t *testing.T) {
	const bs, h = blockSize, headerSize
	type c = chunkInfo
	tests := []struct {
		name  string
		sizes []int
		want  []chunkInfo
	}{
		{"empty", []int{0}, []c{{0, fullChunk, 0}}},
		{"fills block", []int{bs - h}, []c{{0, fullChunk, bs - h}}},
		{"one byte over", []int{bs - h + 1},
			[]c{{0, firstChunk, bs - h}, {bs, lastChunk, 1}}},
		{"three blocks", []int{3 * bs}, []c{{0, firstChunk, bs - h},
			{bs, middleChunk, bs - h}, {2 * bs, middleChunk, bs - h}, {3 * bs, lastChunk, 3 * h}}},
		{"a header's room left: empty FIRST", []int{bs - 2*h, 5},
			[]c{{0, fullChunk, bs - 2*h}, {bs - h, firstChunk, 0}, {bs, lastChunk, 5}}},
		{"a header's room left: empty FULL", []int{bs - 2*h, 0},
			[]c{{0, fullChunk, bs - 2*h}, {bs - h, fullChunk, 0}}},
		{"a byte short of a header: trailer", []int{bs - 2*h + 1, 0},
			[]c{{0, fullChunk, bs - 2*h + 1}, {bs, fullChunk, 0}}},
		{"a byte over a header: 1-byte FIRST", []int{bs - 2*h - 1, 3},
			[]c{{0, fullChunk, bs - 2*h - 1}, {bs - h - 1, firstChunk, 1}, {bs, lastChunk, 2}}},
		{"1 byte left: trailer", []int{bs - h - 1, 3},
			[]c{{0, fullChunk, bs - h - 1}, {bs, fullChunk, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := make([][]byte, len(tt.sizes))
			for i, n := range tt.sizes {
				recs[i] = bytes.Repeat([]byte{byte(i + 1)}, n)
			}
			data, _ := writeLog(t, recs)
			got := chunksOf(data)
			if len(got) != len(tt.want) {
				t.Fatalf("chunks %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("chunks %v, want %v", got, tt.want)
				}
			}
			checkTrailersZero(t, data, got)
		})
	}
}

// checkTrailersZero fails the test unless every byte of data outside the
// chunks cs is zero.
func checkTrailersZero(t *testing.T, data []byte, cs []chunkInfo) {
	t.Helper()
	covered := make([]bool, len(data))
	for _, c := range cs {
		for i := c.off; i < c.off+headerSize+int64(c.len); i++ {
			covered[i] = true
		}
	}
	for i, b := range data {
		if !covered[i] && b != 0 {
			t.Fatalf("byte %d outside every chunk is %#x, want 0", i, b)
		}
	}
}

// TestRoundTrip writes records of sizes around block edges and reads them
// back, as the newest log and as an older one, with short reads too.
func TestRoundTrip(t *testing.T) {
	const bs, h = blockSize, headerSize
	rng := newRand(t)
	tests := [][]int{
		{0}, {1}, {bs - h}, {bs - h - 1}, {bs - h + 1}, {3 * bs}, {0, 0, 0},
		{bs - 2*h, 0, 1}, {bs - 2*h + 1, 0, 1}, {bs - 2*h - 1, bs - h, bs},
		{1, bs - h, bs - h + 1, 2*bs - 2*h, 0, 3 * bs},
		{1 << 20},
	}
	var random []int
	for range 20 {
		random = append(random, rng.Intn(3*bs))
	}
	tests = append(tests, random)
	for _, sizes := range tests {
		recs := randRecords(rng, sizes...)
		data, ends := writeLog(t, recs)
		if ends[len(ends)-1] != int64(len(data)) {
			t.Fatalf("sizes %v: last end %d, file size %d", sizes, ends[len(ends)-1], len(data))
		}
		for _, newest := range []bool{false, true} {
			readers := []io.Reader{bytes.NewReader(data)}
			if !newest {
				readers = append(readers, iotest.HalfReader(bytes.NewReader(data)))
			}
			for _, r := range readers {
				res := readLog(r, testLogNum, newest)
				if res.err != io.EOF {
					t.Fatalf("sizes %v newest %v: %v", sizes, newest, res.err)
				}
				checkRecords(t, res.recs, recs)
				for i := range ends {
					if res.offs[i] != ends[i] {
						t.Fatalf("record %d: Offset %d, Append returned %d", i, res.offs[i], ends[i])
					}
				}
			}
		}
	}
}

// TestGoldenLog checks that the writer still produces, and the reader still
// reads, the format version 3 fixture (go test -run Golden -update rewrites
// it: only ever for a deliberate format change with a new version). The
// records are synced one by one, so the chunks carry growing synced
// offsets; the third record leaves 10 bytes of trailer in block 0.
func TestGoldenLog(t *testing.T) {
	var recs [][]byte
	for i, n := range []int{6, 0, blockSize - 10 - 3*headerSize - 6, 1, 20000, 50000} {
		rec := make([]byte, n)
		for j := range rec {
			rec[j] = byte('a' + (i+j)%26)
		}
		recs = append(recs, rec)
	}
	data, ends := writeLog(t, recs)
	if ends[2] != blockSize-10 {
		t.Fatalf("third record ends at %d, want %d", ends[2], blockSize-10)
	}
	path := filepath.Join("testdata", "v3.log")
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, golden) {
		t.Fatalf("writer output differs from %s: the format changed", path)
	}
	res := readLog(bytes.NewReader(golden), testLogNum, false)
	if res.err != io.EOF {
		t.Fatal(res.err)
	}
	checkRecords(t, res.recs, recs)
	for i, c := range chunksOf(golden) {
		var want uint64
		if n := completeBefore(ends, c.off); n > 0 {
			want = uint64(ends[n-1])
		}
		if got := binary.LittleEndian.Uint64(golden[c.off+11:]); got != uint64(c.off) {
			t.Fatalf("chunk %d at %d: offset field %d", i, c.off, got)
		}
		if got := binary.LittleEndian.Uint64(golden[c.off+19:]); got != want {
			t.Fatalf("chunk %d at %d: synced offset %d, want %d", i, c.off, got, want)
		}
	}
}
