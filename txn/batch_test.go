package txn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

type op struct {
	kind       base.Kind
	key, value string
}

func buildBatch(t *testing.T, ops []op) *Batch {
	t.Helper()
	var b Batch
	for _, o := range ops {
		var err error
		if o.kind == base.KindSet {
			err = b.Set([]byte(o.key), []byte(o.value))
		} else {
			err = b.Delete([]byte(o.key))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

// decodeAll decodes every entry of repr.
func decodeAll(repr []byte) (seq uint64, entries []Entry, err error) {
	r, err := NewReader(repr)
	if err != nil {
		return 0, nil, err
	}
	for {
		e, ok, err := r.Next()
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			return r.Seq(), entries, nil
		}
		entries = append(entries, e)
	}
}

func TestBatchRoundTrip(t *testing.T) {
	big := strings.Repeat("x", 16384)
	cases := map[string][]op{
		"empty":         nil,
		"one set":       {{base.KindSet, "k", "v"}},
		"one delete":    {{base.KindDelete, "k", ""}},
		"empty key/val": {{base.KindSet, "", ""}, {base.KindDelete, "", ""}},
		"re-puts":       {{base.KindSet, "a", "1"}, {base.KindSet, "a", "2"}, {base.KindDelete, "a", ""}, {base.KindSet, "a", "3"}},
		"length edges": {
			{base.KindSet, big[:127], big[:128]}, {base.KindSet, big[:128], big[:127]},
			{base.KindSet, big[:16383], big}, {base.KindDelete, big[:16384], ""},
		},
		"max key": {{base.KindSet, strings.Repeat("k", MaxKeySize), "v"}},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			b := buildBatch(t, ops)
			SetSeq(b.Repr(), 1<<50+3)
			repr := b.Repr()
			if b.Len() != len(repr) || b.Count() != uint32(len(ops)) || b.Empty() != (len(ops) == 0) {
				t.Fatalf("Len %d Count %d Empty %v for %d ops of %d bytes", b.Len(), b.Count(), b.Empty(), len(ops), len(repr))
			}
			seq, count, err := DecodeHeader(repr)
			if err != nil || seq != 1<<50+3 || count != uint32(len(ops)) {
				t.Fatalf("DecodeHeader = %d, %d, %v", seq, count, err)
			}
			_, entries, err := decodeAll(repr)
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, repr, entries, ops)
			if re := reencode(seq, entries); !bytes.Equal(re, repr) {
				t.Fatalf("re-encoding differs:\n%x\n%x", re, repr)
			}
		})
	}
}

func checkEntries(t *testing.T, repr []byte, entries []Entry, ops []op) {
	t.Helper()
	if len(entries) != len(ops) {
		t.Fatalf("decoded %d entries, want %d", len(entries), len(ops))
	}
	for i, e := range entries {
		o := ops[i]
		if e.Index != uint32(i) || e.Kind != o.kind || string(e.Key) != o.key {
			t.Fatalf("entry %d = %+v, want %+v", i, e, o)
		}
		if o.kind == base.KindSet && string(e.Value) != o.value || o.kind == base.KindDelete && e.Value != nil {
			t.Fatalf("entry %d value %q, want %q", i, e.Value, o.value)
		}
		if string(repr[e.KeyOff:int(e.KeyOff)+len(e.Key)]) != o.key ||
			o.kind == base.KindSet && string(repr[e.ValOff:int(e.ValOff)+len(e.Value)]) != o.value {
			t.Fatalf("entry %d offsets %d/%d do not point at its key and value", i, e.KeyOff, e.ValOff)
		}
		if cap(e.Key) != len(e.Key) || cap(e.Value) != len(e.Value) {
			t.Fatalf("entry %d slices are not capped", i)
		}
	}
}

// reencode writes entries back as a representation with a plain Batch.
func reencode(seq uint64, entries []Entry) []byte {
	var b Batch
	for _, e := range entries {
		if e.Kind == base.KindSet {
			_ = b.Set(e.Key, e.Value)
		} else {
			_ = b.Delete(e.Key)
		}
	}
	SetSeq(b.Repr(), seq)
	return b.Repr()
}

// TestBatchWorkedExample pins the example documented in batch.go.
func TestBatchWorkedExample(t *testing.T) {
	b := buildBatch(t, []op{{base.KindSet, "k", "vv"}, {base.KindDelete, "a", ""}})
	SetSeq(b.Repr(), 7)
	want := []byte{
		7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
		1, 1, 'k', 2, 'v', 'v',
		0, 1, 'a',
	}
	if !bytes.Equal(b.Repr(), want) {
		t.Fatalf("repr %x, want %x", b.Repr(), want)
	}
}

// oversizeValue is one value over MaxValueSize for all the tests. It is
// never written to or copied, so its pages are never touched.
var oversizeValue = sync.OnceValue(func() []byte { return make([]byte, MaxValueSize+1) })

