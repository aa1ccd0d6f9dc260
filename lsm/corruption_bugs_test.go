package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// Regression tests of the engine bugs TestCorruption found, all fixed.

// corrQuiescent builds a store whose data is all in tables: commits 0..11
// compacted into level 1, commits 12..23 flushed to level 0 (one table),
// and an empty WAL. It returns the files and the level-0 table's name.
func corrQuiescent(t *testing.T) (*corrStore, string) {
	mem := vfs.NewMem()
	d, err := Open(corrDir, corrOptions(mem, true))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 24 {
		if err := corrCommit(d, i); err != nil {
			t.Fatal(err)
		}
		if i == 11 {
			err = d.Compact()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	levels := corrLevels(d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	s := corrSnapshot(t, "Q", mem, 24, true, levels, []int{24})
	for n, l := range levels {
		if l == 0 {
			return s, n
		}
	}
	t.Fatal("no level-0 table")
	return nil, ""
}

// corrOpenDamaged opens a copy of s's files with damage applied by fn to
// the named file's bytes.
func corrOpenDamaged(t *testing.T, s *corrStore, name string, fn func([]byte) []byte) (*DB, vfs.FS, error) {
	files := map[string][]byte{}
	for n, b := range s.files {
		files[n] = b
	}
	files[name] = fn(append([]byte(nil), s.files[name]...))
	fs := corrRestore(t, files)
	d, err := Open(corrDir, corrOptions(fs, true))
	return d, fs, err
}

// A bit flip in the first data block of the level-0 table: a scan used to
// return the older versions level 1 holds of that block's keys (and keys
// the table deleted) with Error() nil, reporting ErrCorruption only at the
// end, because the merge dropped the failed source and went on. A failed
// source now stops the merge.
func TestCorruptionScanReturnsOlderVersions(t *testing.T) {
	s, l0 := corrQuiescent(t)
	d, _, err := corrOpenDamaged(t, s, l0, func(b []byte) []byte { b[10] ^= 1; return b })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	model := corrModels()[24]
	it, err := d.NewIterator(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if want := model[string(it.Key())]; want != string(it.Value()) {
			t.Fatalf("scan returned %s = %.12q (an older version), want %.12q; Error() = %v",
				it.Key(), it.Value(), want, it.Error())
		}
	}
}

// The same damage used to make CommittedOffset report no offset and
// CommittedOffsets an older one (from level 1), with no way to report an
// error: a stream processor would have resumed from the wrong offset. Both
// now return ErrCorruption.
func TestCorruptionCommittedOffsetsHideDamage(t *testing.T) {
	s, l0 := corrQuiescent(t)
	d, _, err := corrOpenDamaged(t, s, l0, func(b []byte) []byte { b[10] ^= 1; return b })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if o, err := d.CommittedOffset(corrOffset); !errors.Is(err, ErrCorruption) && (err != nil || o != 23) {
		t.Errorf("CommittedOffset = %d, %v; want 23 or ErrCorruption", o, err)
	}
	if offs, err := d.CommittedOffsets(); !errors.Is(err, ErrCorruption) && (err != nil || offs[corrOffset] != 23) {
		t.Errorf("CommittedOffsets = %v, %v; want c = 23 or ErrCorruption", offs, err)
	}
}

// Damage inside the last record of the manifest (a bit flip there, or a
// truncation at the record's start) reads as a torn tail. In a store whose
// WAL holds no record to replay, Open used to succeed with commits 0..11 of
// 0..23 and remove the level-0 table as obsolete. It now refuses: the
// table the manifest no longer names holds commits no WAL has.
func TestCorruptionManifestLastRecord(t *testing.T) {
	s, l0 := corrQuiescent(t)
	name := s.manifestName()
	ends := parseCorrWAL(name, s.files[name]).recEnds
	last := ends[len(ends)-2] // the start of the last record
	for what, fn := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:last] },
		"flipped":   func(b []byte) []byte { b[last+25] ^= 2; return b },
	} {
		d, fs, err := corrOpenDamaged(t, s, name, fn)
		if err == nil {
			r, verr := corrVerify(d, 0, 24)
			d.Close()
			names, _ := fs.List(corrDir)
			t.Errorf("manifest %s %s: Open succeeded with commits 0..%d of 0..23 (%v); files now %v (%s was there)",
				name, what, r.k-1, verr, names, l0)
			continue
		}
		if !errors.Is(err, ErrCorruption) || !strings.Contains(err.Error(), name) {
			t.Errorf("manifest %s %s: %v, want ErrCorruption naming it", name, what, err)
		}
	}
}

