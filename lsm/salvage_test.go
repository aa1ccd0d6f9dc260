package lsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// TestSalvage damages the middle of a WAL: Open fails with ErrCorruption,
// and Options.Salvage opens the store to the commits before the damage,
// reports what it dropped and keeps a copy of the damaged file.
func TestSalvage(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, nil)
	const txns = 200
	for s := 0; s < txns; s++ {
		must(t, d.Update(func(tx *Txn) error {
			if err := tx.Set([]byte(fmt.Sprintf("k%04d", s)), make([]byte, 300)); err != nil {
				return err
			}
			return tx.SetOffset("p", int64(s))
		}))
	}
	must(t, d.Close())
	logs, _ := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	if len(logs) != 1 {
		t.Fatalf("WAL files %q", logs)
	}
	b, err := os.ReadFile(logs[0])
	must(t, err)
	b[len(b)/2] ^= 1
	must(t, os.WriteFile(logs[0], b, 0o644))

	if _, err := Open(dir, nil); !errors.Is(err, ErrCorruption) {
		t.Fatalf("Open of a damaged WAL: %v", err)
	}
	d, err = Open(dir, &Options{Salvage: true})
	must(t, err)
	report := d.Salvaged()
	if len(report) != 1 || report[0].DroppedBytes == 0 || report[0].Offset == 0 {
		t.Fatalf("salvage report %+v", report)
	}
	off, err := d.CommittedOffset("p")
	if err != nil || off <= 0 || off >= txns-1 {
		t.Fatalf("salvaged offset %d %v: want a prefix short of %d", off, err, txns-1)
	}
	for s := 0; s < txns; s++ {
		_, err := d.Get([]byte(fmt.Sprintf("k%04d", s)))
		if (s <= int(off)) != (err == nil) {
			t.Fatalf("key %d with offset %d: %v", s, off, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, report[0].CopiedTo)); err != nil {
		t.Fatalf("the damaged WAL was not set aside: %v", err)
	}
	t.Logf("salvage kept %d of %d commits: %+v", off+1, txns, report)
	must(t, d.Close())
	// The salvaged store opens normally from now on.
	d = openTest(t, dir, nil)
	if got, _ := d.CommittedOffset("p"); got != off || len(d.Salvaged()) != 0 {
		t.Fatalf("reopened at offset %d, report %v", got, d.Salvaged())
	}
}

// TestSalvagedNumbersNotReused checks that the number of a WAL set aside by
// salvage is never given out again, even when the WAL itself is gone and no
// manifest recorded a number above it (a crash right after the salvage):
// a later salvage of a WAL with the same number would overwrite the copy
// of the commits the first one dropped.
func TestSalvagedNumbersNotReused(t *testing.T) {
	fs := vfs.NewMem()
	d, err := Open("db", &Options{FS: fs})
	must(t, err)
	must(t, d.Set([]byte("k"), []byte("v")))
	must(t, d.Close())
	aside := logFileName(900) + salvagedSuffix
	must(t, vfs.WriteFile(fs, fs.PathJoin("db", aside), []byte("dropped commits")))
	d, err = Open("db", &Options{FS: fs})
	must(t, err)
	defer d.Close()
	if n := d.walNum.Load(); n <= 900 {
		t.Fatalf("the new WAL is %s, at or below the salvaged %s", logFileName(n), aside)
	}
	b, err := vfs.ReadFile(fs, fs.PathJoin("db", aside))
	if err != nil || string(b) != "dropped commits" {
		t.Fatalf("the salvaged copy: %q, %v", b, err)
	}
}
