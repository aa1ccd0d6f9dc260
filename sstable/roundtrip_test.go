package sstable

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/compress"
)

// TestFormatExample checks the worked example of writer.go byte for byte
// (the CRC32C bytes, marked cc there, are checked by Open).
func TestFormatExample(t *testing.T) {
	data := buildTable(t, 7, []kv{{ikey("a", 5, base.KindSet), []byte("x")}},
		WriterOptions{Compression: NoCompression, FilterBitsPerKey: -1})
	want := "00090161010500000000000078 0000000001000000 00cccccccc" +
		"096101050000000000 00 096101050000000000 00 05050100090101 00000161 00cccccccc" +
		"0009026101050000000000000015 0000000001000000 00cccccccc" +
		"3e00000000000000 1600000000000000 0000000000000000 0000000000000000" +
		"1a00000000000000 1f00000000000000 0700000000000000 01000000 cccccccc 8953535 40d0a1a0a"
	want = strings.ReplaceAll(want, " ", "")
	got := hex.EncodeToString(data)
	if len(got) != len(want) {
		t.Fatalf("table is %d bytes, want %d:\n%x", len(data), len(want)/2, data)
	}
	for i := range got {
		if want[i] != 'c' && got[i] != want[i] {
			t.Fatalf("byte %d differs:\ngot  %s\nwant %s", i/2, got, want)
		}
	}
	r := mustOpen(t, data, 7, ReaderOptions{})
	defer r.Close()
	if p := r.Properties(); !slices.Equal(p.Namespaces, []base.NamespaceID{'a'}) || p.NumEntries != 1 || p.RawKeyBytes != 9 {
		t.Fatalf("properties %+v", p)
	}
}

// codecs are the three compression options, by name.
var codecs = map[string]Compression{"none": NoCompression, "snappy": SnappyCompression, "zstd": ZstdCompression}

// TestRoundTrip writes random tables (many versions per key, deletions,
// values larger than a block) with every codec, tiny and large blocks, with
// and without a filter, and reads them back every way.
func TestRoundTrip(t *testing.T) {
	rng := newRand(t)
	n := 1500
	if raceEnabled {
		n = 400
	}
	for name, c := range codecs {
		for _, bs := range []int{64, 4096, 64 << 10} {
			for _, bits := range []int{-1, 10} {
				o := WriterOptions{BlockSize: bs, Compression: c, FilterBitsPerKey: bits}
				t.Run(fmt.Sprintf("%s/block=%d/bits=%d", name, bs, bits), func(t *testing.T) {
					kvs := randomKVs(rng, n, 6, 24, 300)
					kvs[rng.Intn(len(kvs))].val = bytes.Repeat([]byte("big"), 3*bs) // larger than a block
					checkTable(t, rng, kvs, o)
				})
			}
		}
	}
}

// checkTable writes kvs and checks every read path against them.
func checkTable(t *testing.T, rng *rand.Rand, kvs []kv, o WriterOptions) {
	data := buildTable(t, 3, kvs, o)
	r := mustOpen(t, data, 3, ReaderOptions{Cache: NewCache(1 << 20)})
	defer r.Close()
	checkProperties(t, r.Properties(), kvs)
	checkScan(t, r, kvs)
	checkGets(t, rng, r, kvs)
	checkSeeks(t, rng, r, kvs, 300)
}

func checkProperties(t *testing.T, p Properties, kvs []kv) {
	t.Helper()
	var dels, seqMin, seqMax uint64 = 0, base.MaxSeqNum, 0
	var ns []base.NamespaceID
	for _, e := range kvs {
		if e.key.Kind() == base.KindDelete {
			dels++
		}
		seqMin, seqMax = min(seqMin, e.key.Seq()), max(seqMax, e.key.Seq())
		if id, _, ok := base.SplitNamespace(e.key.UserKey); ok {
			ns = append(ns, id)
		}
	}
	slices.Sort(ns)
	ns = slices.Compact(ns)
	if p.NumEntries != uint64(len(kvs)) || p.NumDeletions != dels || p.SmallestSeq != seqMin || p.LargestSeq != seqMax ||
		base.CompareInternal(p.Smallest, kvs[0].key) != 0 || base.CompareInternal(p.Largest, kvs[len(kvs)-1].key) != 0 ||
		!slices.Equal(p.Namespaces, ns) {
		t.Fatalf("properties %+v do not match the %d entries (namespaces %v)", p, len(kvs), ns)
	}
}

