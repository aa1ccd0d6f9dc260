package sstable

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/compress"
)

var regenCorpus = flag.Bool("regen-corpus", false, "rewrite the generated seeds of testdata/fuzz")

// FuzzBlockDecode feeds arbitrary bytes to the block check and the block
// iterator: neither may panic; the iterator, even over a block the check
// refused, must stop; over an accepted block it must yield exactly the
// checked number of strictly increasing keys, the same backward, and seek
// to each of them.
func FuzzBlockDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	for _, b := range sampleBlocks(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := checkBlock(b, blockCheck{})
		if err != nil {
			walkUnchecked(b)
			return
		}
		keys := checkAcceptedBlock(t, b, n)
		if _, err := checkBlock(b, blockCheck{everyRestart: true}); err == nil {
			if _, err := parseIndex(b, n, 1<<40); err == nil && len(keys) != n {
				t.Fatal("parseIndex accepted a block the check counted differently")
			}
		}
	})
}

// walkUnchecked runs an iterator over a block that checkBlock refused: it may
// stop anywhere, but must stop and must not panic.
func walkUnchecked(b []byte) {
	var it blockIter
	if it.init(b) != nil {
		return
	}
	for ok, steps := it.First(), 0; ok && steps < len(b); ok, steps = it.Next(), steps+1 {
	}
	for ok, steps := it.Last(), 0; ok && steps < len(b); ok, steps = it.Prev(), steps+1 {
	}
	it.SeekGE(base.InternalKey{UserKey: []byte("m"), Trailer: maxTrailer})
	it.SeekLT(base.InternalKey{UserKey: []byte("m"), Trailer: maxTrailer})
}

// checkAcceptedBlock checks the iterator over a block checkBlock accepted
// with n entries, and returns the keys.
func checkAcceptedBlock(t *testing.T, b []byte, n int) []base.InternalKey {
	var it blockIter
	if err := it.init(b); err != nil {
		t.Fatal(err)
	}
	var keys []base.InternalKey
	for ok := it.First(); ok; ok = it.Next() {
		k := base.InternalKey{UserKey: bytes.Clone(it.ikey.UserKey), Trailer: it.ikey.Trailer}
		if len(keys) > 0 && base.CompareInternal(keys[len(keys)-1], k) >= 0 {
			t.Fatalf("keys not increasing: %s then %s", keys[len(keys)-1], k)
		}
		keys = append(keys, k)
	}
	if it.err != nil || len(keys) != n {
		t.Fatalf("forward: %d keys of %d, error %v", len(keys), n, it.err)
	}
	i := n
	for ok := it.Last(); ok; ok = it.Prev() {
		i--
		if i < 0 || base.CompareInternal(it.ikey, keys[i]) != 0 {
			t.Fatalf("backward entry %d differs", i)
		}
	}
	if it.err != nil || i != 0 {
		t.Fatalf("backward stopped at %d, error %v", i, it.err)
	}
	for j, k := range keys {
		if !it.SeekGE(k) || base.CompareInternal(it.ikey, k) != 0 {
			t.Fatalf("SeekGE(%s) missed", k)
		}
		if ok := it.SeekLT(k); ok != (j > 0) || (ok && base.CompareInternal(it.ikey, keys[j-1]) != 0) {
			t.Fatalf("SeekLT(%s) wrong", k)
		}
	}
	return keys
}

