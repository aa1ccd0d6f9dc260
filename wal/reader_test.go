package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// multiLog returns a log of ten records, one split across the block edge,
// and the records' end offsets.
func multiLog(t *testing.T) ([][]byte, []byte, []int64) {
	recs := randRecords(newRand(t), 5, 0, 3000, 26000, 1, 0, 100, 6000, 7, 0)
	data, ends := writeLog(t, recs)
	return recs, data, ends
}

// cleanCut reports whether a log cut at l ends cleanly: at a record end, or
// at the end of a block after the trailer that follows a record end.
func cleanCut(ends []int64, l int64) bool {
	if l == 0 {
		return true
	}
	for _, e := range ends {
		if e == l || l%blockSize == 0 && e < l && l-e < headerSize {
			return true
		}
	}
	return false
}

// completeBefore returns how many records end at or before l.
func completeBefore(ends []int64, l int64) int {
	n := 0
	for n < len(ends) && ends[n] <= l {
		n++
	}
	return n
}

// TestTruncateEveryOffset cuts a log at every byte offset: the newest-log
// reader returns exactly the records complete before the cut and io.EOF;
// an older-log reader also reports an incomplete tail as corruption.
func TestTruncateEveryOffset(t *testing.T) {
	recs, data, ends := multiLog(t)
	cuts := make([]int64, len(data)+1)
	for i := range cuts {
		cuts[i] = int64(i)
	}
	checkTruncations(t, recs, data, ends, cuts)
}

// TestTruncateNearEdges does the same for a longer log with a trailer, an
// empty FIRST chunk and FIRST, MIDDLE, LAST chunks, at every offset within
// 40 bytes of a chunk or block edge.
func TestTruncateNearEdges(t *testing.T) {
	const bs, h = blockSize, headerSize
	recs := randRecords(newRand(t), 3, 0, bs-3*h-3-5, 1, bs-3*h-1, 40000, 0, 5)
	data, ends := writeLog(t, recs)
	var edges []int64
	for _, c := range chunksOf(data) {
		edges = append(edges, c.off, c.off+h+int64(c.len))
	}
	for off := int64(0); off < int64(len(data)); off += bs {
		edges = append(edges, off)
	}
	var cuts []int64
	for l := int64(0); l <= int64(len(data)); l++ {
		for _, e := range edges {
			if l >= e-40 && l <= e+40 {
				cuts = append(cuts, l)
				break
			}
		}
	}
	checkTruncations(t, recs, data, ends, cuts)
}

// checkTruncations reads data cut at each of cuts, as the newest log and as
// an older one.
func checkTruncations(t *testing.T, recs [][]byte, data []byte, ends, cuts []int64) {
	for _, l := range cuts {
		n := completeBefore(ends, l)
		var off int64
		if n > 0 {
			off = ends[n-1]
		}
		for _, newest := range []bool{true, false} {
			rd := NewReader(bytes.NewReader(data[:l]), testLogNum, "t.log", newest)
			for i := range n {
				rec, err := rd.Next()
				if err != nil || !bytes.Equal(rec, recs[i]) {
					t.Fatalf("cut %d newest %v: record %d: err %v, equal %v",
						l, newest, i, err, bytes.Equal(rec, recs[i]))
				}
			}
			_, err := rd.Next()
			switch {
			case newest || cleanCut(ends, l):
				if err != io.EOF {
					t.Fatalf("cut %d newest %v: after %d records: %v, want EOF", l, newest, n, err)
				}
			case !isCorruption(err):
				t.Fatalf("cut %d: after %d records: %v, want corruption", l, n, err)
			}
			if rd.Offset() != off {
				t.Fatalf("cut %d newest %v: Offset %d, want %d", l, newest, rd.Offset(), off)
			}
		}
	}
}

// TestTails appends zeros or garbage to a log: the newest-log reader ends
// cleanly after the last record, an older-log reader reports corruption.
func TestTails(t *testing.T) {
	rng := newRand(t)
	recs, data, _ := multiLog(t)
	var tails [][]byte
	for _, n := range []int{1, 5, 18, 19, 20, 100, blockSize, 2*blockSize + 7} {
		tails = append(tails, make([]byte, n))
		tails = append(tails, randRecords(rng, n)[0])
	}
	for _, tail := range tails {
		log := append(bytes.Clone(data), tail...)
		res := readLog(bytes.NewReader(log), testLogNum, true)
		if res.err != io.EOF {
			t.Fatalf("tail of %d bytes: %v, want EOF", len(tail), res.err)
		}
		checkRecords(t, res.recs, recs)
		if res.offs[len(res.offs)-1] != int64(len(data)) {
			t.Fatalf("tail of %d bytes: Offset %d, want %d", len(tail), res.offs[len(res.offs)-1], len(data))
		}
		res = readLog(bytes.NewReader(log), testLogNum, false)
		if !isCorruption(res.err) {
			t.Fatalf("tail of %d bytes, older log: %v, want corruption", len(tail), res.err)
		}
		checkRecords(t, res.recs, recs)
	}
}