// checkScan compares full forward and backward scans with kvs.
func checkScan(t *testing.T, r *Reader, kvs []kv) {
	t.Helper()
	it := r.NewIter()
	defer it.Close()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(kvs) {
			t.Fatalf("forward scan yields more than %d entries", len(kvs))
		}
		if err := sameEntry(it, kvs[i]); err != nil {
			t.Fatalf("forward entry %d: %v", i, err)
		}
		i++
	}
	if it.Error() != nil || i != len(kvs) {
		t.Fatalf("forward scan: %d of %d entries, error %v", i, len(kvs), it.Error())
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		i--
		if err := sameEntry(it, kvs[i]); err != nil {
			t.Fatalf("backward entry %d: %v", i, err)
		}
	}
	if it.Error() != nil || i != 0 {
		t.Fatalf("backward scan stopped at %d, error %v", i, it.Error())
	}
}

// checkGets compares Get at random sequence numbers with the model, for
// present keys and absent ones.
func checkGets(t *testing.T, rng *rand.Rand, r *Reader, kvs []kv) {
	t.Helper()
	for range 2000 {
		uk := kvs[rng.Intn(len(kvs))].key.UserKey
		if rng.Intn(4) == 0 {
			uk = append(slices.Clone(uk), 'z')
		}
		seq := uint64(rng.Int63n(1 << 21))
		if rng.Intn(10) == 0 {
			seq = base.MaxSeqNum + uint64(rng.Intn(2))
		}
		v, kind, found, err := r.Get(uk, seq)
		want, wantFound := modelGet(kvs, uk, seq)
		if err != nil || found != wantFound || (found && (kind != want.key.Kind() || !bytes.Equal(v, want.val))) {
			t.Fatalf("Get(%q, %d) = %q, %v, %v, %v; want %v %v", uk, seq, v, kind, found, err, want.key, wantFound)
		}
	}
}

// checkSeeks runs random seeks followed by random steps, in both directions,
// against the sorted model.
func checkSeeks(t *testing.T, rng *rand.Rand, r *Reader, kvs []kv, n int) {
	t.Helper()
	it := r.NewIter()
	defer it.Close()
	for range n {
		uk := randomProbe(rng, kvs)
		var pos int // model position, -1 or len(kvs) when invalid
		var ok bool
		if rng.Intn(2) == 0 {
			ok = it.SeekGE(uk)
			pos, _ = slices.BinarySearchFunc(kvs, uk, func(e kv, k []byte) int { return cmpGE(e.key.UserKey, k) })
		} else {
			ok = it.SeekLT(uk)
			p, _ := slices.BinarySearchFunc(kvs, uk, func(e kv, k []byte) int { return cmpGE(e.key.UserKey, k) })
			pos = p - 1
		}
		for step := 0; ; step++ {
			if valid := pos >= 0 && pos < len(kvs); ok != valid {
				t.Fatalf("after seek %q and %d steps: valid %v, model position %d of %d (error %v)", uk, step, ok, pos, len(kvs), it.Error())
			}
			if !ok || step == 20 {
				break
			}
			if err := sameEntry(it, kvs[pos]); err != nil {
				t.Fatalf("after seek %q and %d steps: %v", uk, step, err)
			}
			if rng.Intn(2) == 0 {
				ok, pos = it.Next(), pos+1
			} else {
				ok, pos = it.Prev(), pos-1
			}
		}
	}
}

// cmpGE orders entries against a seek key so that BinarySearch finds the
// first entry whose user key is >= k.
func cmpGE(uk, k []byte) int {
	if bytes.Compare(uk, k) < 0 {
		return -1
	}
	return 1
}

