package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// refRead decodes a whole log held in memory by the rules of Reader. It is
// written apart from Reader (over a slice, no streaming, no block buffer)
// to cross-check it. It returns the records, the end of the last one, and
// whether the read ends in corruption (rather than io.EOF).
func refRead(data []byte, logNum uint32, newest bool) (recs [][]byte, end int, corrupt bool) {
	table := crc32.MakeTable(crc32.Castagnoli)
	// valid returns the type, payload and synced offset of a whole valid
	// chunk at o, and whether it was written there (rather than moved).
	valid := func(o int) (typ byte, payload []byte, synced uint64, inPlace, ok bool) {
		if o%blockSize > blockSize-headerSize || o+headerSize > len(data) {
			return 0, nil, 0, false, false
		}
		h := data[o : o+headerSize]
		e := o + headerSize + int(binary.LittleEndian.Uint16(h[4:]))
		own := binary.LittleEndian.Uint64(h[11:])
		synced = binary.LittleEndian.Uint64(h[19:])
		if h[6] < 1 || h[6] > 4 || binary.LittleEndian.Uint32(h[7:]) != logNum ||
			synced > own || e > len(data) || e-o+o%blockSize > blockSize ||
			crc32.Checksum(data[o+6:e], table) != binary.LittleEndian.Uint32(h) {
			return 0, nil, 0, false, false
		}
		return h[6], data[o+headerSize : e], synced, own == uint64(o), true
	}
	// damaged tells whether damage found at x is corruption: in an older
	// log always; in the newest if a valid chunk lies where a chunk starts
	// (at x, or at the start of a later block or after a valid chunk at its
	// own offset that follows one) but not at its own offset, or lies after
	// x at its own offset and records a synced offset above x.
	damaged := func(x int) bool {
		if !newest {
			return true
		}
		if _, _, _, inPlace, ok := valid(x); ok && !inPlace {
			return true
		}
		for o := x + 1; o < len(data); o++ {
			if _, _, synced, inPlace, ok := valid(o); ok && inPlace && synced > uint64(x) {
				return true
			}
		}
		for b := (x/blockSize + 1) * blockSize; b < len(data); b += blockSize {
			for o := b; ; {
				_, payload, _, inPlace, ok := valid(o)
				if !ok {
					break
				}
				if !inPlace {
					return true
				}
				if o += headerSize + len(payload); o%blockSize == 0 {
					break
				}
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
			return recs, end, damaged(o)
		}
		typ, payload, _, inPlace, ok := valid(o)
		if !ok || !inPlace || (typ == fullChunk || typ == firstChunk) == inRecord {
			return recs, end, damaged(o)
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
// to 64 KiB-1, around block edges, and a fill byte that also picks a
// synced, an unsynced or no flush after the record, and whether it is
// appended whole or in parts), reads them back, then reads the log cut at
// cut: always a prefix of the records, ending in EOF for the newest log and
// for a clean cut. Then it changes the byte at flip
// (if flipByte is not 0): an older log reads as corrupt; the newest as
// corrupt exactly when a later record was framed after a sync that covered
// the damaged chunk, and as a torn tail otherwise.
func FuzzWALRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec []byte, cut, flip uint32, flipByte byte) {
		recs, synced := specRecords(spec)
		mf := &memFile{}
		w := NewWriter(mf, 7)
		ends := make([]int64, len(recs))
		for i, rec := range recs {
			end, err := appendSpec(w, rec, spec[3*i+2])
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
		for _, c := range chunksOf(data) {
			k := completeBefore(ends, c.off)
			if got := binary.LittleEndian.Uint64(data[c.off+19:]); got != uint64(synced[k]) {
				t.Fatalf("chunk at %d of record %d: synced offset %d, want %d", c.off, k, got, synced[k])
			}
		}
		l := int64(cut) % int64(len(data)+1)
		n := completeBefore(ends, l)
		for _, newest := range []bool{true, false} {
			res := readLog(bytes.NewReader(data[:l]), 7, newest)
			checkRecords(t, res.recs, recs[:n])
			if (newest || cleanCut(ends, l)) != (res.err == io.EOF) || res.err != io.EOF && !isCorruption(res.err) {
				t.Fatalf("cut %d of %d newest %v: %v", l, len(data), newest, res.err)
			}
		}
		if len(data) > 0 && flipByte != 0 {
			checkFlip(t, data, recs, ends, synced, int(flip%uint32(len(data))), flipByte)
		}
	})
}

// appendSpec appends rec whole, or, when fill is 1 mod 4, in parts of
// fill*61+1 bytes with empty parts between them (AppendParts).
func appendSpec(w *Writer, rec []byte, fill byte) (int64, error) {
	if fill%4 == 1 {
		return w.AppendParts(splitRecord(rec, int(fill)*61+1))
	}
	return w.Append(rec)
}

// specRecords returns the records FuzzWALRoundTrip builds from spec and,
// for each, the synced offset its chunks carry, as the writer's flushes
// leave it: a record ends up synced when a later synced flush covers it.
func specRecords(spec []byte) (recs [][]byte, synced []int64) {
	var size, done int64
	for i := 0; i+3 <= len(spec) && len(recs) < 16; i += 3 {
		rec := make([]byte, int(binary.LittleEndian.Uint16(spec[i:])))
		for j := range rec {
			rec[j] = spec[i+2] + byte(j*7)
		}
		recs, synced = append(recs, rec), append(synced, done)
		size = int64(len(appendRecord(nil, size, 7, 0, [][]byte{rec}))) + size
		if spec[i+2]%6 == 0 {
			done = size
		}
	}
	return recs, synced
}

// checkFlip xors the byte at d of the log data with x and reads it.
func checkFlip(t *testing.T, data []byte, recs [][]byte, ends, synced []int64, d int, x byte) {
	bad := bytes.Clone(data)
	bad[d] ^= x
	cs := chunksOf(data)
	c := chunkAt(cs, int64(d))
	for _, newest := range []bool{true, false} {
		res := readLog(bytes.NewReader(bad), 7, newest)
		if c < 0 { // a trailer byte: never read
			if res.err != io.EOF {
				t.Fatalf("trailer byte %d newest %v: %v", d, newest, res.err)
			}
			checkRecords(t, res.recs, recs)
			continue
		}
		k := completeBefore(ends, cs[c].off)
		proved := false
		for _, s := range synced[k+1:] {
			proved = proved || s > cs[c].off
		}
		checkRecords(t, res.recs, recs[:k])
		if want := !newest || proved; want != isCorruption(res.err) || !want && res.err != io.EOF {
			t.Fatalf("byte %d of chunk at %d (record %d) newest %v: %v, want corruption %v",
				d, cs[c].off, k, newest, res.err, want)
		}
		if want := fmt.Sprintf("at offset %d", cs[c].off); isCorruption(res.err) &&
			!strings.Contains(res.err.Error(), want) {
			t.Fatalf("byte %d: %v does not say %q", d, res.err, want)
		}
	}
}