// Damage that drops manifest edits, or that cuts a WAL other than the
// newest at a record's end, used to be reported against the next WAL (the
// first whose sequence numbers no longer follow), an intact file. The
// error now names the manifest or the WAL before it.
func TestCorruptionErrorNamesTheDamagedFile(t *testing.T) {
	a := corrBuildA(t)
	name := a.manifestName()
	ends := parseCorrWAL(name, a.files[name]).recEnds
	older := a.wals[0]
	for file, off := range map[string]int64{name: ends[len(ends)-2], older.name: older.recEnds[0]} {
		_, _, err := corrOpenDamaged(t, a, file, func(b []byte) []byte { return b[:off] })
		if !errors.Is(err, ErrCorruption) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s cut at %d: %v, want ErrCorruption naming it", file, off, err)
		}
	}
}

// Options.Salvage on the same truncated manifest used to set an intact WAL
// aside and then truncate the file it had removed (ENOENT). A sequence gap
// is not salvaged: Open fails with ErrCorruption and changes nothing.
func TestCorruptionSalvageAfterManifestDamage(t *testing.T) {
	a := corrBuildA(t)
	name := a.manifestName()
	ends := parseCorrWAL(name, a.files[name]).recEnds
	files := maps.Clone(a.files)
	files[name] = files[name][:ends[len(ends)-2]]
	fs := corrRestore(t, files)
	o := corrOptions(fs, true)
	o.Salvage = true
	d, err := Open(corrDir, o)
	if err == nil {
		d.Close()
		t.Fatalf("Open with Salvage of a store whose manifest lost its last edit succeeded")
	}
	if !errors.Is(err, ErrCorruption) {
		names, _ := fs.List(corrDir)
		t.Errorf("Open with Salvage: %v, want ErrCorruption; files now %v", err, names)
	}
}

