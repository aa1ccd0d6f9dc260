package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
	"testing/iotest"
)

// refRead decodes a whole log held in memory by the rules of Reader. It is
// written apart from Reader (over a slice, no streaming, no block buffer)
// to cross-check it. It returns the records, the end of the last one, and
// whether the read ends in corruption (rather than io.EOF).
func refRead(data []byte, logNum uint32, newest bool) (recs [][]byte, end int, corrupt bool) {
	table := crc32.MakeTable(crc32.Castagnoli)
	// valid returns the type and payload of a whole valid chunk at o.
	valid := func(o int) (byte, []byte, bool) {
		if o%blockSize > blockSize-headerSize || o+headerSize > len(data) {
			return 0, nil, false
		}
		h := data[o : o+headerSize]
		e := o + headerSize + int(binary.LittleEndian.Uint16(h[4:]))
		if h[6] < 1 || h[6] > 4 || binary.LittleEndian.Uint32(h[7:]) != logNum ||
			e > len(data) || e-o+o%blockSize > blockSize ||
			crc32.Checksum(data[o+6:e], table) != binary.LittleEndian.Uint32(h) {
			return 0, nil, false
		}
		return h[6], data[o+headerSize : e], true
	}
	// damaged tells whether damage, with the first possible later chunk at
	// from, is corruption.
	damaged := func(from int) bool {
		if !newest {
			return true
		}
		for o := from; o < len(data); o++ {
			if _, _, ok := valid(o); ok {
				return true
			}
		}
		return false
	}
	var cur []byte
	inRecord := false
	for o := 0; ; {
		if o == len(data) {
			return recs, end, inRecord && damaged(o)
		}
		if bp := o % blockSize; bp > blockSize-headerSize {
			if next := o - bp + blockSize; next <= len(data) {
				o = next
				continue
			}
			return recs, end, damaged(o + 1)
		}
		typ, payload, ok := valid(o)
		switch {
		case !ok:
			return recs, end, damaged(o + 1)
		case (typ == fullChunk || typ == firstChunk) == inRecord:
			return recs, end, true // the chunk at o is valid and comes later
		}
		o += headerSize + len(payload)
		cur = append(cur, payload...)
		inRecord = typ == firstChunk || typ == middleChunk
		if !inRecord {
			recs, end, cur = append(recs, cur), o, nil
		}
	}
}

// FuzzWALReader reads arbitrary bytes as log 7, as the newest log and as an
// older one: no panic; the read ends in io.EOF or corruption, exactly as the
// reference decoder says, with the same records and offset.
func FuzzWALReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newest := range []bool{false, true} {
			wantRecs, wantEnd, wantCorrupt := refRead(data, 7, newest)
			var src io.Reader = bytes.NewReader(data)
			if len(data)%2 == 1 {
				src = iotest.HalfReader(src)
			}
			res := readLog(src, 7, newest)
			if wantCorrupt != isCorruption(res.err) || !wantCorrupt && res.err != io.EOF {
				t.Fatalf("newest %v: error %v, reference says corrupt=%v", newest, res.err, wantCorrupt)
			}
			checkRecords(t, res.recs, wantRecs)
			if n := len(res.offs); n > 0 && res.offs[n-1] != int64(wantEnd) {
				t.Fatalf("newest %v: Offset %d, reference %d", newest, res.offs[n-1], wantEnd)
			}
		}
	})
}

// FuzzWALRoundTrip writes records built from spec (3 bytes each: a size up
// to 64 KiB-1, around block edges, and a fill byte), flushing after some,
// reads them back, then reads the log cut at cut: always a prefix of the
// records, ending in EOF for the newest log and for a clean cut.
func FuzzWALRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec []byte, cut uint32) {
		var recs [][]byte
		for i := 0; i+3 <= len(spec) && len(recs) < 16; i += 3 {
			rec := make([]byte, int(binary.LittleEndian.Uint16(spec[i:])))
			for j := range rec {
				rec[j] = spec[i+2] + byte(j*7)
			}
			recs = append(recs, rec)
		}
		mf := &memFile{}
		w := NewWriter(mf, 7)
		ends := make([]int64, len(recs))
		for i, rec := range recs {
			end, err := w.Append(rec)
			if err == nil && spec[3*i+2]%3 == 0 {
				err = w.Flush(end, spec[3*i+2]%2 == 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			ends[i] = end
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data := mf.bytes()
		res := readLog(bytes.NewReader(data), 7, false)
		if res.err != io.EOF {
			t.Fatal(res.err)
		}
		checkRecords(t, res.recs, recs)
		l := int64(cut) % int64(len(data)+1)
		n := completeBefore(ends, l)
		for _, newest := range []bool{true, false} {
			res := readLog(bytes.NewReader(data[:l]), 7, newest)
			checkRecords(t, res.recs, recs[:n])
			if (newest || cleanCut(ends, l)) != (res.err == io.EOF) || res.err != io.EOF && !isCorruption(res.err) {
				t.Fatalf("cut %d of %d newest %v: %v", l, len(data), newest, res.err)
			}
		}
	})
}
