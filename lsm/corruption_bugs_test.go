package lsm

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// Regression tests of the engine bugs TestCorruption found (all fixed).

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