// FuzzSSTableOpen opens arbitrary bytes as a table (with the footer's own
// file number). When reseal is set, the checksums are first recomputed, so
// that the decoders behind them are reached. Open must fail or give a Reader
// whose iterators yield strictly increasing keys (decreasing backward), the
// same both ways, that Get finds; nothing may panic, and reading allocates
// at most a fixed multiple of the file's size.
func FuzzSSTableOpen(f *testing.F) {
	for _, s := range sampleTables(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	compress.Decode(compress.Zstd, nil, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00}, 0) // build the shared decoder
	f.Fuzz(func(t *testing.T, data []byte, reseal bool) {
		data = bytes.Clone(data)
		fileNum := uint64(0)
		if len(data) >= footerLen {
			fileNum = binary.LittleEndian.Uint64(data[len(data)-footerLen+48:])
		}
		if reseal {
			resealTable(data, fileNum)
		}
		r, err := openBytes(data, fileNum, ReaderOptions{})
		if err != nil {
			return
		}
		checkMemory(t, r, len(data))
		keys := scanOpened(t, r)
		for i, k := range keys {
			if i > 64 {
				break
			}
			// A crafted table may carry a valid checksum over a filter
			// that misses its keys (damage cannot: the checksum catches
			// it), so only keys the filter admits must be found.
			if r.hasFilter && !r.filter.mayContain(k.UserKey) {
				continue
			}
			_, kind, found, err := r.Get(k.UserKey, k.Seq())
			if err == nil && (!found || kind != k.Kind()) {
				t.Fatalf("Get(%s) = %v, %v: the scan saw it", k, kind, found)
			}
		}
		r.Get([]byte("m"), base.MaxSeqNum)
		r.Close()
	})
}

// checkMemory checks that what r holds, and every data block it decodes,
// is bounded by a fixed multiple of the file's size: index entries take 48
// bytes for at least 13 decoded bytes of an index block that decodes to at
// most 32 times its stored size, hence 128; the index block itself adds 32.
// (Measuring the heap instead is flaky: a fuzz worker allocates on other
// goroutines.)
func checkMemory(t *testing.T, r *Reader, size int) {
	held := uintptr(cap(r.index))*unsafe.Sizeof(indexEntry{}) + uintptr(len(r.filter.lines)) +
		uintptr(cap(r.props.Namespaces))*unsafe.Sizeof(base.NamespaceID(0))
	if held > 128*uintptr(size) {
		t.Fatalf("a %d-byte table holds %d bytes of metadata", size, held)
	}
	for i := range r.index {
		b, err := r.dataBlock(i, true)
		if err != nil {
			return
		}
		if uint64(len(b)) > maxDecodeRatio*r.index[i].h.length {
			t.Fatalf("data block %d of %d stored bytes decodes to %d", i, r.index[i].h.length, len(b))
		}
	}
}

// scanOpened scans r both ways, checks order and agreement, and returns the
// keys.
func scanOpened(t *testing.T, r *Reader) []base.InternalKey {
	var keys []base.InternalKey
	it := r.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
		k := base.InternalKey{UserKey: bytes.Clone(it.Key().UserKey), Trailer: it.Key().Trailer}
		if len(keys) > 0 && base.CompareInternal(keys[len(keys)-1], k) >= 0 {
			t.Fatalf("keys not increasing: %s then %s", keys[len(keys)-1], k)
		}
		keys = append(keys, k)
	}
	fwdErr := it.Close()
	it = r.NewIter()
	i := len(keys)
	var prev *base.InternalKey
	for ok := it.Last(); ok; ok = it.Prev() {
		k := it.Key()
		if prev != nil && base.CompareInternal(k, *prev) >= 0 {
			t.Fatalf("keys not decreasing backward: %s then %s", *prev, k)
		}
		i--
		if fwdErr == nil && (i < 0 || base.CompareInternal(k, keys[i]) != 0) {
			t.Fatalf("backward entry %d differs from forward", i)
		}
		kk := base.InternalKey{UserKey: bytes.Clone(k.UserKey), Trailer: k.Trailer}
		prev = &kk
	}
	if bwdErr := it.Close(); fwdErr == nil && bwdErr == nil && i != 0 {
		t.Fatalf("backward scan saw %d fewer entries than forward", i)
	}
	return keys
}