func TestBatchLimits(t *testing.T) {
	var b Batch
	if err := b.Set(make([]byte, MaxKeySize+1), nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	if err := b.Delete(make([]byte, MaxKeySize+1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	if err := b.Set([]byte("k"), oversizeValue()); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversize value: %v", err)
	}
	if _, err := checkEntry(MaxReprSize-10, base.KindSet, []byte("key"), []byte("value")); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("oversize batch: %v", err)
	}
	if _, err := checkEntry(MaxReprSize-11, base.KindSet, []byte("key"), []byte("value")); err != nil {
		t.Fatalf("batch at the limit: %v", err)
	}
	if b.Count() != 0 || b.Len() != HeaderSize || !b.Empty() {
		t.Fatalf("rejected writes changed the batch: count %d len %d", b.Count(), b.Len())
	}
}

// TestBatchResetKeepsRepr checks that Reset leaves a handed-off Repr intact.
func TestBatchResetKeepsRepr(t *testing.T) {
	b := buildBatch(t, []op{{base.KindSet, "key", "value"}})
	repr := b.Repr()
	saved := bytes.Clone(repr)
	b.Reset()
	if b.Count() != 0 || !b.Empty() || len(b.Repr()) != HeaderSize {
		t.Fatalf("after Reset: count %d, repr %x", b.Count(), b.Repr())
	}
	if err := b.Set([]byte("other"), []byte("bytes!")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(repr, saved) {
		t.Fatalf("Reset and Set modified the old repr: %x, was %x", repr, saved)
	}
}

func TestDecodeHeaderShort(t *testing.T) {
	for n := 0; n < HeaderSize; n++ {
		if _, _, err := DecodeHeader(make([]byte, n)); !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("header of %d bytes: %v", n, err)
		}
	}
}

// TestReaderRejectsTruncation checks every proper prefix of a batch.
func TestReaderRejectsTruncation(t *testing.T) {
	b := buildBatch(t, []op{
		{base.KindSet, "alpha", "one"}, {base.KindDelete, "beta", ""},
		{base.KindSet, strings.Repeat("k", 200), strings.Repeat("v", 300)}, {base.KindSet, "", ""},
	})
	repr := b.Repr()
	for n := 0; n < len(repr); n++ {
		_, _, err := decodeAll(repr[:n])
		if !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("prefix of %d of %d bytes: err %v", n, len(repr), err)
		}
	}
	if _, _, err := decodeAll(repr); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRejectsDamage(t *testing.T) {
	hdr := func(count uint32) []byte {
		return binary.LittleEndian.AppendUint32(make([]byte, 8), count)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	overKey := binary.AppendUvarint([]byte{1}, MaxKeySize+1)
	overVal := binary.AppendUvarint([]byte{1, 0}, MaxValueSize+1)
	cases := map[string][]byte{
		"unknown kind":          cat(hdr(1), []byte{2, 1, 'k'}),
		"kind 0xff":             cat(hdr(1), []byte{0xff, 1, 'k', 0}),
		"key past end":          cat(hdr(1), []byte{0, 5, 'k', 'e'}),
		"value past end":        cat(hdr(1), []byte{1, 1, 'k', 3, 'v'}),
		"missing value length":  cat(hdr(1), []byte{1, 1, 'k'}),
		"non-minimal key len":   cat(hdr(1), []byte{0, 0x81, 0x00, 'k'}),
		"non-minimal zero":      cat(hdr(1), []byte{1, 0x80, 0x00, 0}),
		"six-byte length":       cat(hdr(1), []byte{0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}),
		"key over limit":        cat(hdr(1), overKey, make([]byte, MaxKeySize+1)),
		"value over limit":      cat(hdr(1), overVal),
		"count too large":       cat(hdr(2), []byte{0, 1, 'k'}),
		"count beyond bytes":    cat(hdr(1<<31), []byte{0, 1, 'k'}),
		"trailing bytes":        cat(hdr(1), []byte{0, 1, 'k', 0}),
		"zero count with bytes": cat(hdr(0), []byte{0}),
	}
	for name, repr := range cases {
		_, _, err := decodeAll(repr)
		if !errors.Is(err, base.ErrCorruption) {
			t.Errorf("%s: err %v, want corruption", name, err)
		} else if !strings.Contains(err.Error(), "offset") && !strings.Contains(err.Error(), "count") {
			t.Errorf("%s: error %q names no offset", name, err)
		}
	}
}

// TestReaderStickyError checks that Next keeps failing after damage.
func TestReaderStickyError(t *testing.T) {
	repr := buildBatch(t, []op{{base.KindSet, "a", "1"}, {base.KindSet, "b", "2"}}).Repr()
	repr = bytes.Clone(repr)
	repr[HeaderSize+5] = 9 // the second entry's kind
	r, err := NewReader(repr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Next(); !ok || err != nil {
		t.Fatalf("first entry: %v %v", ok, err)
	}
	_, _, err1 := r.Next()
	_, _, err2 := r.Next()
	if !errors.Is(err1, base.ErrCorruption) || err1 != err2 {
		t.Fatalf("errors %v then %v", err1, err2)
	}
}
