package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// smallKVs returns the entries of a small table: fixed-size keys and values,
// so that blocks of a NoCompression table have equal sizes.
func smallKVs(n int, tag byte) []kv {
	kvs := make([]kv, n)
	for i := range kvs {
		kind := base.KindSet
		val := []byte(fmt.Sprintf("value-%c-%04d", tag, i))
		if i%7 == 3 {
			kind, val = base.KindDelete, nil
		}
		kvs[i] = kv{ikey(fmt.Sprintf("key%04d", i/2), uint64(100000-i), kind), val}
	}
	return kvs
}

// checkDamaged reads a possibly damaged table every way and fails the test
// if anything returns wrong data, panics, or reports an error that does not
// wrap ErrCorruption. It returns whether some read reported the damage.
func checkDamaged(t *testing.T, data []byte, fileNum uint64, kvs []kv) (detected bool) {
	t.Helper()
	r, err := openBytes(data, fileNum, ReaderOptions{Cache: NewCache(1 << 20)})
	if err != nil {
		if !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("Open: error %v does not wrap ErrCorruption", err)
		}
		return true
	}
	defer r.Close()
	it := r.NewIter()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(kvs) || sameEntry(it, kvs[i]) != nil {
			t.Fatalf("forward scan returned wrong entry %d: %s", i, it.Key())
		}
		i++
	}
	detected = it.Error() != nil
	if err := it.Close(); (err == nil && i != len(kvs)) || (err != nil && !errors.Is(err, base.ErrCorruption)) {
		t.Fatalf("forward scan stopped at %d of %d with error %v", i, len(kvs), err)
	}
	it = r.NewIter()
	i = len(kvs)
	for ok := it.Last(); ok; ok = it.Prev() {
		i--
		if i < 0 || sameEntry(it, kvs[i]) != nil {
			t.Fatalf("backward scan returned wrong entry %d: %s", i, it.Key())
		}
	}
	if err := it.Close(); (err == nil && i != 0) || (err != nil && !errors.Is(err, base.ErrCorruption)) {
		t.Fatalf("backward scan stopped at %d with error %v", i, err)
	}
	for _, e := range kvs {
		v, kind, found, err := r.Get(e.key.UserKey, e.key.Seq())
		if err != nil {
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("Get: error %v does not wrap ErrCorruption", err)
			}
			detected = true
			continue
		}
		if !found || kind != e.key.Kind() || !bytes.Equal(v, e.val) {
			t.Fatalf("Get(%s) = %q, %v, %v: wrong data", e.key, v, kind, found)
		}
	}
	return detected
}

// TestCorruptionEveryByte flips each byte of small tables (every block type
// and the footer; compressed or not, with a filter) in two ways and checks
// that the damage is always reported as ErrCorruption and never returned as
// data. Every byte of a table is covered by a checksum or the magic, so no
// flip may go unnoticed. Under -race it flips one byte in 8.
func TestCorruptionEveryByte(t *testing.T) {
	kvs := smallKVs(120, 'a')
	stride := 1
	if raceEnabled {
		stride = 8
	}
	for _, c := range []Compression{NoCompression, SnappyCompression} {
		data := buildTable(t, 5, kvs, WriterOptions{BlockSize: 256, Compression: c})
		t.Logf("%s: %d bytes", c, len(data))
		damaged := make([]byte, len(data))
		for pos := 0; pos < len(data); pos += stride {
			for _, mask := range []byte{0xff, 1 << (pos % 8)} {
				copy(damaged, data)
				damaged[pos] ^= mask
				if !checkDamaged(t, damaged, 5, kvs) {
					t.Fatalf("%s: flip %#x of byte %d went unnoticed", c, mask, pos)
				}
			}
		}
	}
}

// TestCorruptionTruncated opens every prefix of a table.
func TestCorruptionTruncated(t *testing.T) {
	kvs := smallKVs(60, 'a')
	data := buildTable(t, 5, kvs, WriterOptions{BlockSize: 256})
	for n := range len(data) {
		if _, err := openBytes(data[:n], 5, ReaderOptions{}); !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("Open of the first %d of %d bytes: %v", n, len(data), err)
		}
	}
	if _, err := openBytes(append(slices.Clone(data), 0), 5, ReaderOptions{}); !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("Open with a byte appended: %v", err)
	}
}

// TestMisplacedBlock copies blocks to other offsets and other tables: the
// checksum covers the file number and offset, so the copy is detected
// although its bytes are a valid block.
func TestMisplacedBlock(t *testing.T) {
	kvs := smallKVs(200, 'a')
	o := WriterOptions{BlockSize: 256, Compression: NoCompression, FilterBitsPerKey: -1}
	data := buildTable(t, 5, kvs, o)
	r := mustOpen(t, data, 5, ReaderOptions{})
	idx := slices.Clone(r.index)
	r.Close()

	// Within the table: copy data block i over block j of the same size.
	swapped := 0
	for i := range idx {
		for j := range idx {
			hi, hj := idx[i].h, idx[j].h
			if i == j || hi.length != hj.length {
				continue
			}
			d := slices.Clone(data)
			copy(d[hj.offset:hj.end()], data[hi.offset:hi.end()])
			if !checkDamaged(t, d, 5, kvs) {
				t.Fatalf("block %d copied over block %d went unnoticed", i, j)
			}
			swapped++
		}
	}
	if swapped == 0 {
		t.Fatal("no two data blocks of the same size")
	}

	// Across tables: same layout, other values and file number.
	other := buildTable(t, 6, smallKVs(200, 'b'), o)
	if len(other) != len(data) {
		t.Fatalf("tables of %d and %d bytes", len(other), len(data))
	}
	for i, e := range idx {
		d := slices.Clone(data)
		copy(d[e.h.offset:e.h.end()], other[e.h.offset:e.h.end()])
		if !checkDamaged(t, d, 5, kvs) {
			t.Fatalf("block %d of table 6 copied into table 5 went unnoticed", i)
		}
	}

	// A whole table under another file number.
	if _, err := openBytes(data, 6, ReaderOptions{}); !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("table 5 opened as table 6: %v", err)
	}
}

// TestReadError checks that an I/O error is reported as such, not as
// corruption, and stops iterators.
func TestReadError(t *testing.T) {
	kvs := smallKVs(100, 'a')
	data := buildTable(t, 5, kvs, WriterOptions{BlockSize: 256})
	f := &memFile{data: data}
	r, err := Open(f, 5, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.readErr = errInjected
	it := r.NewIter()
	if it.First() || !errors.Is(it.Close(), errInjected) {
		t.Fatalf("iterator over a failing file: %v", it.Error())
	}
	if _, _, _, err := r.Get(kvs[0].key.UserKey, 100000); !errors.Is(err, errInjected) || errors.Is(err, base.ErrCorruption) {
		t.Fatalf("Get over a failing file: %v", err)
	}
	if _, err := Open(&memFile{data: data, readErr: errInjected}, 5, ReaderOptions{}); !errors.Is(err, errInjected) {
		t.Fatalf("Open over a failing file: %v", err)
	}
}