// randomProbe returns a key near the table's keys: one of them, a
// neighbour, or outside the range.
func randomProbe(rng *rand.Rand, kvs []kv) []byte {
	uk := slices.Clone(kvs[rng.Intn(len(kvs))].key.UserKey)
	switch rng.Intn(5) {
	case 0:
		return append(uk, 0)
	case 1:
		uk[len(uk)-1]--
		return uk
	case 2:
		return []byte{byte(rng.Intn(256))}
	}
	return uk
}

// TestEmptyTable writes and reads a table without entries.
func TestEmptyTable(t *testing.T) {
	for _, bits := range []int{-1, 10} {
		data := buildTable(t, 1, nil, WriterOptions{FilterBitsPerKey: bits})
		r := mustOpen(t, data, 1, ReaderOptions{})
		it := r.NewIter()
		if it.First() || it.Last() || it.SeekGE([]byte("a")) || it.SeekLT([]byte("a")) || it.Close() != nil {
			t.Fatal("an empty table has entries")
		}
		if _, _, found, err := r.Get([]byte("a"), 9); found || err != nil {
			t.Fatalf("Get in an empty table: %v %v", found, err)
		}
		if p := r.Properties(); p.NumEntries != 0 || p.Smallest.UserKey != nil {
			t.Fatalf("properties %+v", p)
		}
		r.Close()
	}
}

// TestManyVersionsAcrossBlocks puts hundreds of versions of one key across
// tiny blocks: Get at every sequence number must find the right one.
func TestManyVersionsAcrossBlocks(t *testing.T) {
	var kvs []kv
	kvs = append(kvs, kv{ikey("a", 1, base.KindSet), []byte("a")})
	for s := uint64(1000); s >= 10; s -= 10 {
		kind := base.KindSet
		if s%70 == 0 {
			kind = base.KindDelete
		}
		val := []byte(fmt.Sprint(s))
		if kind == base.KindDelete {
			val = nil
		}
		kvs = append(kvs, kv{ikey("k", s, kind), val})
	}
	kvs = append(kvs, kv{ikey("z", 1, base.KindSet), []byte("z")})
	data := buildTable(t, 2, kvs, WriterOptions{BlockSize: 32})
	r := mustOpen(t, data, 2, ReaderOptions{})
	defer r.Close()
	if r.Properties().NumDataBlocks < 20 {
		t.Fatalf("only %d blocks", r.Properties().NumDataBlocks)
	}
	for s := uint64(0); s <= 1010; s++ {
		v, kind, found, err := r.Get([]byte("k"), s)
		want, wantFound := modelGet(kvs, []byte("k"), s)
		if err != nil || found != wantFound || (found && (kind != want.key.Kind() || !bytes.Equal(v, want.val))) {
			t.Fatalf("Get(k, %d) = %q %v %v %v, want %s", s, v, kind, found, err, want.key)
		}
	}
	checkScan(t, r, kvs)
}

// TestSeparator checks the index separators' bounds and shortening.
func TestSeparator(t *testing.T) {
	enc := func(k base.InternalKey) []byte { return k.Encode(nil) }
	cases := []struct {
		a, b  base.InternalKey
		short string // expected user key of a shortened separator, "" if none
	}{
		{ikey("abc", 5, base.KindSet), ikey("abe", 9, base.KindSet), "abd"},
		{ikey("abc", 5, base.KindSet), ikey("abd", 9, base.KindSet), ""},
		{ikey("abc", 5, base.KindSet), ikey("abc", 4, base.KindSet), ""},
		{ikey("ab", 5, base.KindSet), ikey("abc", 4, base.KindSet), ""},
		{ikey("a\xff", 5, base.KindSet), ikey("b", 4, base.KindSet), ""},
		{ikey("a", 5, base.KindSet), ikey("b", 4, base.KindSet), ""},
		{ikey("a", 5, base.KindSet), ikey("zzz", 4, base.KindSet), "b"},
		{ikey("aa", 5, base.KindSet), ikey("zzz", 4, base.KindSet), "b"},
	}
	for _, c := range cases {
		s, ok := decodeKey(appendSeparator(nil, enc(c.a), enc(c.b)))
		if !ok || base.CompareInternal(c.a, s) > 0 || base.CompareInternal(s, c.b) >= 0 {
			t.Errorf("separator(%s, %s) = %s: out of bounds", c.a, c.b, s)
		}
		if c.short != "" && string(s.UserKey) != c.short {
			t.Errorf("separator(%s, %s) = %s, want user key %q", c.a, c.b, s, c.short)
		}
		if c.short == "" && base.CompareInternal(s, c.a) != 0 {
			t.Errorf("separator(%s, %s) = %s, want %s", c.a, c.b, s, c.a)
		}
	}
}