// TestDamageInMiddle damages each header byte and some payload bytes of a
// synced record followed by others (whose chunks record it as synced):
// corruption at that chunk's offset, even in the newest log, after the
// records before it.
func TestDamageInMiddle(t *testing.T) {
	recs, data, ends := multiLog(t)
	const k = 6 // a 100-byte FULL record; records follow it
	off := ends[k-1]
	for _, i := range []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 18, 19, 50, 118} {
		bad := bytes.Clone(data)
		bad[off+i] ^= 0x20
		for _, newest := range []bool{true, false} {
			res := readLog(bytes.NewReader(bad), testLogNum, newest)
			if !isCorruption(res.err) {
				t.Fatalf("byte %d newest %v: %v, want corruption", off+i, newest, res.err)
			}
			if want := fmt.Sprintf("at offset %d", off); !strings.Contains(res.err.Error(), want) {
				t.Fatalf("byte %d: error %q does not say %q", off+i, res.err, want)
			}
			if !strings.Contains(res.err.Error(), "t.log") && !strings.Contains(res.err.Error(), "test.log") {
				t.Fatalf("error %q does not name the file", res.err)
			}
			checkRecords(t, res.recs, recs[:k])
		}
	}
}

// TestBitFlipSweep flips one bit of every header and trailer byte of a log
// synced record by record, and of payload bytes (the first, the last and
// one in 37), one at a time: damage in a chunk is always detected; the
// newest-log reader calls it a torn tail only in the last record, which no
// later chunk records as synced.
func TestBitFlipSweep(t *testing.T) {
	recs := randRecords(newRand(t), 3, 0, 200, 32500, 1, 700)
	data, ends := writeLog(t, recs)
	cs := chunksOf(data)
	for i := range data {
		if c := chunkAt(cs, int64(i)); c >= 0 {
			p := i - int(cs[c].off) - headerSize
			if p > 0 && p < cs[c].len-1 && p%37 != 0 {
				continue
			}
		}
		c := chunkAt(cs, int64(i))
		bad := bytes.Clone(data)
		bad[i] ^= 1 << (i % 8)
		for _, newest := range []bool{true, false} {
			res := readLog(bytes.NewReader(bad), testLogNum, newest)
			switch {
			case c < 0: // a trailer byte: not covered, not read
				if res.err != io.EOF || len(res.recs) != len(recs) {
					t.Fatalf("trailer byte %d: %d records, %v", i, len(res.recs), res.err)
				}
				continue
			case newest && completeBefore(ends, cs[c].off) == len(recs)-1:
				if res.err != io.EOF {
					t.Fatalf("byte %d of the last record: %v, want EOF", i, res.err)
				}
			case !isCorruption(res.err):
				t.Fatalf("byte %d newest %v: %v, want corruption", i, newest, res.err)
			}
			n := completeBefore(ends, cs[c].off)
			checkRecords(t, res.recs, recs[:n])
		}
	}
}

// chunkAt returns the index of the chunk of cs that holds offset off, or -1.
func chunkAt(cs []chunkInfo, off int64) int {
	for i, c := range cs {
		if off >= c.off && off < c.off+headerSize+int64(c.len) {
			return i
		}
	}
	return -1
}