// corrSyncedWAL commits corrValue(i, sizes[i]) to key i for each i, each
// synced, and returns the store's files as a crash then would leave them
// and the WAL's name.
func corrSyncedWAL(t *testing.T, sizes ...int) (map[string][]byte, string) {
	mem := vfs.NewMem()
	d, err := Open(corrDir, corrOptions(mem, false))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, size := range sizes {
		if err := d.Set([]byte(corrKey(i)), corrValue(i, size)); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	names, err := mem.List(corrDir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	var log string
	for _, n := range names {
		if n == lockFileName {
			continue
		}
		if files[n], err = vfs.ReadFile(mem, mem.PathJoin(corrDir, n)); err != nil {
			t.Fatal(err)
		}
		if _, ok := parseLogFileName(n); ok {
			log = n
		}
	}
	return files, log
}

// corrValue is value i of corrSyncedWAL, of size bytes.
func corrValue(i, size int) []byte {
	v := make([]byte, size)
	for j := range v {
		v[j] = byte(corrMix(uint64(i<<20 + j)))
	}
	return v
}

// Two whole blocks of a WAL swapped, each one MIDDLE chunk of the same
// record: commit 0 (a 100 KiB value) is a FIRST chunk in block 0, MIDDLE
// chunks filling blocks 1 and 2 and a LAST chunk in block 3. In WAL format
// version 2, every chunk kept its checksum, log number and synced offset,
// and the types still read FIRST MIDDLE MIDDLE LAST: nothing bound a chunk
// to its place, so the reader returned the record with two pieces
// exchanged, and Get returned a wrong value with a nil error. Fixed by
// format version 3: every chunk records its own offset under its checksum,
// and an intact chunk found elsewhere is corruption, even in the newest WAL
// (a crash never moves one).
func TestCorruptionWALMiddleBlockSwap(t *testing.T) {
	files, log := corrSyncedWAL(t, 100<<10)
	b := files[log]
	if len(b) <= 3*corrWALBlock {
		t.Fatalf("%s has %d bytes, want 4 blocks", log, len(b))
	}
	const k = corrWALBlock
	files[log] = slices.Concat(b[:k], b[2*k:3*k], b[k:2*k], b[3*k:])
	d, err := Open(corrDir, corrOptions(corrRestore(t, files), false))
	if err != nil {
		if !errors.Is(err, ErrCorruption) || !strings.Contains(err.Error(), log) {
			t.Errorf("%s with blocks 1 and 2 swapped: %v, want ErrCorruption naming it", log, err)
		}
		return
	}
	defer d.Close()
	want := corrValue(0, 100<<10)
	got, err := d.Get([]byte(corrKey(0)))
	switch {
	case err != nil && !errors.Is(err, ErrCorruption):
		t.Errorf("%s with blocks 1 and 2 swapped: Get: %v, want the value or ErrCorruption", log, err)
	case err == nil && !bytes.Equal(got, want):
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s with blocks 1 and 2 swapped: Open succeeded and Get returned a wrong value of %d bytes (first wrong byte %d), error nil",
			log, len(got), i)
	}
}

// A block swap in the newest WAL of a store whose commits are synced:
// commit 0 (a 65 KiB value) fills blocks 0 and 1 and ends in block 2 (its
// LAST chunk at 65,536..66,641), which also holds commits 1..5, each
// synced; the log is 68,351 bytes. The first 2,815 bytes of blocks 0 and 2
// (all of block 2) change places. The reader finds a LAST chunk without a
// FIRST one at offset 0 and looks for proof that the log was synced beyond
// it: the chunks of commits 1..5, now at offsets 1,105..2,473, are intact
// chunks of this log recording synced offsets 66,641..68,009, but each
// beyond its new position, and wal.Reader took no such chunk as proof
// (findProof: "not beyond its own offset"). So Open read a torn tail and
// opened with none of the six synced commits. Fixed with format version 3:
// the chunks record their own offsets, and an intact chunk away from its
// offset proves the damage no torn tail (ErrCorruption).
func TestCorruptionWALBlockSwapDropsSyncedCommits(t *testing.T) {
	files, log := corrSyncedWAL(t, 65<<10, 300, 300, 300, 300, 300)
	b := files[log]
	if len(b) <= 2*corrWALBlock {
		t.Fatalf("%s has %d bytes, want 3 blocks", log, len(b))
	}
	n := len(b) - 2*corrWALBlock // block 2's length
	files[log] = slices.Concat(b[2*corrWALBlock:], b[n:2*corrWALBlock], b[:n])
	d, err := Open(corrDir, corrOptions(corrRestore(t, files), false))
	if err == nil {
		var held []string
		for i := range 6 {
			if _, err := d.Get([]byte(corrKey(i))); err == nil {
				held = append(held, fmt.Sprint(i))
			}
		}
		d.Close()
		t.Fatalf("%s with the first %d bytes of blocks 0 and 2 swapped: Open succeeded holding commits [%s] of 0..5 (all synced), want ErrCorruption naming it",
			log, n, strings.Join(held, " "))
	}
	if !errors.Is(err, ErrCorruption) || !strings.Contains(err.Error(), log) {
		t.Errorf("%s swapped: %v, want ErrCorruption naming it", log, err)
	}
}
