package lsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/wal"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, &Options{MemTableSize: 64 << 10, NoSync: true})
	for i := 0; i < 3000; i++ {
		must(t, d.Set([]byte(fmt.Sprintf("k%05d", i)), make([]byte, 100)))
		if i%1000 == 999 {
			must(t, d.Flush())
		}
	}
	must(t, d.Compact())
	for i := 0; i < 100; i++ { // a WAL tail to replay
		must(t, d.Set([]byte(fmt.Sprintf("k%05d", i)), []byte("new")))
	}
	if _, err := Check(dir, nil); err == nil {
		t.Fatal("Check of an open store succeeded")
	}
	must(t, d.Close())
	r, err := Check(dir, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if r.Tables == 0 || r.Entries < 3000 || r.WALRecords != 100 {
		t.Fatalf("report of a store with 3000 keys in tables and 100 in the WAL:\n%s", r)
	}
	t.Logf("\n%s", r)

	// An orphan table and a flipped byte in a table are both reported.
	must(t, os.WriteFile(filepath.Join(dir, tableFileName(999999)), []byte("junk"), 0o644))
	tables, _ := filepath.Glob(filepath.Join(dir, "*"+tableSuffix))
	victim := tables[0]
	b, err := os.ReadFile(victim)
	must(t, err)
	b[len(b)/3] ^= 0x40
	must(t, os.WriteFile(victim, b, 0o644))
	r, err = Check(dir, nil)
	if !errors.Is(err, ErrCorruption) {
		t.Fatalf("Check of a damaged store: %v", err)
	}
	report := r.String()
	if !strings.Contains(report, "999999.sst: table not named by the manifest") || !strings.Contains(report, filepath.Base(victim)) {
		t.Fatalf("report misses a problem:\n%s", report)
	}
}

// TestCheckAfterBusyClose closes stores while flushes and compactions run
// and checks that Close leaves no file the manifest does not name (a
// compaction that lands during Close deletes its inputs).
func TestCheckAfterBusyClose(t *testing.T) {
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		d := openTest(t, dir, &Options{MemTableSize: 64 << 10, NoSync: true, L0CompactionThreshold: 2})
		for j := 0; j < 5000; j++ {
			must(t, d.Set([]byte(fmt.Sprintf("k%05d", j)), make([]byte, 100)))
		}
		must(t, d.Close())
		if r, err := Check(dir, nil); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
	}
}