// TestChunkSequence checks broken FIRST .. LAST sequences made of chunks
// that are valid one by one: corruption in an older log; in the newest log,
// a torn tail unless a later chunk records the damaged offset as synced.
func TestChunkSequence(t *testing.T) {
	type c struct {
		typ     byte
		payload string
	}
	// log frames the chunks one after the other from offset 0.
	log := func(cs ...c) []byte {
		var b []byte
		for _, c := range cs {
			b = appendChunkBytes(b, c.typ, testLogNum&0xffffffff, 0, []byte(c.payload))
		}
		return b
	}
	const h = headerSize
	full := c{fullChunk, "ok"} // h+2 bytes
	tests := []struct {
		name   string
		log    []byte
		off    int64 // of the damage
		nGood  int   // records read before the damage
		reason string
	}{
		{"middle alone", log(full, c{middleChunk, "m"}), h + 2, 1, "chunk of type 3 without a first chunk"},
		{"last alone", log(full, c{lastChunk, "l"}), h + 2, 1, "chunk of type 4 without a first chunk"},
		{"first then full", log(full, c{firstChunk, "f"}, full), 2*h + 3, 1, fmt.Sprintf("record from offset %d interrupted by a chunk of type 1", h+2)},
		{"first then first", log(c{firstChunk, "f"}, c{firstChunk, "f"}, c{lastChunk, ""}), h + 1, 0, "record from offset 0 interrupted by a chunk of type 2"},
		{"first at end", log(full, c{firstChunk, "f"}, c{middleChunk, "m"}), 3*h + 4, 1, fmt.Sprintf("record from offset %d cut short by the end of the file", h+2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := fmt.Sprintf("%s at offset %d", tt.reason, tt.off)
			check := func(log []byte, newest, corrupt bool) {
				t.Helper()
				res := readLog(bytes.NewReader(log), testLogNum, newest)
				if len(res.recs) != tt.nGood {
					t.Fatalf("newest %v: %d records, want %d", newest, len(res.recs), tt.nGood)
				}
				if !corrupt {
					if res.err != io.EOF {
						t.Fatalf("newest %v: %v, want EOF", newest, res.err)
					}
					return
				}
				if !isCorruption(res.err) || !strings.Contains(res.err.Error(), want) {
					t.Fatalf("newest %v: %v, want corruption %q", newest, res.err, want)
				}
			}
			check(tt.log, false, true)
			check(tt.log, true, false)
			if tt.off == int64(len(tt.log)) {
				return // damage at the end: no chunk can follow it
			}
			// A later chunk that records the log as synced up to its own
			// offset proves the damaged bytes synced.
			at := int64(len(tt.log))
			proved := appendChunkBytes(bytes.Clone(tt.log), fullChunk, testLogNum&0xffffffff, uint64(at), nil)
			check(proved, false, true)
			check(proved, true, true)
			// One that records less does not.
			notProved := appendChunkBytes(bytes.Clone(tt.log), fullChunk, testLogNum&0xffffffff, uint64(tt.off), nil)
			check(notProved, true, false)
		})
	}
}

// TestWrongLogNumber reads a log as another log number: an older log is
// corrupt; in the newest log, nothing of this log is there, so it is empty.
func TestWrongLogNumber(t *testing.T) {
	_, data, _ := multiLog(t)
	res := readLog(bytes.NewReader(data), testLogNum+1, false)
	if !isCorruption(res.err) || !strings.Contains(res.err.Error(), "chunk of log 7 in log 8") {
		t.Fatalf("older log: %v", res.err)
	}
	res = readLog(bytes.NewReader(data), testLogNum+1, true)
	if res.err != io.EOF || len(res.recs) != 0 {
		t.Fatalf("newest log: %d records, %v", len(res.recs), res.err)
	}
	// A stale chunk of another log in place of the first (a 5-byte record),
	// followed by chunks of this one, which record the log as synced beyond
	// offset 0.
	stale := appendChunkBytes(nil, fullChunk, 99, 0, []byte("old!!"))
	res = readLog(bytes.NewReader(append(stale, data[len(stale):]...)), testLogNum, true)
	if !isCorruption(res.err) {
		t.Fatalf("stale chunk first: %v", res.err)
	}
}

// TestBadHeaders checks the header checks one by one.
func TestBadHeaders(t *testing.T) {
	good := appendChunkBytes(nil, fullChunk, testLogNum&0xffffffff, 0, []byte("abc"))
	tests := []struct {
		name   string
		edit   func(b []byte) []byte
		reason string
	}{
		{"zeroed", func(b []byte) []byte { return make([]byte, 30) }, "zeroed chunk header"},
		{"zero but the CRC", func(b []byte) []byte { clear(b[4:]); return b }, "invalid chunk type 0"},
		{"type 0", func(b []byte) []byte { b[6] = 0; return b }, "invalid chunk type 0"},
		{"type 5", func(b []byte) []byte { b[6] = 5; return b }, "invalid chunk type 5"},
		{"overflows block", func(b []byte) []byte { b[4], b[5] = 0xff, 0xff; return b }, "overflows its block"},
		{"beyond file", func(b []byte) []byte { b[4] = 200; return b }, "file ends inside a chunk"},
		{"short header", func(b []byte) []byte { return b[:7] }, "file ends inside a chunk header"},
		{"synced beyond chunk", func(b []byte) []byte { b[19] = 1; return b }, "synced offset 1 beyond the chunk's offset 0"},
		{"huge synced offset", func(b []byte) []byte { b[26] = 0x80; return b }, "synced offset 9223372036854775808 beyond the chunk's offset 0"},
		{"other log", func(b []byte) []byte { b[7] ^= 1; return b }, "chunk of log 6 in log 7"},
		{"checksum of payload", func(b []byte) []byte { b[headerSize]++; return b }, "checksum mismatch"},
		{"checksum of offset", func(b []byte) []byte { b[11] = 1; return b }, "checksum mismatch"},
		{"checksum of type", func(b []byte) []byte { b[6] = firstChunk; return b }, "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := tt.edit(bytes.Clone(good))
			res := readLog(bytes.NewReader(log), testLogNum, false)
			if !isCorruption(res.err) || !strings.Contains(res.err.Error(), tt.reason+" at offset 0") {
				t.Fatalf("%v, want corruption %q", res.err, tt.reason)
			}
			res = readLog(bytes.NewReader(log), testLogNum, true)
			if res.err != io.EOF {
				t.Fatalf("newest: %v, want EOF", res.err)
			}
		})
	}
}