// resealTable recomputes the checksums of the footer, of the blocks it
// names and of the data blocks the index names, in place, wherever the
// handles fit in data.
func resealTable(data []byte, fileNum uint64) {
	if len(data) < footerLen {
		return
	}
	ft := data[len(data)-footerLen:]
	binary.LittleEndian.PutUint32(ft[60:], crc32.Checksum(ft[:60], castagnoli))
	handle := func(i int) blockHandle {
		return blockHandle{offset: binary.LittleEndian.Uint64(ft[16*i:]), length: binary.LittleEndian.Uint64(ft[16*i+8:])}
	}
	limit := uint64(len(data) - footerLen)
	seal := func(h blockHandle) []byte {
		if h.offset > limit || h.length > limit || h.end() > limit {
			return nil
		}
		stored := data[h.offset : h.offset+h.length]
		codec := data[h.offset+h.length]
		binary.LittleEndian.PutUint32(data[h.offset+h.length+1:], blockChecksum(stored, codec, fileNum, h.offset))
		b, err := compress.Decode(compress.Codec(codec), nil, stored, maxDecodeRatio*len(stored))
		if err != nil {
			return nil
		}
		return b
	}
	seal(handle(1))
	seal(handle(2))
	index := seal(handle(0))
	var it blockIter
	if index == nil || it.init(index) != nil {
		return
	}
	for ok, n := it.First(), 0; ok && n < len(index); ok, n = it.Next(), n+1 {
		if h, ok := decodeHandle(it.val); ok {
			seal(h)
		}
	}
}

// sampleTables returns small valid tables of file number 1: every codec,
// with and without a filter, tiny blocks, many versions, an empty one.
func sampleTables(tb testing.TB) map[string][]byte {
	kvs := smallKVs(40, 'a')
	long := []kv{{ikey("a", 9, base.KindSet), bytes.Repeat([]byte("v"), 300)}, {ikey("a", 3, base.KindDelete), nil}, {ikey("b", 1, base.KindSet), []byte("x")}}
	s := map[string][]byte{
		"empty":        buildTable(tb, 1, nil, WriterOptions{}),
		"empty-nofilt": buildTable(tb, 1, nil, WriterOptions{FilterBitsPerKey: -1}),
		"one":          buildTable(tb, 1, kvs[:1], WriterOptions{Compression: NoCompression, FilterBitsPerKey: -1}),
		"versions":     buildTable(tb, 1, long, WriterOptions{BlockSize: 64}),
	}
	for name, c := range codecs {
		s[name] = buildTable(tb, 1, kvs, WriterOptions{BlockSize: 128, Compression: c})
		s[name+"-nofilt"] = buildTable(tb, 1, kvs, WriterOptions{BlockSize: 256, Compression: c, FilterBitsPerKey: -1, BlockRestartInterval: 4})
	}
	return s
}

// sampleBlocks returns decoded data and index blocks of sampleTables.
func sampleBlocks(tb testing.TB) [][]byte {
	var blocks [][]byte
	tables := sampleTables(tb)
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		r, err := openBytes(tables[name], 1, ReaderOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		for i := range min(len(r.index), 2) {
			b, err := r.dataBlock(i, true)
			if err != nil {
				tb.Fatal(err)
			}
			blocks = append(blocks, b)
		}
		data := tables[name]
		ft, err := decodeFooter(data[len(data)-footerLen:])
		if err != nil {
			tb.Fatal(err)
		}
		index, err := r.readBlock(ft.index, "index")
		if err != nil {
			tb.Fatal(err)
		}
		blocks = append(blocks, index)
		r.Close()
	}
	return blocks
}

// TestRegenCorpus writes the generated seeds into testdata/fuzz when run
// with -regen-corpus; without the flag it checks that they are present.
func TestRegenCorpus(t *testing.T) {
	tables := sampleTables(t)
	blocks := sampleBlocks(t)
	write := func(target, name string, args ...string) {
		path := filepath.Join("testdata", "fuzz", target, name)
		content := "go test fuzz v1\n"
		for _, a := range args {
			content += a + "\n"
		}
		if !*regenCorpus {
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing (run go test -run TestRegenCorpus -regen-corpus)", path)
			}
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range tables {
		for _, reseal := range []bool{false, true} {
			write("FuzzSSTableOpen", fmt.Sprintf("%s-reseal-%v", name, reseal), "[]byte("+strconv.Quote(string(data))+")", fmt.Sprintf("bool(%v)", reseal))
		}
	}
	for i, b := range blocks {
		write("FuzzBlockDecode", fmt.Sprintf("block-%02d", i), "[]byte("+strconv.Quote(string(b))+")")
	}
}
