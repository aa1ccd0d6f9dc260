package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// splitRecord cuts rec into parts: alternately empty and stride bytes long
// (the last part shorter), so that part edges fall all over the chunks.
func splitRecord(rec []byte, stride int) [][]byte {
	parts := [][]byte{{}}
	for len(rec) > 0 {
		n := min(stride, len(rec))
		parts = append(parts, rec[:n], nil)
		rec = rec[n:]
	}
	return parts
}

// cutRecord cuts rec into parts of the given sizes (the last part takes
// the rest).
func cutRecord(rec []byte, sizes []int) [][]byte {
	var parts [][]byte
	for _, n := range sizes {
		parts = append(parts, rec[:n])
		rec = rec[n:]
	}
	return append(parts, rec)
}

// writeLogParts is writeLog with each record appended with AppendParts.
func writeLogParts(t testing.TB, recs [][][]byte) ([]byte, []int64) {
	t.Helper()
	fs := vfs.NewMem()
	f, err := fs.Create("000007.log")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, testLogNum)
	ends := make([]int64, len(recs))
	for i, parts := range recs {
		if ends[i], err = w.AppendParts(parts); err == nil {
			err = w.Flush(ends[i], true)
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return readFile(t, fs, "000007.log"), ends
}

// partsLayout is a log to write twice: records of the given sizes, the
// last one cut into parts by cut.
type partsLayout struct {
	name  string
	sizes []int
	cut   func(rec []byte) [][]byte
}

func sized(sizes ...int) func([]byte) [][]byte {
	return func(rec []byte) [][]byte { return cutRecord(rec, sizes) }
}

// TestAppendPartsMatchesAppend writes logs whose records are appended as
// parts and, again, whole with Append: the files must be byte-identical,
// the end offsets equal, and the records read back whole. The layouts put
// part edges at, before and after chunk and block edges, in records that
// start near a block's end, with empty parts, a record of no parts at all,
// and many small parts.
func TestAppendPartsMatchesAppend(t *testing.T) {
	const bs, h = blockSize, headerSize
	rng := newRand(t)
	layouts := []partsLayout{
		{"no parts", []int{0}, func([]byte) [][]byte { return nil }},
		{"empty parts", []int{0}, sized(0, 0, 0)},
		{"edge", []int{bs - h + 5}, sized(bs - h)},
		{"edge-1", []int{bs - h + 5}, sized(bs-h-1, 1)},
		{"edge+1", []int{bs - h + 5}, sized(bs-h+1, 0)},
		{"two blocks in a part", []int{3 * bs}, sized(10, 2*bs+100, 0)},
		{"after a record", []int{bs - 2*h - 3, 100}, sized(0, 3, 0, 50)},
		{"a header's room left", []int{bs - 2*h, bs}, sized(0, bs-h-1, 1)},
		{"many small", []int{100, 2*bs + 77}, func(rec []byte) [][]byte {
			var sizes []int
			for n := 0; ; {
				s := rng.Intn(40)
				if n+s > len(rec) {
					return cutRecord(rec, sizes)
				}
				sizes, n = append(sizes, s), n+s
			}
		}},
	}
	for i := range 20 {
		stride := 1 + rng.Intn(bs)
		layouts = append(layouts, partsLayout{fmt.Sprintf("random%d", i),
			[]int{rng.Intn(2 * bs), rng.Intn(4 * bs)},
			func(rec []byte) [][]byte { return splitRecord(rec, stride) }})
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			recs := randRecords(rng, l.sizes...)
			asParts := make([][][]byte, len(recs))
			for i, rec := range recs {
				asParts[i] = [][]byte{rec}
			}
			last := len(recs) - 1
			asParts[last] = l.cut(recs[last])
			if joined := bytes.Join(asParts[last], nil); !bytes.Equal(joined, recs[last]) {
				t.Fatalf("the layout's parts join to %d bytes, not the record's %d", len(joined), len(recs[last]))
			}
			want, wantEnds := writeLog(t, recs)
			got, gotEnds := writeLogParts(t, asParts)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendParts wrote %d bytes, Append of the joined parts %d (contents differ)", len(got), len(want))
			}
			for i := range wantEnds {
				if gotEnds[i] != wantEnds[i] {
					t.Fatalf("record %d ends at %d, want %d", i, gotEnds[i], wantEnds[i])
				}
			}
			res := readLog(bytes.NewReader(got), testLogNum, true)
			if res.err != io.EOF {
				t.Fatal(res.err)
			}
			checkRecords(t, res.recs, recs)
		})
	}
}

// TestAppendPartsClosed checks that AppendParts shares Append's errors.
func TestAppendPartsClosed(t *testing.T) {
	w := NewWriter(&memFile{}, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendParts([][]byte{[]byte("a"), []byte("b")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendParts after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkAppendParts is one goroutine's AppendParts + Flush(no sync) of a
// record in parts to a file that discards writes, against Append of the
// same bytes whole: framing from parts costs what framing one slice does.
func BenchmarkAppendParts(b *testing.B) {
	for _, tc := range []struct {
		name  string
		parts int
	}{{"1x100KB", 1}, {"4x25KB", 4}, {"100x1KB", 100}} {
		b.Run(tc.name, func(b *testing.B) {
			w := NewWriter(nullFile{}, 1)
			rec := make([]byte, 100_000)
			parts := splitEven(rec, tc.parts)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				end, err := w.AppendParts(parts)
				if err == nil {
					err = w.Flush(end, false)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// splitEven cuts rec into n parts of (nearly) equal size.
func splitEven(rec []byte, n int) [][]byte {
	parts := make([][]byte, n)
	for i := range parts {
		parts[i] = rec[i*len(rec)/n : (i+1)*len(rec)/n]
	}
	return parts
}
