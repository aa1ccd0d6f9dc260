package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// sampleEdits covers every field, alone and together, with values at their
// bounds.
func sampleEdits() map[string]*VersionEdit {
	big := meta(1<<40, "", "\xff\xff", 0, base.MaxSeqNum)
	big.Size = 1<<64 - 1
	big.Namespaces = []base.NamespaceID{0, 1, 127, 128, 1 << 14, base.MaxNamespaceID}
	return map[string]*VersionEdit{
		"empty":         {},
		"log number":    {LogNumber: 7},
		"max log":       {LogNumber: 1<<64 - 1},
		"next file":     {NextFileNumber: 300},
		"last seq":      {LastSeqNum: base.MaxSeqNum},
		"deleted":       {DeletedFiles: []DeletedFile{{0, 1}, {6, 1<<64 - 1}, {3, 5}}},
		"new":           {NewFiles: []NewFile{{0, meta(4, "a", "c", 1, 9)}, {6, big}}},
		"same key":      {NewFiles: []NewFile{{2, meta(9, "k", "k", 3, 3)}}},
		"created":       {CreatedNamespaces: []Namespace{{2, "orders"}, {base.MaxNamespaceID, ""}, {300, "\x00\xff"}}},
		"next ns":       {NextNamespaceID: base.MaxNamespaceID + 1},
		"dropped":       {DroppedNamespaces: []base.NamespaceID{2, 70000}},
		"reserved drop": {DroppedNamespaces: []base.NamespaceID{0}}, // Decode allows it; Builder refuses it
		"everything": {
			LogNumber: 3, NextFileNumber: 12, LastSeqNum: 99,
			DeletedFiles:      []DeletedFile{{0, 4}, {1, 5}},
			NewFiles:          []NewFile{{1, meta(10, "a", "m", 10, 20)}, {1, meta(11, "n", "z", 10, 20)}},
			CreatedNamespaces: []Namespace{{5, "five"}},
			NextNamespaceID:   9,
			DroppedNamespaces: []base.NamespaceID{3},
		},
	}
}

func TestEditRoundTrip(t *testing.T) {
	for name, e := range sampleEdits() {
		t.Run(name, func(t *testing.T) {
			enc := e.Encode(nil)
			got, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
			if !reflect.DeepEqual(&got, e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, *e)
			}
			if again := got.Encode([]byte("prefix")); !bytes.Equal(again[6:], enc) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again[6:], enc)
			}
		})
	}
}

func TestEditRoundTripRandom(t *testing.T) {
	rng := newRand(t)
	for i := range 2000 {
		e := randomEdit(rng)
		enc := e.Encode(nil)
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("edit %d: Decode: %v", i, err)
		}
		if !reflect.DeepEqual(&got, e) {
			t.Fatalf("edit %d: round trip:\n got %+v\nwant %+v", i, got, *e)
		}
	}
}

// randomEdit returns a well-formed (not necessarily applicable) edit.
func randomEdit(rng *rand.Rand) *VersionEdit {
	e := &VersionEdit{}
	scalar := func() uint64 {
		if rng.IntN(3) == 0 {
			return 0
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	e.LogNumber, e.NextFileNumber = scalar(), scalar()
	e.LastSeqNum = scalar() & base.MaxSeqNum
	for range rng.IntN(4) {
		e.DeletedFiles = append(e.DeletedFiles, DeletedFile{rng.IntN(NumLevels), scalar() | 1})
	}
	for range rng.IntN(4) {
		m := meta(scalar()|1, randKey(rng), randKey(rng), rng.Uint64N(100), 100+rng.Uint64N(100))
		for id := base.NamespaceID(rng.IntN(3)); id < 1000 && rng.IntN(3) > 0; id += 1 + base.NamespaceID(rng.IntN(300)) {
			m.Namespaces = append(m.Namespaces, id)
		}
		e.NewFiles = append(e.NewFiles, NewFile{rng.IntN(NumLevels), m})
	}
	for range rng.IntN(3) {
		e.CreatedNamespaces = append(e.CreatedNamespaces, Namespace{base.NamespaceID(rng.Uint32() & base.MaxNamespaceID), randKey(rng)})
	}
	e.NextNamespaceID = base.NamespaceID(scalar() % (uint64(base.MaxNamespaceID) + 2))
	for range rng.IntN(3) {
		e.DroppedNamespaces = append(e.DroppedNamespaces, base.NamespaceID(rng.Uint32()&base.MaxNamespaceID))
	}
	return e
}

func randKey(rng *rand.Rand) string {
	b := make([]byte, rng.IntN(12))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return string(b)
}

func TestEditWorkedExample(t *testing.T) {
	e := &VersionEdit{NextFileNumber: 5, DeletedFiles: []DeletedFile{{1, 3}}}
	want := []byte{0x01, 0x02, 0x01, 0x05, 0x04, 0x02, 0x01, 0x03}
	if got := e.Encode(nil); !bytes.Equal(got, want) {
		t.Fatalf("Encode = % x, want % x", got, want)
	}
	if got := (&VersionEdit{}).Encode(nil); !bytes.Equal(got, []byte{editVersion}) {
		t.Fatalf("empty edit = % x", got)
	}
}

// checkCorrupt fails unless Decode(b) fails with ErrCorruption.
func checkCorrupt(t *testing.T, what string, b []byte) {
	t.Helper()
	e, err := Decode(b)
	if err == nil {
		t.Fatalf("%s: Decode(% x) = %+v, want an error", what, b, e)
	}
	if !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("%s: Decode(% x): %v does not wrap ErrCorruption", what, b, err)
	}
}

func TestDecodeRejectsTruncation(t *testing.T) {
	for name, e := range sampleEdits() {
		enc := e.Encode(nil)
		for n := 0; n < len(enc); n++ {
			// A cut at a field boundary is a valid shorter edit; any other cut is damage.
			if _, err := Decode(enc[:n]); err == nil && !isFieldBoundary(enc, n) {
				t.Fatalf("%s: truncation to %d of %d bytes accepted", name, n, len(enc))
			} else if err != nil && !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("%s: truncation to %d: %v", name, n, err)
			}
		}
	}
}