// TestChecksumCoversSyncedOffset changes the synced offset of a second
// chunk to another plausible value: the checksum catches it.
func TestChecksumCoversSyncedOffset(t *testing.T) {
	const second = headerSize + 3
	log := appendChunkBytes(nil, fullChunk, testLogNum&0xffffffff, 0, []byte("abc"))
	log = appendChunkBytes(log, fullChunk, testLogNum&0xffffffff, second, []byte("def"))
	for _, synced := range []byte{0, 5, second - 1} {
		bad := bytes.Clone(log)
		bad[second+19] = synced
		res := readLog(bytes.NewReader(bad), testLogNum, false)
		if !isCorruption(res.err) || !strings.Contains(res.err.Error(), fmt.Sprintf("checksum mismatch at offset %d", second)) {
			t.Fatalf("synced offset %d: %v", synced, res.err)
		}
		checkRecords(t, res.recs, [][]byte{[]byte("abc")})
	}
}

// TestMisplacedChunks moves intact chunks: a record's pieces swapped, a
// chunk copied elsewhere. Their checksums hold, but each records the
// offset it was written at, so the move is damage, and corruption even in
// the newest log: a crash never moves an intact chunk.
func TestMisplacedChunks(t *testing.T) {
	const n = headerSize + 4 // bytes of each chunk below
	var log []byte
	for i, p := range []string{"aaaa", "bbbb", "cccc", "dddd"} {
		typ := []byte{firstChunk, middleChunk, middleChunk, lastChunk}[i]
		log = appendChunkBytes(log, typ, testLogNum&0xffffffff, 0, []byte(p))
	}
	swapped := bytes.Clone(log)
	copy(swapped[n:2*n], log[2*n:3*n])
	copy(swapped[2*n:3*n], log[n:2*n])
	want := fmt.Sprintf("intact chunk of offset %d misplaced at offset %d", 2*n, n)
	for _, newest := range []bool{false, true} {
		res := readLog(bytes.NewReader(swapped), testLogNum, newest)
		if !isCorruption(res.err) || !strings.Contains(res.err.Error(), want) || len(res.recs) != 0 {
			t.Fatalf("newest %v: %d records, %v; want corruption %q", newest, len(res.recs), res.err, want)
		}
	}
}