// TestIncompressible checks that blocks that do not compress are stored
// uncompressed, and that compressible ones are compressed.
func TestIncompressible(t *testing.T) {
	rng := newRand(t)
	for name, c := range codecs {
		random := make([]kv, 200)
		for i := range random {
			random[i] = kv{ikey(fmt.Sprintf("k%05d", i), 1, base.KindSet), make([]byte, 100)}
			rng.Read(random[i].val)
		}
		data := buildTable(t, 1, random, WriterOptions{Compression: c})
		if codec := data[blockLen(t, data, 0)]; codec != byte(compress.None) {
			t.Errorf("%s: random data block stored with codec %d", name, codec)
		}
		zeros := slices.Clone(random)
		for i := range zeros {
			zeros[i].val = make([]byte, 100)
		}
		data = buildTable(t, 1, zeros, WriterOptions{Compression: c})
		if codec := data[blockLen(t, data, 0)]; codec != byte(c.codec()) {
			t.Errorf("%s: compressible data block stored with codec %d", name, codec)
		}
	}
}

// blockLen returns the stored length of the data block at off.
func blockLen(t *testing.T, data []byte, off uint64) uint64 {
	t.Helper()
	r := mustOpen(t, data, 1, ReaderOptions{})
	defer r.Close()
	for _, e := range r.index {
		if e.h.offset == off {
			return e.h.length
		}
	}
	t.Fatalf("no data block at %d", off)
	return 0
}

// TestHugeCompressionFallsBack checks the 32x decode bound: a value of
// zeros that Zstd would shrink far more is stored so that it decodes to at
// most 32 times its stored size, and reads back.
func TestHugeCompressionFallsBack(t *testing.T) {
	for name, c := range codecs {
		kvs := []kv{{ikey("k", 1, base.KindSet), make([]byte, 1<<20)}}
		data := buildTable(t, 1, kvs, WriterOptions{Compression: c})
		n := blockLen(t, data, 0)
		if n*maxDecodeRatio < 1<<20 {
			t.Fatalf("%s: a 1 MiB block stored in %d bytes", name, n)
		}
		r := mustOpen(t, data, 1, ReaderOptions{})
		v, _, found, err := r.Get([]byte("k"), 1)
		if err != nil || !found || !bytes.Equal(v, kvs[0].val) {
			t.Fatalf("%s: Get = %d bytes, %v, %v", name, len(v), found, err)
		}
		r.Close()
	}
}

// TestNamespaces checks the namespace ids recorded in the properties, for
// one-, two- and four-byte prefixes and keys with no valid prefix.
func TestNamespaces(t *testing.T) {
	ids := []base.NamespaceID{0, 1, 127, 128, 300, 1 << 14, 1<<20 + 7, base.MaxNamespaceID}
	var kvs []kv
	for _, id := range ids {
		for j := range 3 {
			uk := base.AppendNamespace(nil, id)
			uk = append(uk, byte('a'+j))
			kvs = append(kvs, kv{base.InternalKey{UserKey: uk, Trailer: base.MakeTrailer(uint64(j), base.KindSet)}, []byte("v")})
		}
	}
	kvs = append(kvs, kv{ikey("\xff\xff", 1, base.KindSet), nil}) // no valid prefix
	sortKVs(kvs)
	r := mustOpen(t, buildTable(t, 1, kvs, WriterOptions{BlockSize: 64}), 1, ReaderOptions{})
	defer r.Close()
	if got := r.Properties().Namespaces; !slices.Equal(got, ids) {
		t.Fatalf("namespaces %v, want %v", got, ids)
	}
	checkProperties(t, r.Properties(), kvs)
}
