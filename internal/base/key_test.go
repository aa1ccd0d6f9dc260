package base

import (
	"bytes"
	"errors"
	"testing"
)

func TestInternalKeyRoundTripAndOrder(t *testing.T) {
	keys := []InternalKey{
		{[]byte(""), MakeTrailer(5, KindSet)},
		{[]byte("a"), MakeTrailer(9, KindSet)},
		{[]byte("a"), MakeTrailer(9, KindDelete)},
		{[]byte("a"), MakeTrailer(1, KindSet)},
		{[]byte("ab"), MakeTrailer(MaxSeqNum, KindSet)},
		{[]byte("b"), MakeTrailer(0, KindDelete)},
	}
	for i, k := range keys {
		enc := k.Encode(nil)
		dec, err := DecodeInternalKey(enc)
		if err != nil || CompareInternal(dec, k) != 0 || dec.Seq() != k.Seq() || dec.Kind() != k.Kind() {
			t.Fatalf("%v: decoded %v, %v", k, dec, err)
		}
		if i > 0 && CompareInternal(keys[i-1], k) >= 0 {
			t.Fatalf("%v does not sort before %v", keys[i-1], k)
		}
	}
	if _, err := DecodeInternalKey([]byte("short")); !errors.Is(err, ErrCorruption) {
		t.Fatalf("short key: %v", err)
	}
	bad := InternalKey{[]byte("k"), MakeTrailer(1, 7)}.Encode(nil)
	if _, err := DecodeInternalKey(bad); !errors.Is(err, ErrCorruption) {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestNamespaceOrder(t *testing.T) {
	ids := []NamespaceID{0, 1, 2, 126, 127, 128, 200, 16383, 16384, 1 << 20, MaxNamespaceID}
	var prev []byte
	for _, id := range ids {
		p := AppendNamespace(nil, id)
		if len(p) != NamespacePrefixLen(id) {
			t.Fatalf("id %d: prefix %x has length %d, want %d", id, p, len(p), NamespacePrefixLen(id))
		}
		got, rest, ok := SplitNamespace(append(p, "key"...))
		if !ok || got != id || string(rest) != "key" {
			t.Fatalf("id %d: split %d %q %v", id, got, rest, ok)
		}
		if prev != nil && bytes.Compare(prev, p) >= 0 {
			t.Fatalf("prefix of %d (%x) does not sort after %x", id, p, prev)
		}
		if ub := NamespaceUpperBound(id); ub != nil && bytes.Compare(append(p, 0xff, 0xff), ub) >= 0 {
			t.Fatalf("upper bound of %d too low", id)
		}
		prev = p
	}
	if NamespaceUpperBound(MaxNamespaceID) != nil {
		t.Fatal("the last namespace has an upper bound")
	}
	for _, bad := range [][]byte{nil, {0x80}, {0xc0, 1, 2}, {0xe0}} {
		if _, _, ok := SplitNamespace(bad); ok {
			t.Fatalf("SplitNamespace(%x) accepted", bad)
		}
	}
}

// FuzzInternalKey checks that decoding never panics, that what decodes
// encodes back to the same bytes, and that the order of two keys is the
// order of (user key asc, trailer desc).
func FuzzInternalKey(f *testing.F) {
	f.Add([]byte("a\x01\x01\x00\x00\x00\x00\x00\x00"), []byte("b\x00\x02\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte{}, []byte("k\x01\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ka, erra := DecodeInternalKey(a)
		kb, errb := DecodeInternalKey(b)
		if erra != nil || errb != nil {
			return
		}
		if !bytes.Equal(ka.Encode(nil), a) {
			t.Fatalf("round trip of %x", a)
		}
		c := bytes.Compare(ka.UserKey, kb.UserKey)
		if c == 0 {
			switch {
			case ka.Trailer > kb.Trailer:
				c = -1
			case ka.Trailer < kb.Trailer:
				c = 1
			}
		}
		if got := CompareInternal(ka, kb); got != c {
			t.Fatalf("CompareInternal(%v, %v) = %d, want %d", ka, kb, got, c)
		}
		id, rest, ok := SplitNamespace(a)
		if ok && len(rest) > len(a) {
			t.Fatalf("split %d grew", id)
		}
	})
}