// TestMovedChunkAfterDamage damages the newest log at its first record and
// moves a chunk of a later one: where a chunk starts (the start of a block,
// or after a valid chunk that follows one), the moved chunk proves the
// damage no torn tail, though it records nothing synced; inside a block,
// where it may be part of a payload, it proves nothing.
func TestMovedChunkAfterDamage(t *testing.T) {
	// Unsynced records: three of a block's room each, then one to swap.
	recs := [][]byte{
		bytes.Repeat([]byte("a"), maxPayload), bytes.Repeat([]byte("b"), maxPayload),
		bytes.Repeat([]byte("c"), 10), bytes.Repeat([]byte("d"), 10), bytes.Repeat([]byte("e"), 10),
	}
	data := unsyncedLog(t, recs)
	const c = headerSize + 10 // bytes of each small chunk, from 2*blockSize on
	base := 2 * blockSize
	data[headerSize] ^= 1 // damage in record 0
	check := func(name string, log []byte, want string) {
		t.Helper()
		res := readLog(bytes.NewReader(log), testLogNum, true)
		switch {
		case want == "" && (res.err != io.EOF || len(res.recs) != 0):
			t.Errorf("%s: %d records, %v; want a torn tail (EOF)", name, len(res.recs), res.err)
		case want != "" && (!isCorruption(res.err) || !strings.Contains(res.err.Error(), want)):
			t.Errorf("%s: %v; want corruption %q", name, res.err, want)
		}
	}
	check("in place", data, "")
	// Block 2's first two chunks swapped: the first is at a block start,
	// and moved.
	first := bytes.Clone(data)
	copy(first[base:base+c], data[base+c:base+2*c])
	copy(first[base+c:base+2*c], data[base:base+c])
	check("moved to a block start", first, fmt.Sprintf("the intact chunk at offset %d belongs at offset %d", base, base+c))
	// Its second and third swapped: the chain from the block start reaches
	// the second.
	second := bytes.Clone(data)
	copy(second[base+c:base+2*c], data[base+2*c:base+3*c])
	copy(second[base+2*c:base+3*c], data[base+c:base+2*c])
	check("moved after a chunk at a block start", second, fmt.Sprintf("the intact chunk at offset %d belongs at offset %d", base+c, base+2*c))
	// The block's first chunk damaged too: nothing marks where the others
	// start, so the moved one could be bytes of a payload.
	clear(second[base : base+headerSize])
	check("moved behind a damaged block start", second, "")
}

// TestChunkImageInAValue reads the newest log whose unsynced tail is torn
// before a record whose value holds a valid chunk of this log (a value may
// be a copy of a log): the image lies inside a payload, not where a chunk
// starts, so it proves nothing, and the log reads as a torn tail.
func TestChunkImageInAValue(t *testing.T) {
	image := appendChunkBytes(nil, fullChunk, testLogNum&0xffffffff, 0, []byte("a chunk of a copied log"))
	synced := 40 // image's own offset 0 and synced offset 0; it lies elsewhere
	recs := [][]byte{bytes.Repeat([]byte("x"), synced), bytes.Repeat([]byte("y"), 5000), append([]byte("value: "), image...)}
	data := unsyncedLog(t, recs)
	data[headerSize+synced+100] ^= 1 // damage in record 1
	res := readLog(bytes.NewReader(data), testLogNum, true)
	if res.err != io.EOF || len(res.recs) != 1 {
		t.Fatalf("%d records, %v; want record 0 and a torn tail (EOF)", len(res.recs), res.err)
	}
}

// unsyncedLog writes recs to a log, each flushed without a sync.
func unsyncedLog(t *testing.T, recs [][]byte) []byte {
	t.Helper()
	f := &memFile{}
	w := NewWriter(f, testLogNum)
	for _, rec := range recs {
		end, err := w.Append(rec)
		if err == nil {
			err = w.Flush(end, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.bytes()
}

// TestReaderEmpty checks an empty file and the sticky end.
func TestReaderEmpty(t *testing.T) {
	for _, newest := range []bool{true, false} {
		rd := NewReader(bytes.NewReader(nil), testLogNum, "e.log", newest)
		for range 2 {
			if _, err := rd.Next(); err != io.EOF {
				t.Fatalf("newest %v: %v, want EOF", newest, err)
			}
		}
		if rd.Offset() != 0 {
			t.Fatalf("Offset %d", rd.Offset())
		}
	}
}

// TestReaderIOError checks that a read error of the source is returned
// as such (not as corruption, not as EOF) and stays.
func TestReaderIOError(t *testing.T) {
	_, data, ends := multiLog(t)
	boom := errors.New("boom")
	for _, newest := range []bool{true, false} {
		r := io.MultiReader(bytes.NewReader(data[:blockSize+100]), iotest.ErrReader(boom))
		rd := NewReader(r, testLogNum, "io.log", newest)
		var n int
		var err error
		for err == nil {
			_, err = rd.Next()
			n++
		}
		if !errors.Is(err, boom) || isCorruption(err) {
			t.Fatalf("newest %v: %v, want boom", newest, err)
		}
		if _, err2 := rd.Next(); err2 != err {
			t.Fatalf("error not sticky: %v then %v", err, err2)
		}
		if want := completeBefore(ends, blockSize); n-1 != want {
			t.Fatalf("newest %v: %d records before the error, want %d", newest, n-1, want)
		}
	}
	// A read error during the scan for later chunks is returned too.
	r := io.MultiReader(bytes.NewReader(make([]byte, blockSize)), iotest.ErrReader(boom))
	if res := readLog(r, testLogNum, true); !errors.Is(res.err, boom) {
		t.Fatalf("scan: %v, want boom", res.err)
	}
}