// TestCheckReportsInconsistencies damages a closed store in ways no
// checksum catches (the manifest disagreeing with a table, a missing
// table, a leftover manifest or WAL, a WAL replaying sequence numbers
// twice) and checks that Check reports each one, naming the file.
func TestCheckReportsInconsistencies(t *testing.T) {
	base := t.TempDir()
	d := openTest(t, base, &Options{MemTableSize: 64 << 10, NoSync: true})
	for i := range 3000 {
		must(t, d.Set(fmt.Appendf(nil, "k%05d", i), make([]byte, 100)))
	}
	must(t, d.Compact())
	for i := range 10 { // a WAL tail to replay
		must(t, d.Set(fmt.Appendf(nil, "k%05d", i), []byte("new")))
	}
	must(t, d.Close())
	if r, err := Check(base, nil); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	_, state, _, err := manifest.Load(vfs.Default, base, newManifestRecordReader)
	must(t, err)

	// retable rewrites the manifest with the metadata of its first table
	// changed by edit, and returns the table's name.
	retable := func(t *testing.T, dir string, edit func(f *manifest.FileMetadata)) string {
		v, s, num, err := manifest.Load(vfs.Default, dir, newManifestRecordReader)
		must(t, err)
		e := manifest.SnapshotEdit(v, s)
		old := e.NewFiles[0].Meta
		f := &manifest.FileMetadata{FileNum: old.FileNum, Size: old.Size, Smallest: old.Smallest, Largest: old.Largest,
			SmallestSeq: old.SmallestSeq, LargestSeq: old.LargestSeq, Namespaces: old.Namespaces}
		edit(f)
		e.NewFiles[0].Meta = f
		b := manifest.NewBuilder(nil)
		must(t, b.Apply(e))
		v2, err := b.Build()
		must(t, err)
		s.NextFileNumber++
		w, err := manifest.Create(vfs.Default, dir, s.NextFileNumber-1, newManifestRecordWriter, v2, s)
		must(t, err)
		must(t, w.Close())
		must(t, os.Remove(filepath.Join(dir, manifest.FileName(num))))
		return tableFileName(f.FileNum)
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string) (file string)
		want   string
	}{
		{"table size", func(t *testing.T, dir string) string {
			return retable(t, dir, func(f *manifest.FileMetadata) { f.Size++ })
		}, "the manifest says"},
		{"first key", func(t *testing.T, dir string) string {
			return retable(t, dir, func(f *manifest.FileMetadata) {
				f.Smallest.UserKey = f.Smallest.UserKey[:len(f.Smallest.UserKey)-1]
			})
		}, "first key"},
		{"last key", func(t *testing.T, dir string) string {
			return retable(t, dir, func(f *manifest.FileMetadata) {
				f.Largest.UserKey = append(slices.Clone(f.Largest.UserKey), 0)
			})
		}, "last key"},
		{"sequence range", func(t *testing.T, dir string) string {
			return retable(t, dir, func(f *manifest.FileMetadata) { f.SmallestSeq = f.LargestSeq })
		}, "outside the sequence range"},
		{"missing table", func(t *testing.T, dir string) string {
			tables, _ := filepath.Glob(filepath.Join(dir, "*"+tableSuffix))
			must(t, os.Remove(tables[0]))
			return filepath.Base(tables[0])
		}, "no such file"},
		{"leftover manifest", func(t *testing.T, dir string) string {
			num, err := manifest.ReadCurrent(vfs.Default, dir)
			must(t, err)
			b, err := os.ReadFile(filepath.Join(dir, manifest.FileName(num)))
			must(t, err)
			name := manifest.FileName(state.NextFileNumber + 1)
			must(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			return name
		}, "manifest other than the current one"},
		{"WAL below the log number", func(t *testing.T, dir string) string {
			name := logFileName(state.LogNumber - 1)
			must(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
			return name
		}, "WAL below the log number"},
		{"WAL replaying sequence numbers", func(t *testing.T, dir string) string {
			// A newer WAL holding the first record of the current one
			// again.
			f, err := vfs.Default.Open(filepath.Join(dir, logFileName(state.LogNumber)))
			must(t, err)
			rec, err := wal.NewReader(f, state.LogNumber, "", true).Next()
			must(t, err)
			rec = slices.Clone(rec)
			f.Close()
			name := logFileName(state.NextFileNumber)
			nf, err := vfs.Default.Create(filepath.Join(dir, name))
			must(t, err)
			w := wal.NewWriter(nf, state.NextFileNumber)
			_, err = w.Append(rec)
			must(t, err)
			must(t, w.Close())
			return name
		}, "holds sequence numbers from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.CopyFS(dir, os.DirFS(base)))
			file := c.damage(t, dir)
			r, err := Check(dir, nil)
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("Check: %v\n%s", err, r)
			}
			for _, p := range r.Problems {
				if strings.Contains(p, file) && strings.Contains(p, c.want) {
					return
				}
			}
			t.Fatalf("no problem names %s with %q:\n%s", file, c.want, r)
		})
	}
}

// TestCheckLeavesNonStoreAlone checks that Check of a directory holding no
// store says so and leaves it as it was: it created LOCK there (bug 26).
func TestCheckLeavesNonStoreAlone(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))
	if _, err := Check(dir, nil); !errors.Is(err, ErrNotAStore) {
		t.Fatalf("Check of a directory without a store: %v, want ErrNotAStore", err)
	}
	names, err := os.ReadDir(dir)
	if err != nil || len(names) != 1 {
		t.Fatalf("Check changed the directory: %v, %v", names, err)
	}
}