// isFieldBoundary tells whether a field of enc ends (or the version byte
// ends) at offset n.
func isFieldBoundary(enc []byte, n int) bool {
	off := 1
	for off < n {
		_, a := binary.Uvarint(enc[off:])
		l, b := binary.Uvarint(enc[off+a:])
		off += a + b + int(l)
	}
	return off == n && n > 0
}

func TestDecodeRejectsCorruption(t *testing.T) {
	hdr := func(tag, n int) []byte { return appendHeader([]byte{editVersion}, tag, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	field := func(tag int, body ...[]byte) []byte { b := cat(body...); return cat(hdr(tag, len(b)), b) }
	good := (&VersionEdit{NewFiles: []NewFile{{1, meta(4, "a", "c", 1, 9)}}}).Encode(nil)
	cases := map[string][]byte{
		"empty":              {},
		"version 0":          {0},
		"version 2":          {2, 2, 1, 5},
		"unknown tag 0":      cat(hdr(0, 1), uv(1)),
		"unknown tag 9":      cat(hdr(9, 1), uv(1)),
		"huge tag":           cat(hdr(1<<40, 0)),
		"tag overflow":       {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"length past end":    cat(hdr(1, 5), uv(1)),
		"length huge":        cat(hdr(1, 1<<62), uv(1)),
		"length cut":         {1, 1, 0x80},
		"zero log number":    cat(hdr(1, 1), uv(0)),
		"trailing in field":  cat(hdr(1, 2), uv(1), []byte{0}),
		"empty scalar body":  cat(hdr(2, 0)),
		"seq too large":      cat(hdr(3, uvarintLen(base.MaxSeqNum+1)), uv(base.MaxSeqNum+1)),
		"scalar twice":       cat(hdr(1, 1), uv(1), appendHeader(nil, 1, 1), uv(2)),
		"tags out of order":  cat(hdr(2, 1), uv(1), appendHeader(nil, 1, 1), uv(2)),
		"level 7":            cat(hdr(4, 2), uv(7), uv(1)),
		"deleted file 0":     cat(hdr(4, 2), uv(1), uv(0)),
		"deleted no number":  cat(hdr(4, 1), uv(1)),
		"ns id too large":    cat(hdr(8, 4), uv(uint64(base.MaxNamespaceID)+1)),
		"next ns too large":  cat(hdr(7, 4), uv(uint64(base.MaxNamespaceID)+2)),
		"created no id":      cat(hdr(6, 0)),
		"new file short key": field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(7), []byte("1234567"), uv(8), make([]byte, 8), uv(0)),
		"new file bad kind":  field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), bytes.Repeat([]byte{7}, 8), uv(8), make([]byte, 8), uv(0)),
		"new file key cut":   field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(9), make([]byte, 8)),
		"new file no count":  field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(8), make([]byte, 8)),
		"ns count too big":   field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(8), make([]byte, 8), uv(5), uv(1), uv(2)),
		"ns ids unsorted":    field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(8), make([]byte, 8), uv(2), uv(2), uv(2)),
		"ns id in file big":  field(5, uv(1), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(8), make([]byte, 8), uv(1), uv(1<<29)),
		"file seq too large": field(5, uv(1), uv(4), uv(0), uv(0), uv(base.MaxSeqNum+1), uv(8), make([]byte, 8), uv(8), make([]byte, 8), uv(0)),
		"new file level 9":   field(5, uv(9), uv(4), uv(0), uv(0), uv(0), uv(8), make([]byte, 8), uv(8), make([]byte, 8), uv(0)),
	}
	for name, b := range cases {
		checkCorrupt(t, name, b)
	}
	// Every single-byte change of a good edit either decodes or is
	// corruption; a change of the version byte or a tag never decodes as the
	// same edit.
	for i := range good {
		for _, x := range []byte{0x00, 0x01, 0x7f, 0x80, 0xff} {
			b := bytes.Clone(good)
			b[i] = x
			if _, err := Decode(b); err != nil && !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("byte %d = %#x: %v", i, x, err)
			}
		}
	}
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	e := sampleEdits()["everything"]
	enc := e.Encode(nil)
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xee
	}
	if !reflect.DeepEqual(&got, e) {
		t.Fatalf("decoded edit changed with its input: %+v", got)
	}
}

func TestDecodeErrorNamesOffset(t *testing.T) {
	b := append((&VersionEdit{LogNumber: 1}).Encode(nil), 0x63, 0x00)
	_, err := Decode(b)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(fmt.Sprintf("byte %d", 4))) {
		t.Fatalf("Decode: %v, want the offset 4 of the unknown tag", err)
	}
}
